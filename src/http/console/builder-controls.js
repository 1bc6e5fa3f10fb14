// @ts-check
// The condition builder's small parts, shared by the modules of each kind of
// condition: text boxes, selects and buttons that carry a focus key (so a
// redraw can put the focus back on the control that had it), the slot where
// a validation error is shown, JSON pointers, and the types every builder
// module speaks in (a reference to a place in the query, a kind of
// condition, and the context a kind draws in).

import { h } from './dom.js';

/**
 * A value of the query as the builder edits it: any JSON, since the query
 * may come from the JSON box in a shape the grammar does not allow.
 * @typedef {any} Json
 */

/**
 * A place in the query: `get` reads it, `set` writes it and reports the
 * change (`structural`: the builder is redrawn too).
 * @typedef {object} Ref
 * @property {() => Json} get
 * @property {(value: Json, structural?: boolean) => void} set
 */

/**
 * A segment the `segment` condition can name.
 * @typedef {object} SegmentChoice
 * @property {string | number} id
 * @property {string} name
 */

/**
 * What a kind of condition draws with, given by the builder.
 * @typedef {object} Context
 * @property {SegmentChoice[]} segments the site's other segments
 * @property {(structural?: boolean) => void} changed reports a change of the query
 * @property {(object: Json, key: string | number) => Ref} at a reference to `object[key]`
 * @property {(ref: Ref, pointer: string, options?: { onRemove?: () => void }) => HTMLElement} condition
 *   the editor of a condition nested at `pointer`
 * @property {(kind: string) => Json} create a new condition of a kind
 * @property {Set<string> | null} knownTags the site's tags (normalised
 *   names), to flag a tag no subscriber has; null when not known
 */

/**
 * A kind of condition: its key in the query, its name in the kind select,
 * a new condition of it, and the controls below the condition's head.
 * @typedef {object} Kind
 * @property {string} kind
 * @property {string} label
 * @property {(segments: SegmentChoice[]) => Json} create
 * @property {(ctx: Context, condition: Json, ref: Ref, pointer: string) => Node[]} draw
 */

/**
 * RFC 6901: `~` → `~0`, `/` → `~1`.
 * @param {string | number} key
 * @returns {string}
 */
export function escapePointer(key) {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * @param {unknown} v
 * @returns {v is Record<string, Json>}
 */
export function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * `{"a": 1, "b": 2}` with `b` renamed `c`, keeping the order of keys.
 * @param {Record<string, Json>} object
 * @param {string} from
 * @param {string} to
 * @param {Json} value
 * @returns {Record<string, Json>}
 */
export function renamed(object, from, to, value) {
  /** @type {Record<string, Json>} */
  const out = {};
  for (const [k, v] of Object.entries(object)) {
    if (k === from) out[to] = value;
    else if (k !== to) out[k] = v;
  }
  return out;
}

/**
 * Gives `el` a stable key, so a redraw can put the focus back where it was.
 * @template {HTMLElement} E
 * @param {E} el
 * @param {string} key
 * @returns {E}
 */
export function focusKey(el, key) {
  el.dataset.focus = key;
  return el;
}

/** Where the validation errors of a condition or operator are shown. */
export function errorsSlot() {
  return h('div', { class: 'errors' });
}

/**
 * A text box; `onInput` gets its text at every change.
 * @param {Json} value
 * @param {string} label
 * @param {string} focus
 * @param {(text: string) => void} onInput
 * @param {Record<string, string | number | boolean>} [attrs]
 * @returns {HTMLInputElement}
 */
export function input(value, label, focus, onInput, attrs = {}) {
  const el = h('input', { type: 'text', value: value ?? '', 'aria-label': label, spellcheck: 'false', ...attrs });
  el.addEventListener('input', () => onInput(el.value));
  return focusKey(el, focus);
}

/**
 * A select of `[value, text]` options; `onSelect` gets the value chosen.
 * @param {[string, string][]} options
 * @param {string} value
 * @param {string} label
 * @param {string} focus
 * @param {(value: string) => void} onSelect
 * @returns {HTMLSelectElement}
 */
export function select(options, value, label, focus, onSelect) {
  const el = h('select', { 'aria-label': label },
    options.map(([v, text]) => h('option', { value: v, selected: v === value, text })));
  el.addEventListener('change', () => onSelect(el.value));
  return focusKey(el, focus);
}

/**
 * A small button.
 * @param {string} text
 * @param {string} focus
 * @param {() => void} onClick
 * @param {Record<string, string>} [attrs]
 * @returns {HTMLButtonElement}
 */
export function button(text, focus, onClick, attrs = {}) {
  return focusKey(h('button', { type: 'button', class: attrs.class || 'small', text, onClick, ...attrs }), focus);
}
