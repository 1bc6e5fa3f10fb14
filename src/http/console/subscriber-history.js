// @ts-check
// A subscriber's Segment history: the segments they joined and left, newest
// first, each with when (local time, the exact instant in its title), the
// segment (linked to its page) and why, from the membership journal
// (GET /fetch/subscribers/history: every segment, kept or discarded).

import { api, isAbort } from './api.js';
import { count, errorBox, h, loading, replace, time } from './dom.js';
import { moveOf, reasonOf } from './segment-changes.js';

/** @typedef {import('./segment-changes.js').Change} Change */

/** Moves asked for (the route's most). */
const LIMIT = 100;

/**
 * The Segment history section of the subscriber `email`, and `load`, which fills it.
 * @param {string} email
 * @param {{ signal: AbortSignal }} options
 * @returns {{ section: HTMLElement, load: () => Promise<void> }}
 */
export function subscriberHistorySection(email, { signal }) {
  const body = h('div', {}, loading('Loading the segment history…'));
  const section = h('section', { class: 'panel', 'aria-labelledby': 'sub-history' },
    h('h2', { id: 'sub-history', text: 'Segment history' }),
    h('p', { class: 'hint', text: 'The segments this subscriber joined and left, newest first, and why.' }),
    body);
  const load = async () => {
    try {
      const { data } = await api('GET', '/fetch/subscribers/history', { params: { email, limit: LIMIT }, signal });
      /** @type {Change[]} */
      const moves = data.data;
      if (!moves.length) {
        replace(body, h('p', { class: 'muted', text: 'No joins or leaves recorded.' }));
        return;
      }
      replace(body,
        h('div', { class: 'table-wrap' }, h('table', { class: 'segment-history' },
          h('thead', {}, h('tr', {}, ['When', 'Segment', 'Change and why'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, moves.map((c) => h('tr', { dataset: { eventId: c.event_id, segmentId: c.segment.id } },
            h('td', {}, time(c.occurred_at)),
            h('th', { scope: 'row' }, h('a', { href: `#/segment/${encodeURIComponent(c.segment.id)}`, text: c.segment.name })),
            h('td', {}, moveOf(c), ' ', reasonOf(c.reason))))))),
        moves.length === LIMIT ? h('p', { class: 'muted small', text: `The latest ${count(LIMIT)} are shown.` }) : null);
    } catch (e) {
      if (!isAbort(e)) replace(body, errorBox(e));
    }
  };
  return { section, load };
}
