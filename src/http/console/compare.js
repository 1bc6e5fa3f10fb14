// @ts-check
// Compare: how the members of 2 to 5 segments overlap now
// (POST /stats/overlap). Pick the segments; for two or three, a Venn diagram
// drawn as an SVG by this module (circles of one size, so areas do not scale
// with the counts: each region is labelled with its count); for any number,
// a table of every region with its share of the union. Each region links to
// its members: the preview of the region's query (every segment it is in as
// a `member_of` reference, every one it is out of as `not_member_of`), its
// count and first members, each linked to their page, and a link to each
// segment's own page. The overlap counts against the stats rate limit (60
// an hour by default), so it is asked for once per comparison; opening a
// region asks only for its preview.

import { api, isAbort } from './api.js';
import { count, errorBox, h, loading, replace, subscriberHref, svg } from './dom.js';

/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {import('./api.js').Subscriber} Subscriber */

/**
 * One region of the segments' Venn diagram, as the API answers it: the
 * members of every segment of `in` who are in none of `out`.
 * @typedef {object} Region
 * @property {string[]} in
 * @property {string[]} out
 * @property {number} user_count
 */

/**
 * The overlap, as the API answers it.
 * @typedef {object} Overlap
 * @property {string[]} segment_ids
 * @property {Region[]} regions
 * @property {number} union
 * @property {number} intersection
 */

/** The fewest and most segments compared. */
export const MIN = 2;
export const MAX = 5;
/** Members shown of a region. */
const SAMPLE = 100;
/** Regions opened so far on this page. */
let opened = 0;

/**
 * Segment ids from a comma-separated list, each once, in order.
 * @param {string | null} text
 * @returns {string[]}
 */
export function parseIds(text) {
  const ids = (text || '').split(',').map((s) => s.trim()).filter((s) => /^[0-9]+$/.test(s));
  return [...new Set(ids)];
}

/**
 * The hash of a comparison, and of one of its regions (by the ids it is in).
 * @param {string[]} ids
 * @param {string[]} [region]
 * @returns {string}
 */
export function compareHref(ids, region) {
  const href = `#/compare?ids=${ids.join(',')}`;
  return region ? `${href}&region=${region.join(',')}` : href;
}

/**
 * The query whose members are the region's: in each of `in`, in none of `out`.
 * @param {Region} region
 * @returns {{ all: object[] }}
 */
export function regionQuery(region) {
  return {
    all: [
      ...region.in.map((id) => ({ segment: { member_of: id } })),
      ...region.out.map((id) => ({ segment: { not_member_of: id } })),
    ],
  };
}

/**
 * `a`, `a and b`, `a, b and c`.
 * @param {string[]} items
 * @param {string} last the word before the last item
 */
function listed(items, last) {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${last} ${items[items.length - 1]}`;
}

/**
 * What a region is, in words: `In A and B, not in C`.
 * @param {Region} region
 * @param {(id: string) => string} name
 */
export function describeRegion(region, name) {
  const inside = `In ${listed(region.in.map(name), 'and')}`;
  return region.out.length ? `${inside}, not in ${listed(region.out.map(name), 'or')}` : inside;
}

/**
 * Where the circles and each region's count go, for two and three segments,
 * in a 400 × 300 box. Region keys are masks: bit i for the ith segment.
 * @type {Record<number, { r: number, circles: [number, number][], labels: Record<number, [number, number]> }>}
 */
const LAYOUTS = {
  2: { r: 100, circles: [[150, 150], [250, 150]], labels: { 1: [100, 150], 2: [300, 150], 3: [200, 150] } },
  3: {
    r: 95,
    circles: [[150, 120], [250, 120], [200, 205]],
    labels: { 1: [105, 95], 2: [295, 95], 4: [200, 262], 3: [200, 88], 5: [150, 182], 6: [250, 182], 7: [200, 150] },
  },
};

/**
 * A region's mask: bit i when it is in the ith segment compared.
 * @param {Region} region
 * @param {string[]} ids
 */
function maskOf(region, ids) {
  return region.in.reduce((m, id) => m | (1 << ids.indexOf(id)), 0);
}

/**
 * The page, in `view`: the picker, and the comparison of `ids` (opened at
 * `region`, the ids of a region's `in`, when given).
 * @param {HTMLElement} view
 * @param {{ ids: string[], region: string[] | null, signal: AbortSignal }} options
 */
export async function renderCompare(view, { ids, region, signal }) {
  const intro = h('p', { class: 'description', text: `How the members of ${MIN} to ${MAX} segments overlap, now: who is in each combination of them.` });
  const head = [
    h('p', { class: 'crumbs' }, h('a', { href: '#/segments', text: 'Segments' }), ' / '),
    h('h1', { text: 'Compare segments' }),
    intro,
  ];
  replace(view, head, loading('Loading segments…'));
  const { data } = await api('GET', '/fetch/segments', { signal });
  /** @type {Segment[]} */
  const segments = data.data;
  const names = new Map(segments.map((s) => [s.id, s.attributes.name]));
  /** @param {string} id */
  const name = (id) => names.get(id) || `Segment ${id}`;
  const result = h('div', { class: 'compare-result', 'aria-live': 'polite' });
  replace(view, head, picker(segments, ids), result);
  if (ids.length === 0) return;
  if (ids.length < MIN || ids.length > MAX) {
    replace(result, h('div', { class: 'notice warning', role: 'alert', text: `Pick ${MIN} to ${MAX} segments to compare (${ids.length} picked).` }));
    return;
  }
  replace(result, loading('Counting…'));
  /** @type {Overlap} */
  let overlap;
  try {
    const { data: answer } = await api('POST', '/stats/overlap', { body: { segment_ids: ids }, signal });
    overlap = answer.data;
  } catch (e) {
    if (isAbort(e)) throw e;
    replace(result, errorBox(e));
    return;
  }
  const members = h('section', { class: 'panel region-members', 'aria-labelledby': 'region-title', hidden: true });
  /** @param {Region} r */
  const open = (r) => {
    history.replaceState(null, '', compareHref(overlap.segment_ids, r.in));
    return showRegion(members, r, overlap.segment_ids, name, signal);
  };
  replace(result,
    h('dl', { class: 'stat-grid' },
      h('div', { class: 'stat' }, h('dt', { text: 'In at least one (union)' }), h('dd', { dataset: { overlap: 'union' }, text: count(overlap.union) })),
      h('div', { class: 'stat' }, h('dt', { text: 'In all of them (intersection)' }), h('dd', { dataset: { overlap: 'intersection' }, text: count(overlap.intersection) }))),
    overlap.segment_ids.length <= 3 ? venn(overlap, name, open) : null,
    regionTable(overlap, name, open),
    members);
  const wanted = region && overlap.regions.find((r) => r.in.length === region.length && r.in.every((id) => region.includes(id)));
  if (wanted) await showRegion(members, wanted, overlap.segment_ids, name, signal, false);
}

/**
 * The form that picks the segments: a checkbox each, in the list's order.
 * @param {Segment[]} segments
 * @param {string[]} picked
 */
function picker(segments, picked) {
  const hint = h('p', { class: 'hint', id: 'compare-hint', text: `Pick ${MIN} to ${MAX}.` });
  const boxes = segments.map((s) => {
    const box = h('input', { type: 'checkbox', name: 'segment', value: s.id, checked: picked.includes(s.id), 'aria-describedby': 'compare-hint' });
    return { s, box, item: h('li', {}, h('label', {}, box, s.attributes.name)) };
  });
  const problem = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'panel compare-picker' },
    h('fieldset', {}, h('legend', { text: 'Segments' }), hint,
      segments.length ? h('ul', { class: 'checks' }, boxes.map((b) => b.item)) : h('p', { class: 'muted', text: 'This site has no segments yet.' })),
    problem,
    h('button', { type: 'submit', text: 'Compare' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const ids = boxes.filter((b) => b.box.checked).map((b) => b.s.id);
    if (ids.length < MIN || ids.length > MAX) {
      problem.textContent = `Pick ${MIN} to ${MAX} segments (${ids.length} picked).`;
      problem.hidden = false;
      return;
    }
    problem.hidden = true;
    location.hash = compareHref(ids);
  });
  return form;
}

/**
 * A link to a region's members, opened in place (its address kept, so it
 * can be reloaded or shared).
 * @template {Element} E
 * @param {E} link
 * @param {Region} region
 * @param {(r: Region) => Promise<void>} open
 * @returns {E}
 */
function opens(link, region, open) {
  link.addEventListener('click', (event) => {
    event.preventDefault();
    open(region);
  });
  return link;
}

/**
 * The Venn diagram of two or three segments, with a legend.
 * @param {Overlap} overlap
 * @param {(id: string) => string} name
 * @param {(r: Region) => Promise<void>} open
 */
function venn(overlap, name, open) {
  const ids = overlap.segment_ids;
  const layout = LAYOUTS[ids.length];
  const picture = svg('svg', {
    class: 'venn', viewBox: '0 10 400 300', role: 'group',
    'aria-label': `Venn diagram of ${listed(ids.map(name), 'and')}`,
  },
  layout.circles.map(([cx, cy], i) => svg('circle', { class: `venn-set venn-set-${i}`, cx, cy, r: layout.r })),
  overlap.regions.map((r) => {
    const [x, y] = layout.labels[maskOf(r, ids)];
    const words = `${describeRegion(r, name)}: ${count(r.user_count)} ${r.user_count === 1 ? 'member' : 'members'}`;
    return opens(svg('a', { class: 'venn-region', href: compareHref(ids, r.in), 'aria-label': words, dataset: { region: r.in.join(',') } },
      svg('title', { text: words }),
      svg('text', { x, y, 'text-anchor': 'middle', 'dominant-baseline': 'central', text: count(r.user_count) })), r, open);
  }));
  const legend = h('ul', { class: 'venn-legend' }, ids.map((id, i) =>
    h('li', {}, h('span', { class: `swatch venn-set-${i}`, 'aria-hidden': 'true' }), h('a', { href: `#/segment/${id}`, text: name(id) }))));
  return h('figure', { class: 'panel venn-figure' }, picture, h('figcaption', {}, legend));
}

/**
 * Every region in a table: what it is, its members (a link to them) and its
 * share of the union.
 * @param {Overlap} overlap
 * @param {(id: string) => string} name
 * @param {(r: Region) => Promise<void>} open
 */
function regionTable(overlap, name, open) {
  const share = (/** @type {number} */ n) => (overlap.union ? `${((100 * n) / overlap.union).toFixed(1)}%` : '—');
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'regions' },
      h('caption', { class: 'visually-hidden', text: 'Every region of the segments, with its members now' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Region' }),
        h('th', { scope: 'col', class: 'num', text: 'Members' }),
        h('th', { scope: 'col', class: 'num', text: 'Share of union' }))),
      h('tbody', {}, overlap.regions.map((r) => h('tr', { dataset: { region: r.in.join(',') } },
        h('th', { scope: 'row', text: describeRegion(r, name) }),
        h('td', { class: 'num' }, opens(h('a', { href: compareHref(overlap.segment_ids, r.in), text: count(r.user_count), 'aria-label': `${count(r.user_count)} members: ${describeRegion(r, name)}` }), r, open)),
        h('td', { class: 'num', text: share(r.user_count) }))))));
}

/**
 * A region's members in `box`: the preview of its query (its count and
 * first members), and a link to each segment compared.
 * @param {HTMLElement} box
 * @param {Region} region
 * @param {string[]} ids
 * @param {(id: string) => string} name
 * @param {AbortSignal} signal
 * @param {boolean} [focus] move focus to the section (after a click)
 */
async function showRegion(box, region, ids, name, signal, focus = true) {
  // A region opened meanwhile wins over this one's late answer.
  const mine = String(++opened);
  box.dataset.opened = mine;
  const title = h('h2', { id: 'region-title', tabindex: '-1', text: describeRegion(region, name) });
  box.hidden = false;
  const body = h('div', {}, loading('Loading its members…'));
  replace(box, title, body);
  if (focus) title.focus();
  const query = regionQuery(region);
  const segmentLinks = h('p', { class: 'small' }, 'Each segment\'s own members: ',
    ids.map((id, i) => [i ? ', ' : '', h('a', { href: `#/segment/${id}`, text: name(id) })]), '.');
  const queryPanel = h('details', {}, h('summary', { text: 'This region as a query' }), h('pre', { class: 'json', text: JSON.stringify(query, null, 2) }));
  try {
    const { data } = await api('POST', '/fetch/segments/preview', { body: { visitor_event_query: query, sample: SAMPLE }, signal });
    if (box.dataset.opened !== mine) return;
    /** @type {Subscriber[]} */
    const sample = data.data.sample;
    const total = data.data.user_count;
    const note = total > sample.length
      ? `The first ${count(sample.length)} of ${count(total)} members, in the order they were added. Save this query as a segment to page through or export them all.`
      : `${count(total)} ${total === 1 ? 'member' : 'members'}.`;
    replace(body,
      h('p', { class: 'muted', dataset: { regionCount: String(total) }, text: note }),
      sample.length
        ? h('ul', { class: 'sample' }, sample.map((s) => h('li', {}, h('a', { href: subscriberHref(s.attributes.email), text: s.attributes.email }))))
        : h('p', { class: 'muted', text: 'Nobody is in this region now.' }),
      segmentLinks,
      queryPanel);
  } catch (e) {
    if (isAbort(e) || box.dataset.opened !== mine) return;
    replace(body, errorBox(e), segmentLinks);
  }
}
