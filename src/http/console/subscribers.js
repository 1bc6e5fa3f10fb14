// @ts-check
// The Subscribers page: a search box (the start of an email or of a name,
// or a tag's whole name; empty lists everyone), and the subscribers it
// finds in email order, a page at a time (GET /fetch/subscribers/search),
// each linking to their page. What was searched for stays in the address
// (#/subscribers?q=…), so Back returns to the same results.

import { api, isAbort } from './api.js';
import { debounce, errorBox, h, labelled, loading, replace, subscriberHref } from './dom.js';
import { dayText } from './subscription.js';

/** @typedef {import('./api.js').Subscriber} Subscriber */

/** Subscribers asked for a page. */
const PAGE = 25;

/**
 * A subscriber's name, from the name fields the search reads: first and
 * last name, else `name`; empty when they have none.
 * @param {Record<string, unknown> | null} fields
 * @returns {string}
 */
export function nameOf(fields) {
  const text = (/** @type {string} */ key) => (fields && typeof fields[key] === 'string' ? /** @type {string} */ (fields[key]).trim() : '');
  return [text('first_name'), text('last_name')].filter(Boolean).join(' ') || text('name');
}

/**
 * The hash of the Subscribers page searching for `q`.
 * @param {string} q
 * @returns {string}
 */
export function subscribersHref(q) {
  return q ? `#/subscribers?q=${encodeURIComponent(q)}` : '#/subscribers';
}

/**
 * The Subscribers page, searching for `q`, in `view`.
 * @param {HTMLElement} view
 * @param {{ q: string, signal: AbortSignal }} options
 */
export async function renderSubscribers(view, { q, signal }) {
  const input = h('input', { type: 'search', name: 'q', autocomplete: 'off', spellcheck: 'false', value: q });
  const form = h('form', { class: 'inline-form', role: 'search', 'aria-label': 'Subscribers', novalidate: true },
    labelled('Search', input, 'The start of an email or a name, or a tag’s whole name. Empty: everyone.'),
    h('button', { type: 'submit', text: 'Search' }));
  const status = h('p', { class: 'muted small', role: 'status' });
  const results = h('div', { class: 'subscriber-results' });
  replace(view, h('div', { class: 'title' }, h('h1', { text: 'Subscribers' })), form, status, results);

  /** Each search gets its own signal: a newer one aborts the older. */
  let search = new AbortController();
  signal.addEventListener('abort', () => search.abort());

  /**
   * Searches for `text` afresh, keeping it in the address.
   * @param {string} text
   */
  const run = async (text) => {
    search.abort();
    search = new AbortController();
    const mine = search.signal;
    const href = subscribersHref(text);
    if (location.hash !== href) history.replaceState(null, '', href);
    replace(status);
    delete results.dataset.q;
    replace(results, loading(text ? `Searching for “${text}”…` : 'Loading subscribers…'));
    const rows = h('tbody', {});
    const more = h('button', { type: 'button', class: 'secondary', text: 'Show more' });
    const pager = h('div', { class: 'pager' }, more);
    let shown = 0;
    /** @type {string | null} */
    let cursor = null;
    const page = async () => {
      more.disabled = true;
      try {
        const { data } = await api('GET', '/fetch/subscribers/search', { params: { q: text, limit: PAGE, cursor }, signal: mine });
        /** @type {Subscriber[]} */
        const found = data.data;
        cursor = data.meta.next_cursor;
        shown += found.length;
        if (!shown) {
          replace(results, h('p', { class: 'empty', text: text ? `No subscriber’s email or name starts with “${text}”, and no tag is named so.` : 'This site has no subscribers yet.' }));
          replace(status, text ? 'No subscribers found.' : 'No subscribers.');
          results.dataset.q = text;
          return;
        }
        rows.append(...found.map(row));
        if (!rows.isConnected) {
          replace(results,
            h('div', { class: 'table-wrap' }, h('table', { class: 'subscribers' },
              h('caption', { class: 'visually-hidden', text: text ? `Subscribers found by “${text}”, in email order` : 'Subscribers, in email order' }),
              h('thead', {}, h('tr', {}, ['Email', 'Name', 'Subscription', 'Added'].map((t) => h('th', { scope: 'col', text: t })))),
              rows)),
            pager);
        }
        pager.hidden = !cursor;
        // What the results are of, once they are shown.
        results.dataset.q = text;
        replace(status, `${shown} subscriber${shown === 1 ? '' : 's'} shown${cursor ? ', more below' : ''}.`);
      } catch (e) {
        if (!isAbort(e)) replace(results, errorBox(e));
      } finally {
        more.disabled = false;
      }
    };
    more.addEventListener('click', async () => {
      const before = rows.children.length;
      await page();
      // Keyboard users land on the first row the page added.
      const first = rows.children[before]?.querySelector('a');
      if (first instanceof HTMLElement) first.focus();
    });
    await page();
  };

  const typed = debounce(() => run(input.value.trim()), 300);
  input.addEventListener('input', () => typed());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    typed.cancel();
    run(input.value.trim());
  });
  signal.addEventListener('abort', () => typed.cancel());
  if (!q) input.focus();
  await run(q.trim());
}

/**
 * One subscriber's row.
 * @param {Subscriber} s
 * @returns {HTMLTableRowElement}
 */
function row(s) {
  const a = s.attributes;
  const name = nameOf(a.fields);
  return h('tr', { dataset: { uuid: a.uuid } },
    h('th', { scope: 'row' }, h('a', { href: subscriberHref(a.email), text: a.email })),
    h('td', {}, name || h('span', { class: 'muted', text: '—' })),
    h('td', { dataset: { state: a.unsubscribed_at ? 'unsubscribed' : 'subscribed' } }, a.unsubscribed_at ? `Unsubscribed on ${dayText(a.unsubscribed_at)}` : 'Subscribed'),
    h('td', {}, h('time', { datetime: a.created_at, title: a.created_at, text: dayText(a.created_at) })));
}
