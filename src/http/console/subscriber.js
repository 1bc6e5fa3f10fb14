// @ts-check
// A subscriber's page, found by email: fields, tags, subscription state, the
// segments they are in now, the segments they joined and left
// (subscriber-history.js) and their most recent events, each event's details
// as readable rows (amounts in cents shown as money).

import { api, isAbort } from './api.js';
import { errorBox, h, labelled, loading, replace, subscriberHref, time } from './dom.js';
import { subscriberHistorySection } from './subscriber-history.js';
import { isMoneyPath, money, DEFAULT_CURRENCY } from './money.js';
import { sawEventTypes } from './suggest.js';
import { valueText } from './words.js';

/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {import('./api.js').Subscriber} Subscriber */
/** @typedef {import('./api.js').SubscriberEvent} SubscriberEvent */
/** @typedef {import('./api.js').Tag} Tag */

/**
 * Every leaf of an event's details, by its dotted path (`value.amount`), as
 * the query language names them.
 * @param {unknown} value
 * @param {string} [path]
 * @param {[string, unknown][]} [into]
 * @returns {[string, unknown][]}
 */
function leaves(value, path = '', into = []) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) leaves(v, path ? `${path}.${k}` : k, into);
  } else if (path) into.push([path, value]);
  return into;
}

/**
 * An event's details as key/value rows: `value.amount` as money in the
 * event's `value.currency` (else USD), other values as text.
 * @param {unknown} details
 * @returns {HTMLElement}
 */
export function detailRows(details) {
  const rows = leaves(details);
  if (!rows.length) return h('span', { class: 'muted', text: 'No details' });
  const found = rows.find(([p]) => p === 'value.currency');
  const currency = found && typeof found[1] === 'string' ? found[1] : DEFAULT_CURRENCY;
  return h('dl', { class: 'detail-rows' }, rows.map(([path, value]) => h('div', { dataset: { path } },
    h('dt', { text: path }),
    h('dd', { text: isMoneyPath(path) && typeof value === 'number' ? money(value, currency) : valueText(value) }))));
}

/**
 * The subscriber of `email` (or the form to find one), in `view`.
 * @param {HTMLElement} view
 * @param {{ email: string, signal: AbortSignal }} options
 */
export async function renderSubscriber(view, { email, signal }) {
  const input = h('input', { type: 'email', name: 'email', autocomplete: 'off', spellcheck: 'false', value: email });
  const form = h('form', { class: 'inline-form', role: 'search', novalidate: true },
    labelled('Email', input), h('button', { type: 'submit', text: 'Find' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = input.value.trim();
    if (next) location.hash = subscriberHref(next);
  });
  const result = h('div', {});
  replace(view, h('div', { class: 'title' }, h('h1', { text: email ? email : 'Find a subscriber' })), form, result);
  if (!email) {
    replace(result, h('p', { class: 'muted empty', text: "Enter a subscriber's email to see their fields, tags, segments and recent events." }));
    input.focus();
    return;
  }
  replace(result, loading('Looking up the subscriber…'));
  const { data } = await api('GET', '/fetch/subscribers', { params: { email }, signal });
  /** @type {Subscriber | null} */
  const subscriber = data.data;
  if (!subscriber) {
    replace(result, h('p', { class: 'notice', role: 'status', text: `No subscriber with the email ${email} on this site.` }));
    return;
  }
  const s = subscriber.attributes;
  const segmentsBox = h('div', {}, loading('Evaluating every segment…'));
  const eventsBox = h('div', {}, loading('Loading events…'));
  const tagsBox = h('div', {}, s.cached_tag_ids.length ? loading('Loading tags…') : h('p', { class: 'muted', text: 'No tags.' }));
  const fields = Object.entries(s.fields || {});
  const history = subscriberHistorySection(s.email, { signal });
  replace(result,
    h('dl', { class: 'stat-grid' },
      h('div', { class: 'stat' }, h('dt', { text: 'Subscription' }),
        h('dd', { dataset: { state: s.unsubscribed_at ? 'unsubscribed' : 'subscribed' } },
          s.unsubscribed_at ? h('span', {}, 'Unsubscribed ', time(s.unsubscribed_at)) : 'Subscribed')),
      h('div', { class: 'stat' }, h('dt', { text: 'UUID' }), h('dd', {}, h('code', { text: s.uuid })))),
    h('div', { class: 'columns' },
      h('section', { class: 'panel', 'aria-labelledby': 'sub-segments' }, h('h2', { id: 'sub-segments', text: 'Segments' }), segmentsBox),
      h('section', { class: 'panel', 'aria-labelledby': 'sub-tags' }, h('h2', { id: 'sub-tags', text: 'Tags' }), tagsBox)),
    history.section,
    h('section', { class: 'panel', 'aria-labelledby': 'sub-fields' }, h('h2', { id: 'sub-fields', text: 'Fields' }),
      fields.length
        ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Key' }), h('th', { scope: 'col', text: 'Value' }))),
          h('tbody', {}, fields.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, h('code', { text: k })), h('td', {}, h('code', { text: JSON.stringify(v) })))))))
        : h('p', { class: 'muted', text: 'No fields.' })),
    h('section', { class: 'panel', 'aria-labelledby': 'sub-events' }, h('h2', { id: 'sub-events', text: 'Recent events' }), eventsBox));

  const loadSegments = async () => {
    try {
      const { data: list } = await api('GET', '/fetch/subscribers/segments', { params: { email }, signal });
      /** @type {Segment[]} */
      const segments = list.data;
      replace(segmentsBox, segments.length
        ? h('ul', { class: 'segment-list' }, segments.map((seg) => h('li', { dataset: { segmentId: seg.id } },
          h('a', { href: `#/segment/${seg.id}`, text: seg.attributes.name }))))
        : h('p', { class: 'muted', text: 'In no segment now.' }));
    } catch (e) {
      if (!isAbort(e)) replace(segmentsBox, errorBox(e));
    }
  };
  const loadEvents = async () => {
    try {
      const { data: list } = await api('GET', '/fetch/subscribers/events', { params: { email, limit: 20 }, signal });
      /** @type {SubscriberEvent[]} */
      const events = list.data;
      sawEventTypes(events.map((ev) => ev.attributes.type));
      replace(eventsBox, events.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'events' },
          h('thead', {}, h('tr', {}, ['When', 'Type', 'Details'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, events.map((ev) => h('tr', {},
            h('td', {}, time(ev.attributes.occurred_at)),
            h('th', { scope: 'row' }, h('code', { text: ev.attributes.type })),
            h('td', {}, detailRows(ev.attributes.details)))))))
        : h('p', { class: 'muted', text: 'No events.' }));
    } catch (e) {
      if (!isAbort(e)) replace(eventsBox, errorBox(e));
    }
  };
  const loadTags = async () => {
    if (!s.cached_tag_ids.length) return;
    try {
      const { data: list } = await api('GET', '/fetch/tags', { signal });
      /** @type {Tag[]} */
      const tags = list.data;
      const names = new Map(tags.map((t) => [t.id, t.attributes.name]));
      replace(tagsBox, h('ul', { class: 'chips' }, s.cached_tag_ids.map((tid) => h('li', { class: 'chip', text: names.get(tid) || `#${tid}` }))));
    } catch (e) {
      if (!isAbort(e)) replace(tagsBox, errorBox(e));
    }
  };
  await Promise.all([loadSegments(), history.load(), loadEvents(), loadTags()]);
}
