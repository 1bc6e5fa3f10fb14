// @ts-check
// A segment's page: its live counts, its size over time (segment-size.js),
// its members a page at a time (with the API's cursor), a CSV export of every
// member, "Why?": the explanation of whether one subscriber is a member (and
// first, whether by hand), the subscribers included and excluded by hand
// (segment-manual.js), its recent joins and leaves (segment-changes.js) and
// its History (segment-history.js). An edit of the lists by hand counts the
// members again and reads their size, the members and the changes afresh.

import { api, isAbort, statusOf } from './api.js';
import { count, errorBox, errorMessage, h, labelled, loading, replace, subscriberHref, time, toast } from './dom.js';
import { explanationView } from './explain.js';
import { querySentence } from './words.js';
import { changesSection } from './segment-changes.js';
import { historySection } from './segment-history.js';
import { manualSection } from './segment-manual.js';
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
  let changes = changesSection(id, { createdAt: a.created_at, signal });
  const manual = manualSection(id, { signal, onChange: () => refresh() });
  const names = segmentNames(signal);

  replace(view,
    h('p', { class: 'crumbs' }, h('a', { href: '#/segments', text: 'Segments' }), ' / '),
    h('div', { class: 'title' }, h('h1', { text: a.name }),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/segment/${id}/edit`, text: 'Edit' }), exportButton, discardBox)),
    a.description ? h('p', { class: 'description', text: a.description }) : null,
    h('p', { class: 'muted small' }, 'Created ', time(a.created_at), ', changed ', time(a.updated_at), `. Id ${segment.id}.`),
    exportStatus,
    counts,
    size.section,
    queryPanel(a.visitor_event_query, names),
    whyPanel(id, a.visitor_event_query, names),
    h('section', { class: 'panel', 'aria-labelledby': 'members-title' }, h('h2', { id: 'members-title', text: 'Members' }), membersBox),
    manual.section,
    changes.section,
    history.section);

  exportButton.addEventListener('click', () => exportCsv(id, exportButton, exportStatus));
  discardButton.addEventListener('click', () => confirmDiscard(id, a.name, discardBox, discardButton));

  /**
   * The counts: Bento's segment stats when the page opens; after an edit by
   * hand, the preview of a reference to the segment (the same evaluation,
   * under the API's general rate limit rather than the few stats an hour).
   * @param {boolean} [again]
   */
  const load = async (again = false) => {
    try {
      /** @type {Counts} */
      const stats = again
        ? (await api('POST', '/fetch/segments/preview', { body: { visitor_event_query: { segment: { member_of: id } }, sample: 0 }, signal })).data.data
        : (await api('GET', '/stats/segment', { params: { segment_id: id }, signal })).data;
      replace(counts,
        h('dl', { class: 'stat-grid' },
          stat('Members', stats.user_count, 'members'),
          stat('Subscribed', stats.subscriber_count, 'subscribed'),
          stat('Unsubscribed', stats.unsubscriber_count, 'unsubscribed')));
    } catch (e) {
      if (!isAbort(e)) replace(counts, errorBox(e));
    }
  };
  // After an edit by hand: the counts, the size, the members and the
  // changes again (the Changes section is made anew, as it reads back from
  // now).
  const refresh = () => {
    const fresh = changesSection(id, { createdAt: a.created_at, signal });
    changes.section.replaceWith(fresh.section);
    changes = fresh;
    void Promise.all([load(true), size.reload(), members(id, membersBox, signal), fresh.load()]);
  };

  await Promise.all([load(), size.load(), members(id, membersBox, signal), manual.load(), changes.load(), history.load()]);
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
 * The site's segment names by id, read once when first asked for (a query
 * or an explanation that names another segment).
 * @param {AbortSignal} signal
 * @returns {() => Promise<Map<string, string>>}
 */
function segmentNames(signal) {
  /** @type {Promise<Map<string, string>> | null} */
  let names = null;
  return () => {
    names ??= api('GET', '/fetch/segments', { signal })
      .then(({ data }) => new Map(/** @type {Segment[]} */ (data.data).map((s) => [String(s.id), s.attributes.name])))
      .catch(() => new Map());
    return names;
  };
}

/**
 * Whether a query (or any JSON) has a `segment` condition in it.
 * @param {unknown} query
 * @returns {boolean}
 */
function namesSegments(query) {
  return JSON.stringify(query).includes('"segment":');
}

/**
 * Who is in the segment: its query as a sentence, beside the JSON.
 * @param {unknown} query
 * @param {() => Promise<Map<string, string>>} names
 * @returns {HTMLElement}
 */
function queryPanel(query, names) {
  const words = h('p', { class: 'query-sentence', dataset: { sentence: '' } }, querySentence(query));
  if (namesSegments(query)) {
    void names().then((segmentNames) => replace(words, querySentence(query, { segmentNames })));
  }
  return h('section', { class: 'panel query-panel', 'aria-labelledby': 'query-title' },
    h('h2', { id: 'query-title', text: 'Who is in it' }),
    h('div', { class: 'query-grid' },
      words,
      h('div', { class: 'query-json' }, h('h3', { class: 'small muted', text: 'The query (JSON)' }),
        h('pre', { class: 'json', text: JSON.stringify(query, null, 2) }))));
}

/** The match route's `manual`, in words: what it is, and what it means. */
const MANUAL = /** @type {Record<string, [string, string]>} */ ({
  'included by hand': ['Included by hand', 'a member whatever the conditions say.'],
  'excluded by hand': ['Excluded by hand', 'never a member, whatever the conditions say.'],
});

/**
 * "Why?": whether a subscriber is a member, first whether by hand, and the
 * outcome of every condition in words (the segment's saved query gives
 * what each condition needs).
 * @param {string} id
 * @param {unknown} query
 * @param {() => Promise<Map<string, string>>} names
 */
function whyPanel(id, query, names) {
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
      /** @type {{ matched: boolean, subscriber: Subscriber, explanation: ExplanationNode, manual?: string }} */
      const m = data.data;
      const byHand = m.manual ? MANUAL[m.manual] : null;
      const segmentNames = JSON.stringify(m.explanation).includes('"condition":"segment"') ? await names() : new Map();
      replace(result,
        m.manual ? h('p', { class: `by-hand ${m.matched ? 'yes' : 'no'}`, dataset: { manual: m.manual } },
          h('strong', { text: `${byHand ? byHand[0] : m.manual}: ` }), byHand ? byHand[1] : '') : null,
        h('p', { class: m.matched ? 'verdict yes' : 'verdict no', dataset: { matched: String(m.matched) } },
          h('a', { href: subscriberHref(m.subscriber.attributes.email), text: m.subscriber.attributes.email }),
          m.matched ? ' is in this segment.' : ' is not in this segment.'),
        m.manual ? h('p', { class: 'hint', text: 'The conditions, as saved (the list by hand decides over them):' }) : null,
        explanationView(m.explanation, query, { segmentNames }));
    } catch (e) {
      replace(result, statusOf(e) === 404 && /Subscriber/.test(errorMessage(e))
        ? h('p', { class: 'notice', role: 'alert', text: `No subscriber with the email ${address} on this site.` })
        : errorBox(e));
    }
  });
  return h('section', { class: 'panel', 'aria-labelledby': 'why-title' },
    h('h2', { id: 'why-title', text: 'Why is someone in it, or not?' }), form, result);
}

