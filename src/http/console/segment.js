// @ts-check
// A segment's page: its live counts, its size over time (segment-size.js),
// its members a page at a time (with the API's cursor), a CSV export of every
// member, "Why?": the explanation of whether one subscriber is a member, its
// recent joins and leaves (segment-changes.js) and its History
// (segment-history.js).

import { api, isAbort, statusOf } from './api.js';
import { count, errorBox, errorMessage, h, labelled, loading, replace, subscriberHref, time, toast } from './dom.js';
import { explanationTree } from './explain.js';
import { changesSection } from './segment-changes.js';
import { historySection } from './segment-history.js';
import { sizeSection } from './segment-size.js';

/** @typedef {import('./api.js').Counts} Counts */
/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {import('./api.js').Subscriber} Subscriber */
/** @typedef {import('./explain.js').ExplanationNode} ExplanationNode */

const PAGE = 25;

/**
 * The page of the segment `id`, in `view`.
 * @param {HTMLElement} view
 * @param {{ id: string, signal: AbortSignal }} options
 */
export async function renderSegment(view, { id, signal }) {
  replace(view, loading('Loading the segment…'));
  const { data, etag } = await api('GET', `/fetch/segments/${id}`, { signal });
  /** @type {Segment} */
  const segment = data.data;
  const a = segment.attributes;
  const counts = h('div', { class: 'counts', 'aria-live': 'polite' }, loading('Counting…'));
  const membersBox = h('div', {});
  const exportStatus = h('span', { class: 'muted', 'aria-live': 'polite' });
  const exportButton = h('button', { type: 'button', class: 'secondary', text: 'Export CSV' });
  const discardBox = h('span', {});
  const discardButton = h('button', { type: 'button', class: 'secondary danger', text: 'Discard' });
  discardBox.append(discardButton);
  const history = historySection(id, { etag: () => etag, signal });
  const size = sizeSection(id, { signal });
  const changes = changesSection(id, { createdAt: a.created_at, signal });

  replace(view,
    h('p', { class: 'crumbs' }, h('a', { href: '#/segments', text: 'Segments' }), ' / '),
    h('div', { class: 'title' }, h('h1', { text: a.name }),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/segment/${id}/edit`, text: 'Edit' }), exportButton, discardBox)),
    a.description ? h('p', { class: 'description', text: a.description }) : null,
    h('p', { class: 'muted small' }, 'Created ', time(a.created_at), ', changed ', time(a.updated_at), `. Id ${segment.id}.`),
    exportStatus,
    counts,
    size.section,
    h('details', { class: 'panel' }, h('summary', { text: 'Query' }), h('pre', { class: 'json', text: JSON.stringify(a.visitor_event_query, null, 2) })),
    whyPanel(id),
    h('section', { class: 'panel', 'aria-labelledby': 'members-title' }, h('h2', { id: 'members-title', text: 'Members' }), membersBox),
    changes.section,
    history.section);

  exportButton.addEventListener('click', () => exportCsv(id, exportButton, exportStatus));
  discardButton.addEventListener('click', () => confirmDiscard(id, a.name, discardBox, discardButton));

  const load = async () => {
    try {
      /** @type {{ data: Counts }} */
      const { data: stats } = await api('GET', '/stats/segment', { params: { segment_id: id }, signal });
      replace(counts,
        h('dl', { class: 'stat-grid' },
          stat('Members', stats.user_count, 'members'),
          stat('Subscribed', stats.subscriber_count, 'subscribed'),
          stat('Unsubscribed', stats.unsubscriber_count, 'unsubscribed')));
    } catch (e) {
      if (!isAbort(e)) replace(counts, errorBox(e));
    }
  };
  await Promise.all([load(), size.load(), members(id, membersBox, signal), changes.load(), history.load()]);
}

/**
 * @param {string} label
 * @param {number} value
 * @param {string} key
 */
function stat(label, value, key) {
  return h('div', { class: 'stat' }, h('dt', { text: label }), h('dd', { dataset: { count: key }, text: count(value) }));
}

/**
 * The members table, paged with the API's cursor (a stack of them to go back).
 * @param {string} id
 * @param {HTMLElement} box
 * @param {AbortSignal} signal
 */
async function members(id, box, signal) {
  /** @type {(string | null)[]} */
  const cursors = [null];
  /** @param {number} index */
  const show = async (index) => {
    replace(box, loading('Loading members…'));
    try {
      const { data } = await api('GET', `/fetch/segments/${id}/members`, { params: { limit: PAGE, cursor: cursors[index] }, signal });
      /** @type {Subscriber[]} */
      const page = data.data;
      if (!page.length && index === 0) {
        replace(box, h('p', { class: 'empty', text: 'Nobody is in this segment now.' }));
        return;
      }
      cursors[index + 1] = data.meta.next_cursor;
      const prev = h('button', { type: 'button', class: 'secondary', text: 'Previous page', disabled: index === 0 });
      const next = h('button', { type: 'button', class: 'secondary', text: 'Next page', disabled: !data.meta.next_cursor });
      prev.addEventListener('click', () => show(index - 1));
      next.addEventListener('click', () => show(index + 1));
      const first = index * PAGE + 1;
      replace(box,
        h('div', { class: 'table-wrap' },
          h('table', { class: 'members' },
            h('caption', { class: 'muted', text: `${count(first)}–${count(first + page.length - 1)} of ${count(data.meta.count)}` }),
            h('thead', {}, h('tr', {}, ['Email', 'Subscription', 'Fields'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, page.map((s) => h('tr', { dataset: { uuid: s.attributes.uuid } },
              h('th', { scope: 'row' }, h('a', { href: subscriberHref(s.attributes.email), text: s.attributes.email })),
              h('td', {}, s.attributes.unsubscribed_at ? h('span', {}, 'Unsubscribed ', time(s.attributes.unsubscribed_at)) : 'Subscribed'),
              h('td', { class: 'fields' }, s.attributes.fields ? Object.entries(s.attributes.fields).map(([k, v]) => h('span', { class: 'chip', text: `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}` })) : '')))))),
        h('div', { class: 'pager' }, prev, next));
    } catch (e) {
      if (!isAbort(e)) replace(box, errorBox(e));
    }
  };
  await show(0);
}

/**
 * Downloads every member as CSV: fetched with the keys in a header, saved from a Blob.
 * @param {string} id
 * @param {HTMLButtonElement} button
 * @param {HTMLElement} status
 */
async function exportCsv(id, button, status) {
  button.disabled = true;
  replace(status, 'Exporting…');
  try {
    /** @type {{ data: Blob }} */
    const { data: blob } = await api('GET', `/fetch/segments/${id}/members.csv`, { blob: true });
    const href = URL.createObjectURL(blob);
    const link = h('a', { href, download: `segment-${id}-members.csv`, class: 'visually-hidden', text: 'download' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    replace(status, `Exported ${count(blob.size)} bytes.`);
  } catch (e) {
    replace(status, errorBox(e));
  } finally {
    button.disabled = false;
  }
}

/**
 * Asks before discarding the segment, in `box` (where `discardButton` was).
 * @param {string} id
 * @param {string} name
 * @param {HTMLElement} box
 * @param {HTMLButtonElement} discardButton
 */
function confirmDiscard(id, name, box, discardButton) {
  const yes = h('button', { type: 'button', class: 'danger', text: 'Discard segment' });
  const no = h('button', { type: 'button', class: 'secondary', text: 'Keep it' });
  const problem = h('span', { role: 'alert' });
  replace(box, h('span', { class: 'confirm' }, `Discard “${name}”? `, yes, no, problem));
  no.addEventListener('click', () => {
    replace(box, discardButton);
    discardButton.focus();
  });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      await api('DELETE', `/fetch/segments/${id}`);
      toast(`Discarded “${name}”. It can be restored from the Discarded tab.`);
      location.hash = '#/segments';
    } catch (e) {
      yes.disabled = false;
      replace(problem, ` ${errorMessage(e)}`);
    }
  });
  yes.focus();
}

/**
 * "Why?": whether a subscriber is a member, and the outcome of every condition.
 * @param {string} id
 */
function whyPanel(id) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'off', spellcheck: 'false', required: true });
  const result = h('div', { class: 'why-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'inline-form', novalidate: true }, labelled('Email', email), h('button', { type: 'submit', text: 'Why?' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const address = email.value.trim();
    if (!address) {
      replace(result, h('p', { class: 'field-error', role: 'alert', text: "Enter a subscriber's email." }));
      email.focus();
      return;
    }
    replace(result, loading('Explaining…'));
    try {
      const { data } = await api('POST', `/fetch/segments/${id}/match`, { body: { email: address } });
      /** @type {{ matched: boolean, subscriber: Subscriber, explanation: ExplanationNode }} */
      const m = data.data;
      replace(result,
        h('p', { class: m.matched ? 'verdict yes' : 'verdict no', dataset: { matched: String(m.matched) } },
          h('a', { href: subscriberHref(m.subscriber.attributes.email), text: m.subscriber.attributes.email }),
          m.matched ? ' is in this segment.' : ' is not in this segment.'),
        explanationTree(m.explanation));
    } catch (e) {
      replace(result, statusOf(e) === 404 && /Subscriber/.test(errorMessage(e))
        ? h('p', { class: 'notice', role: 'alert', text: `No subscriber with the email ${address} on this site.` })
        : errorBox(e));
    }
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'why-title' },
    h('h2', { id: 'why-title', text: 'Why is someone in it, or not?' }), form, result);
}

