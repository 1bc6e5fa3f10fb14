// @ts-check
// The condition builder: every construct of the query language as controls,
// kept in step with the query object it edits. This module is its core: the
// kinds of condition (each drawn by a module of its own: builder-groups.js,
// builder-email.js, builder-subscriber.js, builder-tag.js, builder-field.js,
// builder-event.js, builder-segment.js, builder-sample.js), the select that changes a
// condition's kind, redrawing, and showing the API's validation errors. Each
// condition and each operator carries the JSON pointer of its place in the
// query (`data-pointer`), so a validation error from the API is shown right
// there.
//
// The builder edits the object it is given in place. A change of a value
// (typing) only reports the new query; a change of shape (adding, removing,
// another kind or operator) also redraws the builder, keeping the focus on
// the control that had it.

import { h, nextId, replace } from './dom.js';
import { button, errorsSlot, isObject, select } from './builder-controls.js';
import { ALL, ANY, GROUPS, NOT } from './builder-groups.js';
import { EMAIL } from './builder-email.js';
import { CREATED, SUBSCRIBED } from './builder-subscriber.js';
import { TAG } from './builder-tag.js';
import { FIELD } from './builder-field.js';
import { EVENT } from './builder-event.js';
import { SEGMENT } from './builder-segment.js';
import { SAMPLE } from './builder-sample.js';

export { escapePointer } from './builder-controls.js';

/** @typedef {import('./builder-controls.js').Context} Context */
/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-controls.js').Ref} Ref */
/** @typedef {import('./builder-controls.js').SegmentChoice} SegmentChoice */

/** Every kind of condition, in the order the grammar document lists them. */
const ALL_KINDS = [ALL, ANY, NOT, GROUPS, EMAIL, SUBSCRIBED, CREATED, TAG, FIELD, EVENT, SEGMENT, SAMPLE];

/**
 * `[kind, name]` of every kind of condition.
 * @type {[string, string][]}
 */
export const KINDS = ALL_KINDS.map((k) => [k.kind, k.label]);

/**
 * A new condition of `kind`.
 * @param {string} kind
 * @param {SegmentChoice[]} [segments]
 * @returns {Json}
 */
export function defaultCondition(kind, segments = []) {
  const found = ALL_KINDS.find((k) => k.kind === kind);
  return found ? found.create(segments) : {};
}

/**
 * The kind of a condition: its one key, if a kind of condition.
 * @param {Json} condition
 * @returns {Kind | null}
 */
function kindOf(condition) {
  if (!isObject(condition)) return null;
  const keys = Object.keys(condition);
  return keys.length === 1 ? ALL_KINDS.find((k) => k.kind === keys[0]) || null : null;
}

/**
 * The builder, drawn in `container`; `onChange` gets the query at every
 * change.
 * @param {HTMLElement} container
 * @param {{ segments?: SegmentChoice[], knownTags?: Set<string> | null, onChange: (query: Json) => void }} options
 */
export function createBuilder(container, { segments = [], knownTags = null, onChange }) {
  /** @type {Json} */
  let query = {};
  let mark = 0;

  /** @param {boolean} [structural] */
  function changed(structural) {
    if (structural) draw();
    onChange(query);
  }

  function draw() {
    const active = document.activeElement;
    const key = active instanceof HTMLElement && container.contains(active) ? active.dataset.focus : null;
    mark += 1;
    replace(container, rootEditor());
    if (key) {
      const again = [...container.querySelectorAll('[data-focus]')]
        .find((el) => el instanceof HTMLElement && el.dataset.focus === key);
      if (again instanceof HTMLElement) again.focus();
    }
  }

  /** @type {Context} */
  const ctx = {
    segments,
    changed,
    at: (object, key) => ({
      get: () => object[key],
      set: (v, structural) => {
        object[key] = v;
        changed(structural);
      },
    }),
    condition: (ref, pointer, { onRemove } = {}) => conditionEditor(ref, pointer, { onRemove }),
    create: (kind) => defaultCondition(kind, segments),
    knownTags,
  };

  /**
   * A condition: the select of its kind, its Remove, and its kind's controls.
   * @param {Ref} ref
   * @param {string} pointer
   * @param {{ onRemove?: () => void, root?: boolean }} [options]
   * @returns {HTMLElement}
   */
  function conditionEditor(ref, pointer, { onRemove, root = false } = {}) {
    const value = ref.get();
    const kind = kindOf(value);
    const options = KINDS.map(([k, text]) => /** @type {[string, string]} */ ([k, text]));
    if (root) options.unshift(['everyone', 'Everyone (no conditions)']);
    let current = kind ? kind.kind : null;
    if (root && isObject(value) && Object.keys(value).length === 0) current = 'everyone';
    if (!current) options.unshift(['', 'Unrecognised']);
    const kindSelect = select(options, current || '', root ? 'Who is in the segment' : 'Condition', `${pointer}:kind`, (next) => {
      const old = ref.get();
      let replacement;
      if (next === 'everyone') replacement = {};
      else if ((next === 'all' || next === 'any') && (current === 'all' || current === 'any')) replacement = { [next]: old[current] };
      else if ((next === 'all' || next === 'any') && current && current !== 'everyone') replacement = { [next]: [old] };
      else replacement = defaultCondition(next, segments);
      ref.set(replacement, true);
    });
    const head = h('div', { class: 'cond-head' }, kindSelect);
    if (onRemove) {
      head.append(button('Remove', `${pointer}:remove`, onRemove, { 'aria-label': 'Remove this condition', class: 'small secondary' }));
    }
    const box = h('div', { class: `cond kind-${current || 'unknown'}`, dataset: { pointer } }, head, errorsSlot());
    if (current === 'everyone') {
      box.append(h('p', { class: 'muted', text: 'Every subscriber of the site. Choose a condition above to narrow it.' }));
      return box;
    }
    if (!kind) {
      box.append(h('p', { class: 'muted', text: 'This is not a condition the builder knows: edit it in the JSON.' }));
      return box;
    }
    box.append(...kind.draw(ctx, value, ref, pointer));
    return box;
  }

  function rootEditor() {
    if (isObject(query) && Object.keys(query).length === 1 && 'foreign' in query) {
      return h('div', { class: 'cond', dataset: { pointer: '' } }, errorsSlot(),
        h('p', { text: 'This query is kept in the foreign form: Corral stores it as written and never evaluates it. Edit it in the JSON.' }));
    }
    return conditionEditor({
      get: () => query,
      set: (v, structural) => {
        query = v;
        changed(structural);
      },
    }, '', { root: true });
  }

  return {
    /**
     * Shows `next` (an object), redrawing everything.
     * @param {Json} next
     */
    load(next) {
      query = next;
      draw();
    },
    /** The query as it is now. */
    query: () => query,
    /**
     * Shows each `{pointer, message}` at the deepest element its pointer names.
     * @param {{ pointer: string, message: string }[]} errors
     * @returns {number} how many times the builder has been drawn
     */
    showErrors(errors) {
      for (const slot of container.querySelectorAll('.errors')) slot.replaceChildren();
      for (const el of container.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      /** @type {Map<string, HTMLElement>} */
      const places = new Map();
      for (const el of container.querySelectorAll('[data-pointer]')) {
        if (el instanceof HTMLElement && el.dataset.pointer !== undefined) places.set(el.dataset.pointer, el);
      }
      for (const { pointer, message } of errors) {
        let p = pointer;
        while (!places.has(p) && p !== '') p = p.slice(0, p.lastIndexOf('/'));
        const place = places.get(p) || places.get('');
        if (!place) continue;
        const slot = place.querySelector(':scope > .errors') || place.querySelector(':scope > .op-row + .errors');
        const rest = pointer.slice(p.length);
        const id = nextId('err');
        (slot || place).append(h('p', { class: 'field-error', id, text: rest ? `${rest}: ${message}` : message }));
        const control = place.querySelector(':scope > .op-row input, :scope > .op-row select, :scope > input, :scope > select, :scope > .cond-head select');
        if (control) {
          control.setAttribute('aria-invalid', 'true');
          control.setAttribute('aria-describedby', id);
        }
      }
      return mark;
    },
  };
}
