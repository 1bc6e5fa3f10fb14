// @ts-check
// A segment's By hand section: the subscribers included and excluded by
// hand (GET, POST and DELETE /fetch/segments/{id}/includes and /excludes),
// side by side. Each list shows its subscribers a page at a time ("Show
// more" follows the API's cursor), with the email linked to the
// subscriber's page, when they were added and a Remove button; a text area
// takes emails separated by commas, spaces or new lines (up to 1,000 at
// once) to put in the list or take out of it. After an edit the section
// says, in words, who was changed, who already was, and which emails no
// subscriber has, reads the list again from the start and calls `onChange`
// so that the page's counts and members follow.

import { api, isAbort } from './api.js';
import { count, errorBox, errorMessage, h, labelled, loading, replace, subscriberHref, time } from './dom.js';

/**
 * A subscriber in a list, as the API lists it.
 * @typedef {object} ManualEntry
 * @property {string} uuid
 * @property {string} email
 * @property {string} added_at
 */

/**
 * What an edit came to, as the API answers it: each email as given.
 * @typedef {object} ManualEdit
 * @property {string} segment_id
 * @property {'includes' | 'excludes'} list
 * @property {string[]} changed
 * @property {string[]} unchanged
 * @property {string[]} unknown
 */

/** Most emails one edit names (the API's limit). */
export const MAX_EMAILS = 1000;
/** Subscribers listed at a time. */
const PAGE = 25;
/** Emails named in a sentence about an edit; the rest are counted. */
const NAMED = 10;

/**
 * The words of each list: its heading, the button that adds, and what an
 * edit did, by outcome, adding and removing.
 */
const WORDS = {
  includes: {
    title: 'Included by hand',
    hint: 'Members whatever the conditions say, unless also excluded.',
    add: 'Include',
    field: 'Emails to include',
    empty: 'Nobody is included by hand.',
    added: { changed: 'Included', unchanged: 'Already included' },
    removed: { changed: 'No longer included', unchanged: 'Were not included' },
  },
  excludes: {
    title: 'Excluded by hand',
    hint: 'Never members, whatever the conditions say.',
    add: 'Exclude',
    field: 'Emails to exclude',
    empty: 'Nobody is excluded by hand.',
    added: { changed: 'Excluded', unchanged: 'Already excluded' },
    removed: { changed: 'No longer excluded', unchanged: 'Were not excluded' },
  },
};

/**
 * The emails typed or pasted: split at commas, semicolons, spaces and new
 * lines, each once (the first spelling of the same email in any case).
 * @param {string} text
 * @returns {string[]}
 */
export function parseEmails(text) {
  const seen = new Set();
  /** @type {string[]} */
  const emails = [];
  for (const part of text.split(/[\s,;]+/)) {
    if (!part || seen.has(part.toLowerCase())) continue;
    seen.add(part.toLowerCase());
    emails.push(part);
  }
  return emails;
}

/**
 * `a, b and 3 more`.
 * @param {string[]} emails
 * @returns {string}
 */
function named(emails) {
  const shown = emails.slice(0, NAMED).join(', ');
  const rest = emails.length - NAMED;
  return rest > 0 ? `${shown} and ${count(rest)} more` : shown;
}

/**
 * What an edit did, in sentences: one per outcome that has emails.
 * @param {ManualEdit} edit
 * @param {boolean} add
 * @returns {HTMLParagraphElement[]}
 */
export function editReport(edit, add) {
  const words = WORDS[edit.list][add ? 'added' : 'removed'];
  /** @type {HTMLParagraphElement[]} */
  const lines = [];
  /**
   * @param {'changed' | 'unchanged' | 'unknown'} outcome
   * @param {string} lead
   */
  const line = (outcome, lead) => {
    const emails = edit[outcome];
    if (emails.length) {
      lines.push(h('p', { dataset: { outcome, count: String(emails.length) } },
        h('strong', { text: `${lead}${emails.length > 1 ? ` (${count(emails.length)})` : ''}: ` }), named(emails), '.'));
    }
  };
  line('changed', words.changed);
  line('unchanged', words.unchanged);
  line('unknown', edit.unknown.length === 1
    ? 'No subscriber has this email, so nothing was done for it'
    : 'No subscribers have these emails, so nothing was done for them');
  return lines;
}

/**
 * A field error of the API about `emails/3`, with the email it names.
 * @param {unknown} error
 * @param {string[]} emails what was sent
 * @returns {string}
 */
function problemOf(error, emails) {
  const fields = /** @type {{ fieldErrors?: import('./api.js').FieldError[] }} */ (error).fieldErrors;
  if (!fields || !fields.length) return errorMessage(error);
  return fields.map((e) => {
    const at = /^emails\/(\d+)$/.exec(e.field);
    return at && emails[Number(at[1])] !== undefined ? `“${emails[Number(at[1])]}” ${e.message}` : `${e.field}: ${e.message}`;
  }).join('; ');
}

/**
 * One list: its heading, the form to add (or take out) emails, what the
 * last edit did, and the subscribers in it.
 * @param {string} id
 * @param {'includes' | 'excludes'} list
 * @param {{ signal: AbortSignal, onChange: () => void }} options
 * @returns {{ element: HTMLElement, load: () => Promise<void> }}
 */
function listBox(id, list, { signal, onChange }) {
  const words = WORDS[list];
  const path = `/fetch/segments/${id}/${list}`;
  const titleId = `${list}-title`;
  const emails = h('textarea', { name: list, rows: 3, autocomplete: 'off', spellcheck: 'false', placeholder: 'ada@example.com, grace@example.com' });
  const addButton = h('button', { type: 'submit', text: words.add });
  const removeButton = h('button', { type: 'button', class: 'secondary', text: 'Remove these' });
  const report = h('div', { class: 'manual-report', 'aria-live': 'polite', tabindex: -1 });
  const rows = h('tbody', {});
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'manual-table' },
    h('caption', { class: 'visually-hidden', text: `${words.title}, by when they were added` }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Subscriber' }), h('th', { scope: 'col', text: 'Added' }),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Action' })))),
    rows));
  const more = h('button', { type: 'button', class: 'secondary', text: 'Show more' });
  const pager = h('div', { class: 'pager' }, more);
  const body = h('div', { class: 'manual-entries' }, loading('Loading…'));
  const form = h('form', { class: 'manual-form', novalidate: true },
    labelled(words.field, emails, `Separated by commas, spaces or new lines; up to ${count(MAX_EMAILS)} at once.`),
    h('div', { class: 'actions' }, addButton, removeButton));
  /** @type {string | null} */
  let cursor = null;

  /** @param {ManualEntry} e */
  const row = (e) => {
    const remove = h('button', { type: 'button', class: 'small', text: 'Remove', 'aria-label': `Remove ${e.email} from ${words.title.toLowerCase()}` });
    remove.addEventListener('click', () => edit([e.email], false, remove, false));
    return h('tr', { dataset: { uuid: e.uuid } },
      h('th', { scope: 'row' }, h('a', { href: subscriberHref(e.email), text: e.email })),
      h('td', {}, time(e.added_at)),
      h('td', { class: 'num' }, remove));
  };

  /** The next page after `cursor` (the first when null), appended. */
  const page = async () => {
    const { data } = await api('GET', path, { params: { limit: PAGE, cursor }, signal });
    /** @type {ManualEntry[]} */
    const entries = data.data;
    rows.append(...entries.map(row));
    cursor = data.meta.next_cursor;
    more.hidden = !cursor;
  };

  /** The list again, from its first page. */
  const load = async () => {
    cursor = null;
    rows.replaceChildren();
    try {
      await page();
    } catch (e) {
      if (!isAbort(e)) replace(body, errorBox(e));
      return;
    }
    if (!rows.children.length) replace(body, h('p', { class: 'empty', text: words.empty }));
    else replace(body, table, pager);
  };

  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      await page();
    } catch (e) {
      if (!isAbort(e)) pager.prepend(errorBox(e));
    } finally {
      more.disabled = false;
    }
  });

  /**
   * Puts `given` in the list (`add`) or takes them out, says what came of
   * it, and reads the list and the page's figures again.
   * @param {string[]} given
   * @param {boolean} add
   * @param {HTMLButtonElement} button
   * @param {boolean} typed whether `given` are the text area's (emptied once
   *   saved), not a row's (whose button goes with it: the report takes the focus)
   */
  const edit = async (given, add, button, typed) => {
    button.disabled = true;
    replace(report, loading(add ? 'Saving…' : 'Removing…'));
    try {
      const { data } = await api(add ? 'POST' : 'DELETE', path, { body: { emails: given } });
      /** @type {ManualEdit} */
      const done = data.data;
      replace(report, h('div', { class: done.unknown.length ? 'notice warning' : 'notice', dataset: { list, edit: add ? 'added' : 'removed' } },
        editReport(done, add)));
      if (typed) emails.value = '';
      await load();
      if (!typed) report.focus();
      onChange();
    } catch (e) {
      replace(report, h('div', { class: 'notice error', role: 'alert', text: problemOf(e, given) }));
    } finally {
      button.disabled = false;
    }
  };

  /** @param {boolean} add */
  const submit = (add) => {
    const given = parseEmails(emails.value);
    if (!given.length || given.length > MAX_EMAILS) {
      replace(report, h('p', { class: 'field-error', role: 'alert', text: given.length
        ? `That is ${count(given.length)} emails: at most ${count(MAX_EMAILS)} at once.`
        : 'Enter one or more emails.' }));
      emails.focus();
      return;
    }
    edit(given, add, add ? addButton : removeButton, true);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit(true);
  });
  removeButton.addEventListener('click', () => submit(false));

  const element = h('div', { class: 'manual-list', dataset: { list }, 'aria-labelledby': titleId, role: 'group' },
    h('h3', { id: titleId, text: words.title }),
    h('p', { class: 'hint', text: words.hint }),
    form, report, body);
  return { element, load };
}

/**
 * The By hand section of the segment `id`, and `load`, which fills it.
 * `onChange` is called after every edit that was saved.
 * @param {string} id
 * @param {{ signal: AbortSignal, onChange: () => void }} options
 * @returns {{ section: HTMLElement, load: () => Promise<void> }}
 */
export function manualSection(id, options) {
  const includes = listBox(id, 'includes', options);
  const excludes = listBox(id, 'excludes', options);
  const section = h('section', { class: 'panel manual', 'aria-labelledby': 'manual-title' },
    h('h2', { id: 'manual-title', text: 'By hand' }),
    h('p', { class: 'hint', text: 'Included subscribers are members whatever the conditions say; excluded ones never are, even if included.' }),
    h('div', { class: 'columns' }, includes.element, excludes.element));
  return { section, load: async () => { await Promise.all([includes.load(), excludes.load()]); } };
}
