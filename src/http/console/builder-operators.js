// @ts-check
// Operator objects in the condition builder: `{"at_least": 2}`,
// `{"within_last": {"days": 30}}` and the like, one row per operator with a
// select of the operators its family allows and an editor for its operand.
// The operand's editor follows what the operator takes (text, a number, a
// list, a date, a pair of dates, a span, true/false, or any scalar). Each
// kind of condition names the family of operators it takes (text, number,
// time, value, tag); this module knows what each operator's operand looks
// like, the same wherever the operator appears.

import { h } from './dom.js';
import { button, errorsSlot, escapePointer, focusKey, input, isObject, renamed, select } from './builder-controls.js';
import { centsToUnits, currencySymbol, unitsToCents } from './money.js';

/** @typedef {import('./builder-controls.js').Context} Context */
/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./builder-controls.js').Ref} Ref */

/**
 * A family of operators: its name (which decides some operands' types) and
 * the operators a place of that family takes, in the order offered.
 * @typedef {object} Family
 * @property {'text' | 'number' | 'time' | 'value' | 'tag'} name
 * @property {readonly string[]} ops
 */

/**
 * What an operand looks like.
 * @typedef {'list' | 'span' | 'between' | 'bool' | 'instant' | 'number' | 'scalar' | 'string' | 'raw'} Shape
 */

/** @type {Record<string, string>} */
const LABELS = {
  equals: 'equals', not_equals: 'does not equal', in: 'is one of', contains: 'contains', starts_with: 'starts with',
  ends_with: 'ends with', domain: 'has the domain', more_than: 'more than', at_least: 'at least', less_than: 'less than',
  at_most: 'at most', since: 'since', before: 'before', between: 'between', within_last: 'within the last',
  older_than: 'older than', exists: 'exists', has: 'has', has_not: 'has not', any_of: 'has any of', all_of: 'has all of',
  none_of: 'has none of',
};

/** The units of a span, such as `{"days": 30}`. */
const UNITS = ['hours', 'days', 'weeks', 'months'];

/**
 * An operator's name for people.
 * @param {string} op
 * @returns {string}
 */
export function label(op) {
  return LABELS[op] || op;
}

/**
 * `YYYY-MM-DD`, `offsetDays` from now (UTC).
 * @param {number} [offsetDays]
 * @returns {string}
 */
function today(offsetDays = 0) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

/**
 * What an operator's value looks like, in a family.
 * @param {Family} family
 * @param {string} op
 * @returns {Shape}
 */
function shape(family, op) {
  if (['in', 'any_of', 'all_of', 'none_of'].includes(op)) return 'list';
  if (['within_last', 'older_than'].includes(op)) return 'span';
  if (op === 'between') return 'between';
  if (op === 'exists') return 'bool';
  if (['since', 'before'].includes(op)) return 'instant';
  if (family.name === 'number' || ['more_than', 'at_least', 'less_than', 'at_most'].includes(op)) return 'number';
  if (family.name === 'value' && ['equals', 'not_equals'].includes(op)) return 'scalar';
  if (family.ops.includes(op)) return 'string';
  return 'raw';
}

/**
 * The operand a new operator starts with.
 * @param {Family} family
 * @param {string} op
 * @returns {Json}
 */
export function defaultValue(family, op) {
  switch (shape(family, op)) {
    case 'list': return [];
    case 'span': return { days: 30 };
    case 'between': return [today(-30), today(1)];
    case 'bool': return true;
    case 'instant': return today(-30);
    case 'number': return family.name === 'number' ? 1 : 0;
    default: return '';
  }
}

/**
 * Whether `value` can stay the operand of an operator of this shape.
 * @param {Json} value
 * @param {Shape} kind
 * @returns {boolean}
 */
function fits(value, kind) {
  switch (kind) {
    case 'list': return Array.isArray(value);
    case 'span': return value && typeof value === 'object' && !Array.isArray(value);
    case 'between': return Array.isArray(value) && value.length === 2;
    case 'bool': return typeof value === 'boolean';
    case 'instant': case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number';
    case 'scalar': return ['string', 'number', 'boolean'].includes(typeof value);
    default: return true;
  }
}

/**
 * A number if the text is one, else the text (the API then says why not).
 * @param {string} text
 * @returns {number | string}
 */
function numberOrText(text) {
  const t = text.trim();
  return t !== '' && Number.isFinite(Number(t)) ? Number(t) : text;
}

/**
 * A value as written in a list or a typed box: numbers and true/false typed.
 * @param {string} text
 * @returns {number | string | boolean}
 */
function typed(text) {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  return numberOrText(t);
}

/**
 * A box for an amount of money: typed in units (250) after the currency's
 * symbol, kept in cents (25000) in the query. What is not a number is kept
 * as typed, for the API to refuse.
 * @param {Json} value
 * @param {string} label
 * @param {string} focus
 * @param {string} currency
 * @param {(value: Json) => void} set
 * @returns {HTMLElement}
 */
function moneyInput(value, label, focus, currency, set) {
  const box = input(centsToUnits(value), `${label}, in ${currency}`, focus, (t) => set(unitsToCents(t)),
    { inputmode: 'decimal', class: 'short' });
  box.dataset.money = currency;
  return h('span', { class: 'inline money' }, h('span', { class: 'currency', 'aria-hidden': 'true', text: currencySymbol(currency) }), box,
    h('span', { class: 'hint', text: 'saved in cents' }));
}

/**
 * Options of an operator object's editor.
 * @typedef {object} OpsOptions
 * @property {string | null} [currency] its numbers are amounts of money in
 *   cents, typed in units of this currency
 * @property {(op: string, value: Json) => HTMLElement | null} [note] a note
 *   shown beside an operator's operand, updated as it is typed
 * @property {string} [list] the id of a datalist its text boxes suggest from
 */

/**
 * The editor of one operator's operand (`ref` holds it).
 * @param {Family} family
 * @param {string} op
 * @param {Ref} ref
 * @param {string} pointer
 * @param {OpsOptions} [options]
 * @returns {HTMLElement}
 */
function valueEditor(family, op, ref, pointer, { currency = null, list } = {}) {
  /** @type {Record<string, string>} */
  const suggest = list ? { list } : {};
  const value = ref.get();
  const kind = shape(family, op);
  const f = `${pointer}:value`;
  const text = `Value: ${label(op)}`;
  switch (kind) {
    case 'list': {
      const items = Array.isArray(value) ? value.join(', ') : '';
      return input(items, `${text} (comma-separated)`, f, (t) => {
        const parts = t.split(',').map((s) => s.trim()).filter(Boolean);
        ref.set(family.name === 'value' ? parts.map(typed) : parts);
      }, { placeholder: 'a, b, c', ...suggest });
    }
    case 'span': {
      const span = isObject(value) ? value : { days: 30 };
      const unit = Object.keys(span)[0] || 'days';
      const amount = h('input', { type: 'number', min: 1, max: 100000, step: 1, value: span[unit] ?? '', 'aria-label': `${text}: how many`, class: 'short' });
      focusKey(amount, `${f}:amount`);
      const unitSelect = select(UNITS.map((u) => [u, u]), unit, `${text}: unit`, `${f}:unit`, () => write());
      function write() {
        ref.set({ [unitSelect.value]: numberOrText(amount.value) });
      }
      amount.addEventListener('input', write);
      return h('span', { class: 'inline' }, amount, unitSelect);
    }
    case 'between': {
      const pair = Array.isArray(value) ? value : ['', ''];
      const from = input(pair[0], `${text}: from (included)`, `${f}:from`, () => write(), { placeholder: 'YYYY-MM-DD', class: 'short' });
      const to = input(pair[1], `${text}: to (excluded)`, `${f}:to`, () => write(), { placeholder: 'YYYY-MM-DD', class: 'short' });
      function write() {
        ref.set([from.value, to.value]);
      }
      return h('span', { class: 'inline' }, from, h('span', { text: 'and' }), to);
    }
    case 'bool':
      return select([['true', 'yes'], ['false', 'no']], String(value), text, f, (v) => ref.set(v === 'true', true));
    case 'instant':
      return input(value, text, f, (t) => ref.set(t), { placeholder: 'YYYY-MM-DD or RFC 3339', class: 'short' });
    case 'number':
      if (currency) return moneyInput(value, text, f, currency, (v) => ref.set(v));
      return input(value, text, f, (t) => ref.set(numberOrText(t)), { inputmode: 'decimal', class: 'short' });
    case 'scalar': {
      const type = typeof value === 'boolean' ? String(value) : typeof value === 'number' ? 'number' : 'text';
      const typeSelect = select([['text', 'text'], ['number', 'number'], ['true', 'true'], ['false', 'false']], type,
        `${text}: type`, `${f}:type`, (t) => {
          if (t === 'true' || t === 'false') ref.set(t === 'true', true);
          else if (t === 'number') ref.set(typeof value === 'number' ? value : 0, true);
          else ref.set(typeof value === 'string' ? value : String(value), true);
        });
      if (type === 'true' || type === 'false') return h('span', { class: 'inline' }, typeSelect);
      if (type === 'number' && currency) return h('span', { class: 'inline' }, typeSelect, moneyInput(value, text, f, currency, (v) => ref.set(v)));
      const box = input(String(value), text, f, (t) => ref.set(type === 'number' ? numberOrText(t) : t), { class: 'short' });
      return h('span', { class: 'inline' }, typeSelect, box);
    }
    case 'string':
      return input(value, text, f, (t) => ref.set(t), suggest);
    default:
      return input(JSON.stringify(value), `${text} (JSON)`, f, (t) => {
        try {
          ref.set(JSON.parse(t));
        } catch {
          ref.set(t);
        }
      });
  }
}

/**
 * A note beside an operand (such as a tag no subscriber has), redrawn as the
 * operand is typed.
 * @param {string} op
 * @param {Ref} ref
 * @param {(op: string, value: Json) => HTMLElement | null} note
 * @returns {HTMLElement}
 */
function noteSlot(op, ref, note) {
  const slot = h('div', { class: 'note', 'aria-live': 'polite' });
  const draw = () => slot.replaceChildren(...[note(op, ref.get())].filter((n) => n !== null));
  draw();
  const set = ref.set;
  ref.set = (v, structural) => {
    set(v, structural);
    draw();
  };
  return slot;
}

/**
 * The operators of `family` (`ref` holds the object), one row each; `fixed`
 * keys (`key` of a field, `of` of a sum) are not operators.
 * @param {Context} ctx
 * @param {Family} family
 * @param {Ref} ref
 * @param {string} pointer
 * @param {string[]} [fixed]
 * @param {OpsOptions} [opts]
 * @returns {HTMLElement}
 */
export function opsEditor(ctx, family, ref, pointer, fixed = [], opts = {}) {
  const ops = ref.get();
  const wrap = h('div', { class: 'ops' });
  if (!isObject(ops)) {
    wrap.dataset.pointer = pointer;
    wrap.append(errorsSlot(), h('p', { class: 'muted', text: 'Not an operator object: edit it in the JSON.' }));
    return wrap;
  }
  for (const op of Object.keys(ops)) {
    if (fixed.includes(op)) continue;
    const at = `${pointer}/${escapePointer(op)}`;
    /** @type {[string, string][]} */
    const options = family.ops.map((o) => [o, label(o)]);
    if (!family.ops.includes(op)) options.unshift([op, `${op} (unknown)`]);
    const opSelect = select(options, op, 'Operator', `${at}:op`, (next) => {
      const current = ref.get();
      const old = current[op];
      const value = shape(family, next) === shape(family, op) && fits(old, shape(family, next)) ? old : defaultValue(family, next);
      ref.set(renamed(current, op, next, value), true);
    });
    /** @type {Ref} */
    const valueRef = {
      get: () => ref.get()[op],
      set: (v, structural) => {
        ref.get()[op] = v;
        ctx.changed(structural);
      },
    };
    const remove = button('×', `${at}:remove`, () => {
      const current = ref.get();
      delete current[op];
      ctx.changed(true);
    }, { 'aria-label': `Remove the operator ${label(op)}`, title: 'Remove this operator', class: 'small icon' });
    wrap.append(h('div', { class: 'op', dataset: { pointer: at } },
      h('div', { class: 'op-row' }, opSelect, valueEditor(family, op, valueRef, at, opts), remove),
      opts.note ? noteSlot(op, valueRef, opts.note) : null, errorsSlot()));
  }
  const used = Object.keys(ops);
  const free = family.ops.find((o) => !used.includes(o) && o !== 'exists');
  if (free) {
    wrap.append(button('+ operator', `${pointer}:add-op`, () => {
      ref.get()[free] = defaultValue(family, free);
      ctx.changed(true);
    }, { 'aria-label': 'Add an operator' }));
  }
  return wrap;
}
