// @ts-check
// A segment's Size: its members day by day over the last 30, 90 or 365 days
// (UTC days, from its membership journal: GET /stats/segment/history), drawn
// as an SVG chart by this module: the members as an area and line, and each
// day's joins (up) and leaves (down) as small bars beneath, with a few labels
// on each axis and a `<title>` on each day. A sentence above it says the
// same for screen readers (members now, joins and leaves in the period), and
// a table below gives every day's figures. Before the server has taken the
// segment's baseline its history has not begun, and the section says so.
// Each period is asked for once per page (the route counts against the
// stats rate limit), and the one shown again by `reload`, after an edit of
// the segment's members by hand.

import { api, isAbort } from './api.js';
import { count, errorBox, h, loading, replace, svg, time } from './dom.js';

/**
 * One day of a segment's size, as the API answers it.
 * @typedef {object} SizePoint
 * @property {string} at the start of the interval (UTC)
 * @property {number} members as at the end of the interval (now, for the last)
 * @property {number} added joins within it
 * @property {number} removed leaves within it
 */

/**
 * A series and when the segment's history begins (null: not yet).
 * @typedef {{ data: SizePoint[], meta: { history_begins_at: string | null } }} Series
 */

/** The periods offered, in days; the first is shown first. */
export const PERIODS = [30, 90, 365];
const DAY = 86_400_000;

/**
 * The start (UTC midnight) of the first of the last `days` days up to `now`,
 * today included.
 * @param {number} days
 * @param {number} now Unix milliseconds
 * @returns {number}
 */
export function periodStart(days, now) {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - (days - 1));
}

/**
 * What a series says in a sentence, and its figures: the members now (the
 * last point's), and the joins and leaves over all its points.
 * @param {SizePoint[]} points
 * @param {number} days
 * @returns {{ members: number, added: number, removed: number, text: string }}
 */
export function summarize(points, days) {
  const members = points.length ? points[points.length - 1].members : 0;
  const added = points.reduce((n, p) => n + p.added, 0);
  const removed = points.reduce((n, p) => n + p.removed, 0);
  const noun = members === 1 ? 'member' : 'members';
  return { members, added, removed, text: `${count(members)} ${noun} now, +${count(added)} / −${count(removed)} in the last ${days} days.` };
}

/**
 * A round number at or above `value` (1, 2 or 5 times a power of ten) to
 * step the axis by.
 * @param {number} value
 */
function niceStep(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * power >= value) return m * power;
  return 10 * power;
}

/**
 * A UTC day, short: `Mar 3`.
 * @param {number} at
 */
function day(at) {
  return new Date(at).toLocaleDateString('en', { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/**
 * A UTC day, long: `Mar 3, 2026`.
 * @param {number} at
 */
function longDay(at) {
  return new Date(at).toLocaleDateString('en', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/**
 * The chart of `points` over the `days` days from `start`, `width` wide.
 * @param {SizePoint[]} points
 * @param {number} start
 * @param {number} days
 * @param {number} width
 * @param {string} describedBy the id of the summary
 * @returns {SVGSVGElement}
 */
export function sizeChart(points, start, days, width, describedBy) {
  const top = Math.max(...points.map((p) => p.members), 0);
  const step = niceStep(top / 2);
  const ceiling = Math.max(step * Math.ceil(top / step), step);
  const ticks = [];
  for (let v = 0; v <= ceiling; v += step) ticks.push(v);
  const barTop = Math.max(...points.map((p) => Math.max(p.added, p.removed)), 1);
  const labelWidth = Math.max(...[...ticks, barTop].map((v) => `+${count(v)}`.length)) * 7 + 8;

  // The members above, the joins and leaves beneath, the days at the bottom.
  const left = labelWidth;
  const right = width - 10;
  const membersTop = 10;
  const membersBottom = 150;
  const barZero = 190;
  const barHeight = 24;
  const height = 238;
  const slot = (right - left) / days;
  /** @param {number} at */
  const slotOf = (at) => Math.round((at - start) / DAY);
  /** @param {number} i */
  const x = (i) => left + (i + 0.5) * slot;
  /** @param {number} v */
  const y = (v) => membersBottom - (v / ceiling) * (membersBottom - membersTop);
  /** @param {number} v */
  const bar = (v) => (v / barTop) * barHeight;
  const r = (/** @type {number} */ v) => Math.round(v * 10) / 10;

  const grid = ticks.map((v) => svg('g', { class: 'tick' },
    svg('line', { class: 'grid', x1: left, x2: right, y1: r(y(v)), y2: r(y(v)) }),
    svg('text', { x: left - 6, y: r(y(v)) + 4, 'text-anchor': 'end', text: count(v) })));
  const placed = points.map((p) => ({ p, i: slotOf(Date.parse(p.at)) }));
  const line = placed.map(({ p, i }) => `${r(x(i))},${r(y(p.members))}`).join(' ');
  const firstX = placed.length ? r(x(placed[0].i)) : left;
  const lastX = placed.length ? r(x(placed[placed.length - 1].i)) : left;
  const area = placed.length ? `M${firstX},${membersBottom} L${line.replaceAll(' ', ' L')} L${lastX},${membersBottom} Z` : '';
  const barWidth = Math.max(1, r(slot * 0.7));
  const bars = placed.flatMap(({ p, i }) => [
    p.added ? svg('rect', { class: 'added', x: r(x(i) - barWidth / 2), y: r(barZero - bar(p.added)), width: barWidth, height: Math.max(1, r(bar(p.added))) }) : null,
    p.removed ? svg('rect', { class: 'removed', x: r(x(i) - barWidth / 2), y: barZero, width: barWidth, height: Math.max(1, r(bar(p.removed))) }) : null,
  ]);
  // Every day's figures, in a title over its whole column.
  const columns = placed.map(({ p, i }) => svg('rect', { class: 'column', x: r(left + i * slot), y: membersTop, width: r(slot), height: barZero + barHeight - membersTop },
    svg('title', { text: `${longDay(Date.parse(p.at))}: ${count(p.members)} members, +${count(p.added)} joined, −${count(p.removed)} left` })));
  const labelCount = width < 480 ? 3 : 5;
  const labelSlots = [...new Set(Array.from({ length: labelCount }, (_, k) => Math.round((k * (days - 1)) / (labelCount - 1))))];
  const dayLabels = labelSlots.map((i, k) => svg('text', {
    x: r(x(i)),
    y: height - 4,
    'text-anchor': k === 0 ? 'start' : k === labelSlots.length - 1 ? 'end' : 'middle',
    text: day(start + i * DAY),
  }));
  const last = placed[placed.length - 1];

  return svg('svg', {
    class: 'size-chart',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': `Members per day over the last ${days} days, with joins and leaves`,
    'aria-describedby': describedBy,
  },
  grid,
  svg('path', { class: 'area', d: area }),
  svg('polyline', { class: 'line', points: line }),
  last ? svg('circle', { class: 'dot', cx: r(x(last.i)), cy: r(y(last.p.members)), r: 3 }) : null,
  svg('line', { class: 'axis', x1: left, x2: right, y1: barZero, y2: barZero }),
  svg('text', { x: left - 6, y: barZero - barHeight + 8, 'text-anchor': 'end', class: 'added-label', text: `+${count(barTop)}` }),
  svg('text', { x: left - 6, y: barZero + barHeight, 'text-anchor': 'end', class: 'removed-label', text: `−${count(barTop)}` }),
  bars,
  dayLabels,
  columns);
}

/**
 * Every day's figures, newest first.
 * @param {SizePoint[]} points
 * @param {number} days
 */
function table(points, days) {
  return h('details', { class: 'size-table' },
    h('summary', { text: 'Every day as a table' }),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'muted', text: `Members at the end of each UTC day, and joins and leaves within it, over the last ${days} days` }),
      h('thead', {}, h('tr', {}, ['Day', 'Members', 'Joined', 'Left'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null, text: t })))),
      h('tbody', {}, [...points].reverse().map((p) => h('tr', { dataset: { at: p.at } },
        h('th', { scope: 'row' }, h('time', { datetime: p.at, title: p.at, text: longDay(Date.parse(p.at)) })),
        h('td', { class: 'num', dataset: { value: 'members' }, text: count(p.members) }),
        h('td', { class: 'num', dataset: { value: 'added' }, text: count(p.added) }),
        h('td', { class: 'num', dataset: { value: 'removed' }, text: count(p.removed) })))))));
}

/**
 * The Size section of the segment `id`, `load`, which fills it, and
 * `reload`, which asks for the period shown again (the others when next shown).
 * @param {string} id
 * @param {{ signal: AbortSignal }} options
 * @returns {{ section: HTMLElement, load: () => Promise<void>, reload: () => Promise<void> }}
 */
export function sizeSection(id, { signal }) {
  const body = h('div', { class: 'size-body', 'aria-live': 'polite' }, loading('Loading the size over time…'));
  /** @type {Map<number, Series>} */
  const loaded = new Map();
  let days = PERIODS[0];
  const buttons = PERIODS.map((d) => {
    const b = h('button', { type: 'button', class: 'secondary small', 'aria-pressed': String(d === days), dataset: { days: String(d) }, text: `${d} days` });
    b.addEventListener('click', () => {
      if (d === days) return;
      days = d;
      for (const other of buttons) other.setAttribute('aria-pressed', String(other === b));
      load();
    });
    return b;
  });
  const section = h('section', { class: 'panel size', 'aria-labelledby': 'size-title' },
    h('div', { class: 'size-head' },
      h('h2', { id: 'size-title', text: 'Size' }),
      h('div', { class: 'periods', role: 'group', 'aria-label': 'Period' }, buttons)),
    body);

  const load = async () => {
    const shown = days;
    const start = periodStart(shown, Date.now());
    try {
      let series = loaded.get(shown);
      if (!series) {
        replace(body, loading('Loading the size over time…'));
        const { data } = await api('GET', '/stats/segment/history', { params: { segment_id: id, from: new Date(start).toISOString(), interval: 'day' }, signal });
        series = /** @type {Series} */ (data);
        if (series.meta.history_begins_at) loaded.set(shown, series);
      }
      if (shown !== days) return;
      draw(series, shown, start);
    } catch (e) {
      if (!isAbort(e) && shown === days) replace(body, errorBox(e));
    }
  };

  /**
   * @param {Series} series
   * @param {number} shown
   * @param {number} start
   */
  const draw = (series, shown, start) => {
    const begins = series.meta.history_begins_at;
    if (!begins) {
      const again = h('button', { type: 'button', class: 'secondary', text: 'Check again' });
      again.addEventListener('click', load);
      replace(body, h('div', { class: 'notice', role: 'status', dataset: { history: 'not-begun' } },
        h('p', { text: 'This segment’s history begins when the server takes its baseline: when it is created, or, for a segment older than the history, within moments of the server’s start. Its size over time is drawn from then on.' }),
        again));
      return;
    }
    const points = series.data;
    const sum = summarize(points, shown);
    const summary = h('p', {
      id: 'size-summary',
      class: 'size-summary',
      dataset: { members: String(sum.members), added: String(sum.added), removed: String(sum.removed), days: String(shown) },
      text: sum.text,
    });
    const beganInside = Date.parse(begins) > start;
    const width = Math.max(300, Math.round(body.clientWidth || 640));
    replace(body,
      summary,
      beganInside ? h('p', { class: 'muted small', dataset: { history: 'begins' } }, 'History begins ', time(begins), '; nothing is known before it.') : null,
      points.length
        ? h('div', { class: 'chart-wrap' }, sizeChart(points, start, shown, width, 'size-summary'),
          h('p', { class: 'legend muted small' },
            h('span', { class: 'key members' }, 'members'), h('span', { class: 'key added' }, 'joined'), h('span', { class: 'key removed' }, 'left'),
            ` · UTC days, ${longDay(start)} to today`))
        : h('p', { class: 'empty', text: 'No history in this period yet.' }),
      points.length ? table(points, shown) : null);
  };
  const reload = () => {
    loaded.clear();
    return load();
  };
  return { section, load, reload };
}
