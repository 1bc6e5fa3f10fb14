// @ts-check
// What the editor's text boxes suggest (as `<datalist>`s): the site's tags
// (`GET /fetch/tags`), its field keys (`GET /fetch/fields`) and event types.
// No route lists a site's event types, so those suggested are the ones the
// console has met: named by the site's saved segments, and seen on the
// subscriber pages opened in this tab. A tag that is not in the site's list
// is one no subscriber has yet: the builder says so beside it, as a note (a
// query may name such a tag; it is simply had by nobody).

import { api, isAbort } from './api.js';
import { h } from './dom.js';
import { isObject } from './builder-controls.js';

/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {import('./api.js').Tag} Tag */

/** The ids of the datalists, one per kind of name. */
export const LISTS = { tag: 'suggest-tags', field: 'suggest-fields', event: 'suggest-event-types' };

/**
 * What the boxes suggest; `knownTags` (normalised names) is null when the
 * tags could not be read, and then no tag is flagged.
 * @typedef {object} Suggestions
 * @property {string[]} tags
 * @property {string[]} fields
 * @property {string[]} eventTypes
 * @property {Set<string> | null} knownTags
 */

/** Event types seen on subscriber pages in this tab. */
const seenEventTypes = new Set();

/**
 * Remembers event types shown on a subscriber page, to suggest them.
 * @param {Iterable<string>} types
 */
export function sawEventTypes(types) {
  for (const t of types) if (typeof t === 'string' && t.trim()) seenEventTypes.add(t.trim());
}

/**
 * A tag name as the query language compares it: trimmed, lowercased.
 * @param {string} name
 * @returns {string}
 */
export function tagKey(name) {
  return name.trim().toLowerCase();
}

/**
 * Every `event.type` a query names.
 * @param {unknown} query
 * @param {Set<string>} into
 */
function eventTypesIn(query, into) {
  if (Array.isArray(query)) {
    for (const item of query) eventTypesIn(item, into);
  } else if (isObject(query)) {
    for (const [key, value] of Object.entries(query)) {
      if (key === 'foreign') continue;
      if (key === 'event' && isObject(value) && typeof value.type === 'string' && value.type.trim()) into.add(value.type.trim());
      eventTypesIn(value, into);
    }
  }
}

/**
 * Reads the site's tags and fields, and gathers the event types of
 * `segments`; a list that cannot be read suggests nothing.
 * @param {Segment[]} segments
 * @param {AbortSignal} signal
 * @returns {Promise<Suggestions>}
 */
export async function loadSuggestions(segments, signal) {
  /**
   * @param {string} path
   * @param {(item: any) => string} name
   * @returns {Promise<string[] | null>}
   */
  const names = async (path, name) => {
    try {
      const { data } = await api('GET', path, { signal });
      return data.data.map(name).filter((/** @type {unknown} */ n) => typeof n === 'string');
    } catch (e) {
      if (isAbort(e)) throw e;
      return null;
    }
  };
  const [tags, fields] = await Promise.all([
    names('/fetch/tags', (/** @type {Tag} */ t) => t.attributes.name),
    names('/fetch/fields', (/** @type {{ attributes: { key: string } }} */ f) => f.attributes.key),
  ]);
  const types = new Set(seenEventTypes);
  for (const s of segments) eventTypesIn(s.attributes.visitor_event_query, types);
  return {
    tags: tags || [],
    fields: fields || [],
    eventTypes: [...types].sort(),
    knownTags: tags ? new Set(tags.map(tagKey)) : null,
  };
}

/**
 * The datalists of `suggestions`, to put in the page once.
 * @param {Suggestions} suggestions
 * @returns {HTMLDataListElement[]}
 */
export function datalists(suggestions) {
  /**
   * @param {string} id
   * @param {string[]} values
   */
  const list = (id, values) => h('datalist', { id }, values.map((value) => h('option', { value })));
  return [list(LISTS.tag, suggestions.tags), list(LISTS.field, suggestions.fields), list(LISTS.event, suggestions.eventTypes)];
}

/**
 * The tags of `value` (a name, or a list of them) that no subscriber has.
 * @param {unknown} value
 * @param {Set<string> | null} known
 * @returns {string[]}
 */
export function unknownTags(value, known) {
  if (!known) return [];
  const names = Array.isArray(value) ? value : [value];
  return names.filter((n) => typeof n === 'string' && n.trim() !== '' && !known.has(tagKey(n))).map((n) => n.trim());
}
