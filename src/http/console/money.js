// @ts-check
// Money in the console: amounts travel in cents (an event's `value.amount`,
// and so a `sum` of it), and people read and type them in units with their
// currency ($606.50, 250). The currency is the one a query names for the
// counted events (`"where": {"value.currency": {"equals": "EUR"}}`), else
// USD. Kept simple on purpose: every currency is taken to have two decimals
// (cents), which holds for USD, EUR, GBP and most others but not for, say,
// JPY; the wire is unchanged either way, only what is shown and typed.

import { isObject } from './builder-controls.js';

/** The currency assumed when a query names none. */
export const DEFAULT_CURRENCY = 'USD';

/** The detail path whose numbers are amounts in cents. */
export const AMOUNT_PATH = 'value.amount';

/**
 * Whether numbers at this detail path are money (in cents).
 * @param {unknown} path
 * @returns {boolean}
 */
export function isMoneyPath(path) {
  return typeof path === 'string' && path.trim() === AMOUNT_PATH;
}

/**
 * The currency of an event test: the one its `where` requires of
 * `value.currency` (with `equals`, or `in` with one item), else USD.
 * @param {unknown} eventTest the object under `event`
 * @returns {string}
 */
export function currencyOf(eventTest) {
  if (!isObject(eventTest) || !isObject(eventTest.where)) return DEFAULT_CURRENCY;
  const test = eventTest.where['value.currency'];
  if (!isObject(test)) return DEFAULT_CURRENCY;
  const named = typeof test.equals === 'string' ? test.equals
    : Array.isArray(test.in) && test.in.length === 1 && typeof test.in[0] === 'string' ? test.in[0] : null;
  return named && /^[A-Za-z]{3}$/.test(named.trim()) ? named.trim().toUpperCase() : DEFAULT_CURRENCY;
}

/** @type {Map<string, Intl.NumberFormat>} */
const formats = new Map();

/**
 * @param {string} currency
 * @returns {Intl.NumberFormat}
 */
function format(currency) {
  let f = formats.get(currency);
  if (!f) {
    try {
      f = new Intl.NumberFormat('en', { style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: 2 });
    } catch {
      f = new Intl.NumberFormat('en', { style: 'currency', currency: DEFAULT_CURRENCY, minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    formats.set(currency, f);
  }
  return f;
}

/**
 * An amount in cents as people read it: 60650 → `$606.50`; a whole number
 * of units without cents when `short` (25000 → `$250`). Anything but a
 * number is shown as it is.
 * @param {unknown} cents
 * @param {string} [currency]
 * @param {{ short?: boolean }} [options]
 * @returns {string}
 */
export function money(cents, currency = DEFAULT_CURRENCY, { short = false } = {}) {
  if (typeof cents !== 'number' || !Number.isFinite(cents)) return String(cents);
  const text = format(currency).format(cents / 100);
  return short && Number.isInteger(cents) && cents % 100 === 0 ? text.replace(/\.00(?=\D*$)/, '') : text;
}

/**
 * The symbol or code shown before an amount typed in units (`$`, `€`, `CHF`).
 * @param {string} currency
 * @returns {string}
 */
export function currencySymbol(currency) {
  const part = format(currency).formatToParts(0).find((p) => p.type === 'currency');
  return part ? part.value : currency;
}

/**
 * Cents as units to type: 25000 → `250`, 60650 → `606.50`; what is not a
 * number is given back as text.
 * @param {unknown} cents
 * @returns {string}
 */
export function centsToUnits(cents) {
  if (typeof cents !== 'number' || !Number.isFinite(cents)) return cents === undefined || cents === null ? '' : String(cents);
  if (Number.isInteger(cents)) return cents % 100 === 0 ? String(cents / 100) : (cents / 100).toFixed(2);
  return String(cents / 100);
}

/**
 * Units typed as cents: `250` → 25000, `606.5` → 60650 (rounded to the
 * cent); text that is not a number is kept as text (the API then says why).
 * @param {string} text
 * @returns {number | string}
 */
export function unitsToCents(text) {
  const t = text.trim().replace(/,/g, '');
  if (t === '' || !Number.isFinite(Number(t))) return text;
  return Math.round(Number(t) * 100);
}
