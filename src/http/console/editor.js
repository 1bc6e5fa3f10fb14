// @ts-check
// The segment editor: name, description and query, with the condition
// builder and the raw JSON side by side and kept in step. As the query
// changes, the preview endpoint gives the live count and a sample of members
// (debounced), or the validation errors, shown at the condition or operator
// each error's JSON pointer names, in the builder and in the JSON. Saving an
// existing segment sends If-Match, so a change saved meanwhile by someone
// else is never overwritten silently.
//
// A problem is shown only where the user has been: once they left the text
// box it is in, typed in the JSON, or tried to save. A condition just added
// has blanks to fill in; while the user has been to none of them, no count
// is asked for (the server would only refuse it).

import { ApiError, api, isAbort, queryPointer, statusOf } from './api.js';
import { createBuilder, escapePointer } from './builder.js';
import { count, debounce, errorBox, errorMessage, h, labelled, loading, replace, subscriberHref, toast } from './dom.js';
import { datalists, loadSuggestions } from './suggest.js';

/** @typedef {import('./api.js').Counts} Counts */
/** @typedef {import('./api.js').FieldError} FieldError */
/** @typedef {import('./api.js').Segment} Segment */
/** @typedef {{ pointer: string, message: string }} QueryError */

const PREVIEW_DELAY_MS = 400;

/**
 * Where each value of a JSON text starts and ends, by JSON pointer.
 * @param {string} text
 * @returns {Map<string, [number, number]>}
 */
export function jsonPositions(text) {
  /** @type {Map<string, [number, number]>} */
  const places = new Map();
  let i = 0;
  const space = () => {
    while (i < text.length && /\s/.test(text[i])) i += 1;
  };
  const string = () => {
    const start = i;
    i += 1;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i += 1;
    return JSON.parse(text.slice(start, i));
  };
  /**
   * @param {string} pointer
   * @param {number} [from]
   */
  const value = (pointer, from) => {
    space();
    const start = from ?? i;
    if (text[i] === '{') {
      i += 1;
      space();
      if (text[i] === '}') i += 1;
      else {
        for (;;) {
          space();
          const keyStart = i;
          const key = string();
          space();
          i += 1;
          value(`${pointer}/${escapePointer(key)}`, keyStart);
          space();
          const sep = text[i];
          i += 1;
          if (sep !== ',') break;
        }
      }
    } else if (text[i] === '[') {
      i += 1;
      space();
      if (text[i] === ']') i += 1;
      else {
        for (let n = 0; ; n += 1) {
          value(`${pointer}/${n}`);
          space();
          const sep = text[i];
          i += 1;
          if (sep !== ',') break;
        }
      }
    } else if (text[i] === '"') string();
    else while (i < text.length && !/[\s,\]}]/.test(text[i])) i += 1;
    places.set(pointer, [start, i]);
  };
  try {
    value('');
  } catch {
    // Only ever given text that JSON.parse accepted.
  }
  return places;
}

/**
 * The JSON pointers of the blanks of a query: every empty text, and every
 * empty key (a detail test's path not typed yet). A foreign query has none.
 * @param {unknown} value
 * @param {string} [pointer]
 * @param {string[]} [into]
 * @returns {string[]}
 */
export function blanks(value, pointer = '', into = []) {
  if (value === '') into.push(pointer);
  else if (Array.isArray(value)) value.forEach((v, i) => blanks(v, `${pointer}/${i}`, into));
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (pointer === '' && k === 'foreign') continue;
      if (k === '') into.push(`${pointer}/`);
      blanks(v, `${pointer}/${escapePointer(k)}`, into);
    }
  }
  return into;
}

/**
 * Whether `pointer` is `place` or inside it (`place` may end with `/`: an
 * empty key).
 * @param {string} pointer
 * @param {string} place
 * @returns {boolean}
 */
function within(pointer, place) {
  return pointer === place || pointer.startsWith(place.endsWith('/') ? place : `${place}/`);
}

/**
 * The place in the query of a builder control, from its focus key
 * (`/all/0/tag/has:value` → `/all/0/tag/has`).
 * @param {string} key
 * @returns {string}
 */
function placeOf(key) {
  return key.replace(/(:[a-z-]+)+$/, '');
}

/**
 * @param {string} text
 * @param {number} offset
 */
function lineOf(text, offset) {
  return text.slice(0, offset).split('\n').length;
}

/**
 * The editor of the segment `id`, or of a new segment (`id` null), in `view`.
 * @param {HTMLElement} view
 * @param {{ id: string | null, signal: AbortSignal }} options
 */
export async function renderEditor(view, { id, signal }) {
  replace(view, loading(id ? 'Loading the segment…' : 'Loading…'));
  const [list, existing] = await Promise.all([
    api('GET', '/fetch/segments', { signal }),
    id ? api('GET', `/fetch/segments/${id}`, { signal }) : null,
  ]);
  /** @type {Segment[]} */
  const listed = list.data.data;
  const suggestions = await loadSuggestions(listed, signal);
  const others = listed.filter((s) => s.id !== id).map((s) => ({ id: s.id, name: s.attributes.name }));
  let etag = existing ? existing.etag : null;
  /** @type {Segment | null} */
  const segment = existing ? existing.data.data : null;
  const initial = segment ? segment.attributes.visitor_event_query : { all: [] };

  const name = h('input', { name: 'name', required: true, maxlength: 255, value: segment ? segment.attributes.name : '' });
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 2000 });
  description.value = segment?.attributes.description || '';
  const nameErrors = h('div', { class: 'errors' });
  const descriptionErrors = h('div', { class: 'errors' });
  const json = h('textarea', { id: 'query-json', class: 'json', rows: 18, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'json-status' });
  const jsonStatus = h('div', { id: 'json-status', class: 'json-status', 'aria-live': 'polite' });
  const builderBox = h('div', { class: 'builder', id: 'builder' });
  const preview = h('div', { class: 'preview-body' });
  const message = h('div', { 'aria-live': 'assertive' });
  const save = h('button', { type: 'submit', text: segment ? 'Save changes' : 'Create segment' });

  // Where the user has been: the places of the text boxes they left, and
  // whether they typed in the JSON or tried to save (then every problem
  // shows).
  /** @type {Set<string>} */
  const touched = new Set();
  let everywhere = false;
  /** @type {QueryError[]} */
  let lastErrors = [];
  let waiting = false;
  /** @param {string} pointer */
  const shown = (pointer) => everywhere || [...touched].some((t) => within(pointer, t) || within(t, pointer));
  // Blanks none of which the user has been to: nothing to ask the server
  // about yet (once one was left, it is asked, and shows that one only).
  const onlyUntouchedBlanks = () => {
    if (everywhere) return false;
    const all = blanks(builder.query());
    return all.length > 0 && all.every((b) => ![...touched].some((t) => within(b, t)));
  };
  /** @param {Event} event */
  const left = (event) => {
    const el = event.target;
    if (!(el instanceof HTMLElement) || !el.dataset.focus) return;
    // Text boxes count once left; a select once chosen, but not the kind
    // of a condition or an operator (those make new blanks to fill in).
    if (el instanceof HTMLSelectElement && /:(kind|op)$/.test(el.dataset.focus)) return;
    if (!(el instanceof HTMLInputElement) && !(el instanceof HTMLSelectElement)) return;
    touched.add(placeOf(el.dataset.focus));
    if (waiting) schedulePreview();
    else showQueryErrors(lastErrors);
  };
  builderBox.addEventListener('focusout', left);
  builderBox.addEventListener('change', (event) => {
    if (event.target instanceof HTMLSelectElement) left(event);
  });

  let jsonValid = true;
  const builder = createBuilder(builderBox, {
    segments: others,
    knownTags: suggestions.knownTags,
    onChange: (query) => {
      json.value = JSON.stringify(query, null, 2);
      jsonValid = true;
      replace(jsonStatus);
      json.removeAttribute('aria-invalid');
      schedulePreview();
    },
  });

  json.addEventListener('input', () => {
    everywhere = true;
    let parsed;
    try {
      parsed = JSON.parse(json.value);
    } catch (e) {
      jsonValid = false;
      json.setAttribute('aria-invalid', 'true');
      replace(jsonStatus, h('p', { class: 'field-error', text: `Not valid JSON yet: ${errorMessage(e)}` }));
      schedulePreview.cancel();
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      jsonValid = false;
      json.setAttribute('aria-invalid', 'true');
      replace(jsonStatus, h('p', { class: 'field-error', text: 'The query must be a JSON object, such as {} for everyone.' }));
      return;
    }
    jsonValid = true;
    json.removeAttribute('aria-invalid');
    replace(jsonStatus);
    builder.load(parsed);
    schedulePreview();
  });

  /**
   * Shows the problems of the query where the user has been.
   * @param {QueryError[]} all
   */
  function showQueryErrors(all) {
    lastErrors = all;
    const errors = all.filter((e) => shown(e.pointer));
    builder.showErrors(errors);
    if (!errors.length) {
      replace(jsonStatus);
      return;
    }
    const text = json.value;
    const places = jsonPositions(text);
    const items = errors.map(({ pointer, message: m }) => {
      let p = pointer;
      while (!places.has(p) && p !== '') p = p.slice(0, p.lastIndexOf('/'));
      const [start, end] = places.get(p) || [0, 0];
      const line = lineOf(text, start);
      const go = h('button', { type: 'button', class: 'link', text: `line ${line}`, 'aria-label': `Show line ${line} in the JSON` });
      go.addEventListener('click', () => {
        json.focus();
        json.setSelectionRange(start, end);
      });
      return h('li', { dataset: { pointer } }, go, ' ', h('code', { text: pointer || '(the whole query)' }), `: ${m}`);
    });
    replace(jsonStatus, h('ul', { class: 'json-errors', 'aria-label': 'Problems in the query' }, items));
  }

  let previewSeq = 0;
  /** @type {AbortController | null} */
  let inFlight = null;
  const schedulePreview = debounce(runPreview, PREVIEW_DELAY_MS);

  async function runPreview() {
    if (!jsonValid) return;
    previewSeq += 1;
    const seq = previewSeq;
    if (inFlight) inFlight.abort();
    waiting = onlyUntouchedBlanks();
    if (waiting) {
      showQueryErrors([]);
      replace(preview, h('p', { class: 'muted', dataset: { waiting: '' }, text: 'Fill in the new condition to see the count.' }));
      return;
    }
    inFlight = new AbortController();
    preview.setAttribute('aria-busy', 'true');
    try {
      const { data } = await api('POST', '/fetch/segments/preview', {
        body: { visitor_event_query: builder.query(), sample: 10 },
        signal: inFlight.signal,
      });
      if (seq !== previewSeq) return;
      showQueryErrors([]);
      /** @type {Counts} */
      const p = data.data;
      const sample = p.sample || [];
      replace(preview,
        h('p', { class: 'live-count' },
          h('strong', { dataset: { liveCount: String(p.user_count) }, text: `${count(p.user_count)} member${p.user_count === 1 ? '' : 's'}` }),
          ` (${count(p.subscriber_count)} subscribed, ${count(p.unsubscriber_count)} unsubscribed)`),
        sample.length
          ? h('div', {}, h('h3', { text: `First ${sample.length}` }),
            h('ul', { class: 'sample' }, sample.map((s) => h('li', {}, h('a', { href: subscriberHref(s.attributes.email), text: s.attributes.email })))))
          : h('p', { class: 'muted', text: 'Nobody matches this query now.' }));
    } catch (e) {
      if (isAbort(e) || seq !== previewSeq) return;
      const errors = e instanceof ApiError && e.status === 422 ? queryErrors(e.fieldErrors) : [];
      if (errors.length) {
        showQueryErrors(errors);
        const visible = errors.filter((q) => shown(q.pointer)).length;
        replace(preview, h('p', { class: 'muted', text: visible
          ? `No count while the query has ${visible === 1 ? 'a problem' : `${visible} problems`} (shown where they are).`
          : 'No count until the conditions are complete.' }));
      } else {
        replace(preview, errorBox(e));
      }
    } finally {
      if (seq === previewSeq) preview.removeAttribute('aria-busy');
    }
  }

  /**
   * The errors of the query's fields, each at its pointer in the query.
   * @param {FieldError[]} fieldErrors
   * @returns {QueryError[]}
   */
  function queryErrors(fieldErrors) {
    /** @type {QueryError[]} */
    const errors = [];
    for (const f of fieldErrors) {
      const pointer = queryPointer(f.field);
      if (pointer !== null) errors.push({ pointer, message: f.message });
    }
    return errors;
  }

  const form = h('form', { class: 'editor', novalidate: true },
    h('div', { class: 'title' }, h('h1', { text: segment ? `Edit “${segment.attributes.name}”` : 'New segment' })),
    h('div', { class: 'meta' },
      h('div', {}, labelled('Name', name), nameErrors),
      h('div', {}, labelled('Description', description, 'Optional. Shown beside the name in the list.'), descriptionErrors)),
    h('div', { class: 'editor-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'builder-title' }, h('h2', { id: 'builder-title', text: 'Conditions' }), builderBox),
      h('section', { class: 'panel', 'aria-label': 'The query as JSON' },
        h('h2', { id: 'json-title' }, h('label', { for: 'query-json', text: 'Query (JSON)' })),
        json, jsonStatus,
        h('p', { class: 'hint' }, 'The grammar: ', h('a', { href: '/api/query-language.schema.json', text: 'JSON Schema' }), '.'))),
    h('section', { class: 'panel preview', 'aria-labelledby': 'preview-title', 'aria-live': 'polite' },
      h('h2', { id: 'preview-title', text: 'Live count' }), preview),
    message,
    datalists(suggestions),
    h('div', { class: 'actions' }, save, h('a', { class: 'button secondary', href: segment ? `#/segment/${id}` : '#/segments', text: 'Cancel' })));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    everywhere = true;
    showQueryErrors(lastErrors);
    replace(message);
    nameErrors.replaceChildren();
    descriptionErrors.replaceChildren();
    name.removeAttribute('aria-invalid');
    if (!jsonValid) {
      replace(message, h('p', { class: 'notice error', role: 'alert', text: 'The JSON is not valid yet: fix it before saving.' }));
      json.focus();
      return;
    }
    const body = {
      segment: {
        name: name.value,
        description: description.value.trim() === '' ? null : description.value,
        visitor_event_query: builder.query(),
      },
    };
    save.disabled = true;
    try {
      const answer = segment
        ? await api('PATCH', `/fetch/segments/${id}`, { body, headers: etag ? { 'If-Match': etag } : {} })
        : await api('POST', '/fetch/segments', { body });
      etag = answer.etag;
      toast(segment ? 'Saved.' : 'Segment created.');
      location.hash = `#/segment/${answer.data.data.id}`;
    } catch (e) {
      save.disabled = false;
      if (statusOf(e) === 412) {
        const reload = h('button', { type: 'button', class: 'secondary', text: 'Load their version' });
        reload.addEventListener('click', () => window.dispatchEvent(new HashChangeEvent('hashchange')));
        replace(message, h('div', { class: 'notice error', role: 'alert' },
          h('p', { text: `${errorMessage(e)} Copy your query from the JSON if you want to keep it, then load their version and apply your changes again.` }), reload));
        return;
      }
      if (e instanceof ApiError && e.status === 422 && e.fieldErrors.length) {
        const general = [];
        for (const f of e.fieldErrors) {
          if (f.field === 'name') {
            nameErrors.append(h('p', { class: 'field-error', text: `Name ${f.message}` }));
            name.setAttribute('aria-invalid', 'true');
          } else if (f.field === 'description') {
            descriptionErrors.append(h('p', { class: 'field-error', text: `Description ${f.message}` }));
          } else if (queryPointer(f.field) === null) general.push(`${f.field}: ${f.message}`);
        }
        const q = queryErrors(e.fieldErrors);
        if (q.length) showQueryErrors(q);
        replace(message, h('p', { class: 'notice error', role: 'alert', text: general.length ? general.join('; ') : 'Not saved: see the problems marked above.' }));
        return;
      }
      replace(message, errorBox(e));
    }
  });

  replace(view, form);
  builder.load(structuredClone(initial));
  json.value = JSON.stringify(initial, null, 2);
  runPreview();
  if (!segment) name.focus();
}
