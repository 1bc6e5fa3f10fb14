// Small helpers to build the page from elements (never from markup strings),
// and to format what the API answers.

/**
 * Creates an element. `attrs`: `class`, `text`, `on<Event>` handlers,
 * `dataset` (an object), booleans for boolean attributes, strings for the rest.
 * Children are nodes, strings, or arrays of them; null and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value') el.value = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A fresh id for tying a label to its control. */
export function nextId(prefix = 'c') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled control: `<label for>` and the control, wrapped. */
export function labelled(text, control, hint) {
  if (!control.id) control.id = nextId('f');
  const hintEl = hint ? h('span', { class: 'hint', id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id, text }), control, hintEl);
}

const numberFormat = new Intl.NumberFormat('en');
export function count(n) {
  return typeof n === 'number' ? numberFormat.format(n) : '—';
}

/** `2026-11-26T09:00:00.000Z` → a short local date and time. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });
}

/** A `<time>` element showing `iso` locally, with the exact value as its title. */
export function time(iso) {
  return h('time', { datetime: iso, title: iso, text: when(iso) });
}

/** A short-lived message at the bottom of the screen, read out by screen readers. */
export function toast(message) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.classList.add('shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('shown'), 5000);
}

/** A message box for an error, with `role="alert"` so it is announced. */
export function errorBox(error) {
  return h('div', { class: 'notice error', role: 'alert' }, error?.message || String(error));
}

/** A loading line, announced politely. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'muted loading', role: 'status', text });
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/** A route's hash for a subscriber page. */
export function subscriberHref(email) {
  return `#/subscriber?email=${encodeURIComponent(email)}`;
}
