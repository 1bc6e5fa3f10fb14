// @ts-check
// A segment's Changes: its recent joins and leaves, newest first, each with
// when (local time, the exact instant in its title), the subscriber (linked
// to their page) and why, in words. The feed (GET
// /fetch/segments/{id}/changes) runs oldest first from `since`, so the
// console reads it in windows of time going back from now: a window whose
// changes do not fit in one page is narrowed until they do (changes
// recorded within one second, such as an import's, are paged through by
// cursor instead), and after one less than a quarter full the next is twice
// as long. "Show older changes" shows the next ones, reading older windows
// as needed, until the segment's creation. Also the words for a change,
// which the subscriber page uses.

import { api, isAbort } from './api.js';
import { errorBox, h, loading, replace, subscriberHref, time } from './dom.js';

/**
 * One join or leave, as the changes feeds answer it (a webhook notification's object).
 * @typedef {object} Change
 * @property {string} event_id
 * @property {'segment.member_added' | 'segment.member_removed'} type
 * @property {string} occurred_at
 * @property {string} reason
 * @property {{ id: string, name: string }} segment
 * @property {{ uuid: string, email: string }} subscriber
 */

/** Why a subscriber moved, in words, by the API's reason. */
const REASONS = /** @type {Record<string, string>} */ ({
  data: 'their data changed',
  time_window: 'a time window moved',
  definition_changed: 'the segment’s definition changed',
  segment_discarded: 'the segment was discarded',
  segment_restored: 'the segment was restored',
  manual: 'added or removed by hand',
});

/**
 * Why a change happened, in words, with the API's reason as its title.
 * @param {string} reason
 * @returns {HTMLSpanElement}
 */
export function reasonOf(reason) {
  return h('span', { class: 'reason', title: reason, dataset: { reason }, text: REASONS[reason] ?? reason });
}

/**
 * Joined or left, marked for the eye and in words.
 * @param {Change} c
 * @returns {HTMLSpanElement}
 */
export function moveOf(c) {
  const joined = c.type === 'segment.member_added';
  return h('span', { class: `move ${joined ? 'joined' : 'left'}`, dataset: { move: joined ? 'joined' : 'left' } },
    h('span', { class: 'sign', 'aria-hidden': 'true', text: joined ? '+' : '−' }), joined ? 'Joined' : 'Left');
}

/** Changes shown at a time. */
const SHOW = 50;
/** Changes asked for at a time (the feed's most). */
const LIMIT = 1000;
/** Pages read by cursor through changes recorded within one second. */
const MAX_PAGES = 20;
const WEEK = 7 * 86_400_000;
const YEAR = 365 * 86_400_000;

/**
 * The Changes section of the segment `id`, created at `createdAt`, and
 * `load`, which fills it.
 * @param {string} id
 * @param {{ createdAt: string, signal: AbortSignal }} options
 * @returns {{ section: HTMLElement, load: () => Promise<void> }}
 */
export function changesSection(id, { createdAt, signal }) {
  const body = h('div', {}, loading('Loading the changes…'));
  const section = h('section', { class: 'panel changes-feed', 'aria-labelledby': 'changes-title' },
    h('h2', { id: 'changes-title', text: 'Changes' }),
    h('p', { class: 'hint', text: 'Who joined and left this segment, newest first, and why.' }),
    body);
  // No change is older than the segment (a minute's slack for clocks).
  const oldest = Date.parse(createdAt) - 60_000;
  /** @type {Change[]} read but not yet shown, newest first */
  const buffer = [];
  let until = Date.now() + 1;
  let span = WEEK;
  let done = false;
  let partial = false;
  const rows = h('tbody', {});
  const more = h('button', { type: 'button', class: 'secondary', text: 'Show older changes' });
  const status = h('p', { class: 'muted small', role: 'status' });

  /**
   * One page of the feed.
   * @param {Record<string, string | number>} params
   * @returns {Promise<{ data: Change[], meta: { next_cursor: string | null } }>}
   */
  const page = async (params) => (await api('GET', `/fetch/segments/${id}/changes`, { params: { ...params, limit: LIMIT }, signal })).data;

  /**
   * The changes from `since` up to (not including) `until`, oldest first,
   * read from `first` (the page from `since`) on by cursor: changes
   * recorded within one second, too many for a page.
   * @param {{ data: Change[], meta: { next_cursor: string | null } }} first
   * @returns {Promise<Change[]>}
   */
  const byCursor = async (first) => {
    const inside = [...first.data];
    let cursor = first.meta.next_cursor;
    for (let n = 1; n < MAX_PAGES && cursor; n += 1) {
      const next = await page({ after: cursor });
      const within = next.data.filter((c) => Date.parse(c.occurred_at) < until);
      inside.push(...within);
      if (next.data.length < LIMIT || within.length < next.data.length) return inside;
      cursor = next.meta.next_cursor;
    }
    partial = true;
    return inside;
  };

  /**
   * Reads older windows until there are enough to show, or none are left.
   * A window whose changes fill a page starts again later: at the last
   * change read, or halfway to `until` if that is later.
   */
  const fill = async () => {
    while (buffer.length < SHOW && !done) {
      let since = Math.max(until - span, oldest);
      /** @type {Change[]} */
      let read;
      for (;;) {
        const first = await page({ since: new Date(since).toISOString() });
        const inside = first.data.filter((c) => Date.parse(c.occurred_at) < until);
        if (first.data.length < LIMIT || inside.length < first.data.length) {
          read = inside;
          break;
        }
        if (until - since <= 1000) {
          read = await byCursor(first);
          break;
        }
        const last = Date.parse(inside[inside.length - 1].occurred_at);
        since = Math.max(last, since + Math.ceil((until - since) / 2));
      }
      buffer.push(...read.reverse());
      span = until - since;
      until = since;
      if (since <= oldest) done = true;
      else if (read.length < LIMIT / 4) span = Math.min(span * 2, YEAR);
    }
  };

  /**
   * @param {Change} c
   */
  const row = (c) => h('tr', { dataset: { eventId: c.event_id } },
    h('td', {}, time(c.occurred_at)),
    h('th', { scope: 'row' }, h('a', { href: subscriberHref(c.subscriber.email), text: c.subscriber.email })),
    h('td', {}, moveOf(c), ' ', reasonOf(c.reason)));

  const showMore = async () => {
    more.disabled = true;
    replace(status, 'Loading older changes…');
    try {
      await fill();
      rows.append(...buffer.splice(0, SHOW).map(row));
      more.hidden = done && !buffer.length;
      replace(status, more.hidden
        ? (partial ? 'Some changes recorded together with many others are not listed.' : 'That is every change since this segment’s history began.')
        : '');
    } catch (e) {
      if (!isAbort(e)) replace(status, errorBox(e));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', showMore);

  const load = async () => {
    try {
      await fill();
    } catch (e) {
      if (!isAbort(e)) replace(body, errorBox(e));
      return;
    }
    if (!buffer.length) {
      replace(body, h('p', { class: 'empty', text: 'No joins or leaves recorded yet.' }));
      return;
    }
    replace(body,
      h('div', { class: 'table-wrap' }, h('table', { class: 'changes-table' },
        h('thead', {}, h('tr', {}, ['When', 'Subscriber', 'Change and why'].map((t) => h('th', { scope: 'col', text: t })))),
        rows)),
      h('div', { class: 'pager' }, status, more));
    rows.append(...buffer.splice(0, SHOW).map(row));
    more.hidden = done && !buffer.length;
    if (more.hidden) replace(status, 'That is every change since this segment’s history began.');
  };
  return { section, load };
}
