// @ts-check
// Small helpers to build the page from elements (never from markup strings),
// HTML or SVG, and to format what the API answers.

/**
 * What `h` and `replace` take as children: nodes, text, or lists of them;
 * null, undefined and false are skipped.
 * @typedef {Node | string | number | null | undefined | false | Child[]} Child
 */

/**
 * What `h` takes as attributes.
 * @typedef {{ [name: string]: string | number | boolean | null | undefined | DOMStringMap | ((event: Event) => void) }} Attrs
 */

/**
 * Creates an element. `attrs`: `class`, `text`, `on<Event>` handlers,
 * `dataset` (an object), booleans for boolean attributes, strings for the rest.
 * Children are nodes, strings, or arrays of them; null and false are skipped.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = String(value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value') /** @type {HTMLInputElement} */ (el).value = String(value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replaces every child of `el`.
 * @template {Element} E
 * @param {E} el
 * @param {...Child} children
 * @returns {E}
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Creates an SVG element, as `h` an HTML one: `class`, `text` and
 * `dataset` as there, every other attribute set as given (numbers as text).
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {{ [name: string]: string | number | null | undefined | DOMStringMap } | null} [attrs]
 * @param {...Child} children
 * @returns {SVGElementTagNameMap[K]}
 */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset' && typeof value === 'object') Object.assign(el.dataset, value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

let uid = 0;
/**
 * A fresh id for tying a label to its control.
 * @param {string} [prefix]
 * @returns {string}
 */
export function nextId(prefix = 'c') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled control: `<label for>` and the control, wrapped.
 * @param {string} text
 * @param {HTMLElement} control
 * @param {string} [hint]
 * @returns {HTMLDivElement}
 */
export function labelled(text, control, hint) {
  if (!control.id) control.id = nextId('f');
  const hintEl = hint ? h('span', { class: 'hint', id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id, text }), control, hintEl);
}

const numberFormat = new Intl.NumberFormat('en');

/**
 * A count with thousands separators; a dash when it is not a number.
 * @param {unknown} n
 * @returns {string}
 */
export function count(n) {
  return typeof n === 'number' ? numberFormat.format(n) : '—';
}

/**
 * `2026-11-26T09:00:00.000Z` → a short local date and time.
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * A `<time>` element showing `iso` locally, with the exact value as its title.
 * @param {string | null | undefined} iso
 * @returns {HTMLTimeElement}
 */
export function time(iso) {
  return h('time', { datetime: iso, title: iso, text: when(iso) });
}

/**
 * The element of the page (index.html) with this id.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`The page has no #${id}.`);
  return el;
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * A short-lived message at the bottom of the screen, read out by screen readers.
 * @param {string} message
 */
export function toast(message) {
  const el = byId('toast');
  el.textContent = message;
  el.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove('shown'), 5000);
}

/**
 * What an error says: its message, or the thing thrown as text.
 * @param {unknown} error
 * @returns {string}
 */
export function errorMessage(error) {
  return (error instanceof Error && error.message) || String(error);
}

/**
 * A message box for an error, with `role="alert"` so it is announced.
 * @param {unknown} error
 * @returns {HTMLDivElement}
 */
export function errorBox(error) {
  return h('div', { class: 'notice error', role: 'alert' }, errorMessage(error));
}

/**
 * A loading line, announced politely.
 * @param {string} [text]
 * @returns {HTMLParagraphElement}
 */
export function loading(text = 'Loading…') {
  return h('p', { class: 'muted loading', role: 'status', text });
}

/**
 * Calls `fn` once `ms` have passed without another call; `cancel` drops a
 * call that is waiting.
 * @template {unknown[]} A
 * @param {(...args: A) => void} fn
 * @param {number} ms
 * @returns {((...args: A) => void) & { cancel: () => void }}
 */
export function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @param {A} args */
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  return Object.assign(wrapped, { cancel: () => clearTimeout(timer) });
}

/**
 * Labels every body cell of the tables in `root` with its column's heading
 * (`data-label`), which the stylesheet shows before the cell when a narrow
 * screen stacks a table's rows instead of cutting off its columns.
 * @param {ParentNode} root
 */
export function labelTables(root) {
  for (const table of root.querySelectorAll('table')) {
    const heads = [...table.querySelectorAll(':scope > thead > tr > th')].map((th) => (th.textContent || '').trim());
    if (!heads.length) continue;
    for (const row of table.querySelectorAll(':scope > tbody > tr')) {
      const cells = [...row.children];
      if (cells.some((c) => c instanceof HTMLTableCellElement && c.colSpan > 1)) continue;
      cells.forEach((cell, i) => {
        if (cell instanceof HTMLElement && heads[i] && cell.dataset.label !== heads[i]) cell.dataset.label = heads[i];
      });
    }
  }
}

/**
 * A route's hash for a subscriber page.
 * @param {string} email
 * @returns {string}
 */
export function subscriberHref(email) {
  return `#/subscriber?email=${encodeURIComponent(email)}`;
}
