// @ts-check
// A subscriber's page, found by email: their name, when they were added,
// their subscription in words (where it stands and its history,
// subscription.js), the segments they are in now, their tags, the segments
// they joined and left (subscriber-history.js), their fields as text and
// their most recent events, each event's details as readable rows (amounts
// in cents shown as money).

import { api, isAbort } from './api.js';
import { errorBox, h, loading, replace, time } from './dom.js';
import { subscriberHistorySection } from './subscriber-history.js';
import { isMoneyPath, money, DEFAULT_CURRENCY } from './money.js';
import { sawEventTypes } from './suggest.js';
import { valueText } from './words.js';
import { nameOf, subscribersHref } from './subscribers.js';
import { dayText, subscriptionStory } from './subscription.js';

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
 * A field's value as text: text as it is, a number as written, yes or no,
 * and a list or an object as JSON.
 * @param {unknown} value
 * @returns {string}
 */
export function fieldText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return JSON.stringify(value);
}

/** Events read for the subscription's history; the table shows the latest. */
const HISTORY_EVENTS = 100;
const SHOWN_EVENTS = 20;

/**
 * The subscriber of `email`, in `view`.
 * @param {HTMLElement} view
 * @param {{ email: string, signal: AbortSignal }} options
 */
export async function renderSubscriber(view, { email, signal }) {
  const back = h('p', { class: 'back' }, h('a', { href: '#/subscribers', text: '← Subscribers' }));
  const result = h('div', {});
  replace(view, back, h('div', { class: 'title' }, h('h1', { text: email })), result);
  replace(result, loading('Looking up the subscriber…'));
  const { data } = await api('GET', '/fetch/subscribers', { params: { email }, signal });
  /** @type {Subscriber | null} */
  const subscriber = data.data;
  if (!subscriber) {
    replace(result, h('p', { class: 'notice', role: 'status' }, `No subscriber with the email ${email} on this site. `,
      h('a', { href: subscribersHref(email), text: 'Search for it' }), '.'));
    return;
  }
  const s = subscriber.attributes;
  const name = nameOf(s.fields);
  if (name) view.querySelector('.title')?.append(h('p', { class: 'subtitle', text: name }));
  const segmentsBox = h('div', {}, loading('Evaluating every segment…'));
  const eventsBox = h('div', {}, loading('Loading events…'));
  const tagsBox = h('div', {}, s.cached_tag_ids.length ? loading('Loading tags…') : h('p', { class: 'muted', text: 'No tags.' }));
  const stateBox = h('dd', { dataset: { state: s.unsubscribed_at ? 'unsubscribed' : 'subscribed' } }, subscriptionStory(s, []).state);
  const storyBox = h('div', {}, loading('Loading the subscription’s history…'));
  const fields = Object.entries(s.fields || {});
  const history = subscriberHistorySection(s.email, { signal });
  replace(result,
    h('dl', { class: 'stat-grid' },
      h('div', { class: 'stat' }, h('dt', { text: 'Subscription' }), stateBox),
      h('div', { class: 'stat' }, h('dt', { text: 'Added' }),
        h('dd', { dataset: { created: '' } }, h('time', { datetime: s.created_at, title: s.created_at, text: dayText(s.created_at) }))),
      h('div', { class: 'stat' }, h('dt', { text: 'UUID' }), h('dd', {}, h('code', { text: s.uuid })))),
    h('div', { class: 'columns' },
      h('section', { class: 'panel', 'aria-labelledby': 'sub-segments' }, h('h2', { id: 'sub-segments', text: 'Segments' }), segmentsBox),
      h('section', { class: 'panel', 'aria-labelledby': 'sub-tags' }, h('h2', { id: 'sub-tags', text: 'Tags' }), tagsBox)),
    h('section', { class: 'panel', 'aria-labelledby': 'sub-subscription' }, h('h2', { id: 'sub-subscription', text: 'Subscription' }), storyBox),
    history.section,
    h('section', { class: 'panel', 'aria-labelledby': 'sub-fields' }, h('h2', { id: 'sub-fields', text: 'Fields' }),
      fields.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'fields' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Key' }), h('th', { scope: 'col', text: 'Value' }))),
          h('tbody', {}, fields.map(([k, v]) => h('tr', { dataset: { key: k } }, h('th', { scope: 'row' }, h('code', { text: k })),
            h('td', {}, typeof v === 'object' && v !== null ? h('code', { text: fieldText(v) }) : fieldText(v)))))))
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
      const { data: list } = await api('GET', '/fetch/subscribers/events', { params: { email, limit: HISTORY_EVENTS }, signal });
      /** @type {SubscriberEvent[]} */
      const events = list.data;
      sawEventTypes(events.map((ev) => ev.attributes.type));
      const story = subscriptionStory(s, events);
      replace(stateBox, story.state);
      replace(storyBox, h('ol', { class: 'subscription-story' }, story.steps.map((step) =>
        h('li', {}, step.at ? h('time', { datetime: step.at, title: step.at, text: step.text }) : step.text))));
      const shown = events.slice(0, SHOWN_EVENTS);
      replace(eventsBox, shown.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'events' },
          h('thead', {}, h('tr', {}, ['When', 'Type', 'Details'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, shown.map((ev) => h('tr', {},
            h('td', {}, time(ev.attributes.occurred_at)),
            h('th', { scope: 'row' }, h('code', { text: ev.attributes.type })),
            h('td', {}, detailRows(ev.attributes.details)))))))
        : h('p', { class: 'muted', text: 'No events.' }));
    } catch (e) {
      if (!isAbort(e)) {
        replace(eventsBox, errorBox(e));
        replace(storyBox, errorBox(e));
      }
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
