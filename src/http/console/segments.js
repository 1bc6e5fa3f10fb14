// @ts-check
// The site's segments in Bento's order, each with its live counts, and the
// discarded ones on their own tab, with restore.

import { api, isAbort, statusOf } from './api.js';
import { count, errorBox, errorMessage, h, loading, replace, time, toast } from './dom.js';

/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {import('./api.js').Counts} Counts */

/** @param {boolean} discarded */
function tabs(discarded) {
  /**
   * @param {string} href
   * @param {string} text
   * @param {boolean} active
   */
  const tab = (href, text, active) =>
    h('a', { href, class: active ? 'tab active' : 'tab', 'aria-current': active ? 'page' : null, text });
  return h('nav', { class: 'tabs', 'aria-label': 'Which segments' }, tab('#/segments', 'Segments', !discarded), tab('#/discarded', 'Discarded', discarded));
}

/**
 * The list of segments (or of the discarded ones), in `view`.
 * @param {HTMLElement} view
 * @param {{ discarded: boolean, signal: AbortSignal }} options
 */
export async function renderSegments(view, { discarded, signal }) {
  const status = h('div', { 'aria-live': 'polite' });
  replace(
    view,
    h('div', { class: 'title' }, h('h1', { text: discarded ? 'Discarded segments' : 'Segments' }),
      h('div', { class: 'actions' }, h('a', { class: 'button secondary', href: '#/compare', text: 'Compare' }), h('a', { class: 'button', href: '#/new', text: 'New segment' }))),
    tabs(discarded),
    status,
  );
  const list = h('div', {}, loading('Loading segments…'));
  view.append(list);
  const { data } = await api('GET', '/fetch/segments', { params: discarded ? { state: 'discarded' } : {}, signal });
  /** @type {Segment[]} */
  const segments = data.data;
  if (segments.length === 0) {
    replace(
      list,
      h('div', { class: 'empty' }, discarded
        ? h('p', { text: 'No discarded segments.' })
        : [h('p', { text: 'This site has no segments yet.' }), h('a', { class: 'button', href: '#/new', text: 'Create the first segment' })]),
    );
    return;
  }
  if (discarded) {
    replace(list, discardedTable(segments, status));
    return;
  }
  const rows = segments.map((s) => {
    const cells = { members: h('td', { class: 'num', dataset: { count: 'members' } }, h('span', { class: 'muted', text: '…' })),
      subscribed: h('td', { class: 'num', dataset: { count: 'subscribed' } }),
      unsubscribed: h('td', { class: 'num', dataset: { count: 'unsubscribed' } }) };
    const row = h(
      'tr',
      { dataset: { segmentId: s.id } },
      h('th', { scope: 'row' }, h('a', { href: `#/segment/${s.id}`, text: s.attributes.name }),
        s.attributes.description ? h('p', { class: 'description', text: s.attributes.description }) : null),
      cells.members, cells.subscribed, cells.unsubscribed,
    );
    return { s, row, cells };
  });
  replace(
    list,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'segments' },
        h('caption', { class: 'visually-hidden', text: 'Segments with their member counts, now' }),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Segment' }), h('th', { scope: 'col', class: 'num', text: 'Members' }),
          h('th', { scope: 'col', class: 'num', text: 'Subscribed' }), h('th', { scope: 'col', class: 'num', text: 'Unsubscribed' }))),
        h('tbody', {}, rows.map((r) => r.row)))),
  );
  // Counts come one segment at a time from the preview of a reference to
  // it, which evaluates its saved query with its includes and excludes by
  // hand (the same evaluation as Bento's segment stats, which are limited
  // to a few calls an hour, too few for a list seen often); a few at once,
  // so a long list does not flood the server.
  let limited = false;
  const queue = [...rows];
  const worker = async () => {
    while (queue.length && !signal.aborted) {
      const next = queue.shift();
      if (!next) return;
      const { s, cells } = next;
      try {
        const { data } = await api('POST', '/fetch/segments/preview', {
          body: { visitor_event_query: { segment: { member_of: s.id } }, sample: 0 },
          signal,
        });
        /** @type {Counts} */
        const stats = data.data;
        replace(cells.members, count(stats.user_count));
        replace(cells.subscribed, count(stats.subscriber_count));
        replace(cells.unsubscribed, count(stats.unsubscriber_count));
      } catch (e) {
        if (isAbort(e)) return;
        const reason = statusOf(e) === 422 ? 'Not evaluable' : 'Unavailable';
        replace(cells.members, h('span', { class: 'muted', title: errorMessage(e), text: reason }));
        if (statusOf(e) === 429 && !limited) {
          limited = true;
          status.append(h('div', { class: 'notice warning', role: 'alert', text: `Counts: ${errorMessage(e)}` }));
        }
      }
    }
  };
  await Promise.all([worker(), worker(), worker()]);
}

/**
 * The discarded segments, each with Restore; a failure is shown in `status`.
 * @param {Segment[]} segments
 * @param {HTMLElement} status
 */
function discardedTable(segments, status) {
  const body = h('tbody');
  for (const s of segments) {
    const button = h('button', { type: 'button', class: 'secondary', text: 'Restore', 'aria-label': `Restore ${s.attributes.name}` });
    const row = h('tr', { dataset: { segmentId: s.id } },
      h('th', { scope: 'row', text: s.attributes.name }),
      h('td', {}, s.attributes.description || h('span', { class: 'muted', text: 'No description' })),
      h('td', {}, time(s.attributes.discarded_at)),
      h('td', {}, button));
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await api('POST', `/fetch/segments/${s.id}/restore`);
        row.remove();
        toast(`Restored “${s.attributes.name}”.`);
        if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'No discarded segments.' })));
      } catch (e) {
        button.disabled = false;
        replace(status, errorBox(e));
      }
    });
    body.append(row);
  }
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('thead', {}, h('tr', {}, ['Segment', 'Description', 'Discarded', 'Action'].map((t) => h('th', { scope: 'col', text: t })))),
      body));
}
