// @ts-check
// A segment's History: every definition it was saved with, newest first, each
// with when and by whom (the publishable key, the command line, or before
// history was kept) and what changed against the version before it: the name,
// the description, and the query as pretty-printed JSON compared line by line
// (a longest-common-subsequence diff, added and removed lines marked + and -).
// The first version shows its whole definition. Restore makes an older
// definition current again, as a new version, sent with the page's ETag in
// If-Match so that a change saved meanwhile is never overwritten; the page is
// then drawn again from the server.

import { api, isAbort, statusOf } from './api.js';
import { errorBox, errorMessage, h, loading, replace, time, toast } from './dom.js';

/** @typedef {import('./api.js').SegmentVersion} SegmentVersion */

/**
 * One line of a diff: in both texts, only in the one after, or only in the one before.
 * @typedef {{ op: 'same' | 'added' | 'removed', text: string }} DiffLine
 */

// Above this many cells (lines before × lines after, once the common start
// and end are set aside) the diff lists every old line as removed and every
// new one as added, rather than fill a table that large.
const MAX_CELLS = 4_000_000;
// Unchanged lines shown around a change; longer runs are folded.
const CONTEXT = 3;

/**
 * The lines of `after` compared with those of `before`: a shortest edit that
 * keeps their longest common subsequence, removed lines before added ones.
 * @param {string[]} before
 * @param {string[]} after
 * @returns {DiffLine[]}
 */
export function lineDiff(before, after) {
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start += 1;
  let endBefore = before.length;
  let endAfter = after.length;
  while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
    endBefore -= 1;
    endAfter -= 1;
  }
  const a = before.slice(start, endBefore);
  const b = after.slice(start, endAfter);
  /** @type {(op: DiffLine['op']) => (text: string) => DiffLine} */
  const line = (op) => (text) => ({ op, text });
  /** @type {DiffLine[]} */
  const middle = [];
  if (a.length * b.length > MAX_CELLS) {
    middle.push(...a.map(line('removed')), ...b.map(line('added')));
  } else {
    // common[i * w + j]: the length of the longest common subsequence of a[i..] and b[j..].
    const w = b.length + 1;
    const common = new Uint32Array((a.length + 1) * w);
    for (let i = a.length - 1; i >= 0; i -= 1) {
      for (let j = b.length - 1; j >= 0; j -= 1) {
        common[i * w + j] = a[i] === b[j]
          ? common[(i + 1) * w + j + 1] + 1
          : Math.max(common[(i + 1) * w + j], common[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < a.length && j < b.length) {
      if (a[i] === b[j]) {
        middle.push({ op: 'same', text: a[i] });
        i += 1;
        j += 1;
      } else if (common[(i + 1) * w + j] >= common[i * w + j + 1]) {
        middle.push({ op: 'removed', text: a[i] });
        i += 1;
      } else {
        middle.push({ op: 'added', text: b[j] });
        j += 1;
      }
    }
    middle.push(...a.slice(i).map(line('removed')), ...b.slice(j).map(line('added')));
  }
  return [
    ...before.slice(0, start).map(line('same')),
    ...middle,
    ...before.slice(endBefore).map(line('same')),
  ];
}

/**
 * A query as the console shows it: JSON, 2 spaces, keys in the order saved.
 * @param {unknown} query
 * @returns {string[]}
 */
function queryLines(query) {
  return JSON.stringify(query, null, 2).split('\n');
}

const SIGNS = { same: ' ', added: '+', removed: '-' };

/**
 * A diff as a block of lines, `+` added and `-` removed (as `<ins>` and
 * `<del>`), with long runs of unchanged lines folded.
 * @param {DiffLine[]} lines
 * @param {string} label what the diff is of, for screen readers
 * @returns {HTMLPreElement}
 */
function diffBlock(lines, label) {
  const changed = lines.map((l) => l.op !== 'same');
  /** @param {number} i */
  const near = (i) => {
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(lines.length - 1, i + CONTEXT); k += 1) if (changed[k]) return true;
    return false;
  };
  /** @param {DiffLine} l */
  const row = (l) => {
    const tag = l.op === 'added' ? 'ins' : l.op === 'removed' ? 'del' : 'span';
    return h(tag, { class: `line ${l.op}`, dataset: { op: l.op } }, h('span', { class: 'sign', text: SIGNS[l.op] }), ` ${l.text}`);
  };
  /** @type {HTMLElement[]} */
  const rows = [];
  /** @type {DiffLine[]} */
  let folded = [];
  const fold = () => {
    if (folded.length === 1) rows.push(row(folded[0]));
    else if (folded.length) rows.push(h('span', { class: 'line fold', text: `⋯ ${folded.length} unchanged lines` }));
    folded = [];
  };
  lines.forEach((l, i) => {
    if (l.op === 'same' && !near(i)) {
      folded.push(l);
      return;
    }
    fold();
    rows.push(row(l));
  });
  fold();
  return h('pre', { class: 'diff', 'aria-label': label }, rows);
}

/**
 * A description, or "(none)" for none.
 * @param {string | null} text
 */
function orNone(text) {
  return text === null || text === '' ? '(none)' : text;
}

/**
 * What version `v` changed against `previous`; the whole definition for the first.
 * @param {SegmentVersion | null} previous
 * @param {SegmentVersion} v
 * @returns {HTMLElement}
 */
function changes(previous, v) {
  if (!previous) {
    return h('div', { class: 'definition', dataset: { whole: 'true' } },
      h('dl', { class: 'definition-facts' },
        h('dt', { text: 'Name' }), h('dd', { text: v.name }),
        h('dt', { text: 'Description' }), h('dd', { text: orNone(v.description) })),
      h('pre', { class: 'json', 'aria-label': `Query of version ${v.version}`, text: queryLines(v.visitor_event_query).join('\n') }));
  }
  const against = `against version ${previous.version}`;
  /** @type {HTMLElement[]} */
  const parts = [];
  if (previous.name !== v.name) {
    parts.push(h('div', { class: 'change', dataset: { field: 'name' } }, h('h4', { text: 'Name' }),
      diffBlock([{ op: 'removed', text: previous.name }, { op: 'added', text: v.name }], `Name ${against}`)));
  }
  if ((previous.description ?? '') !== (v.description ?? '')) {
    parts.push(h('div', { class: 'change', dataset: { field: 'description' } }, h('h4', { text: 'Description' }),
      diffBlock([{ op: 'removed', text: orNone(previous.description) }, { op: 'added', text: orNone(v.description) }], `Description ${against}`)));
  }
  const query = lineDiff(queryLines(previous.visitor_event_query), queryLines(v.visitor_event_query));
  if (query.some((l) => l.op !== 'same')) {
    parts.push(h('div', { class: 'change', dataset: { field: 'query' } }, h('h4', { text: 'Query' }), diffBlock(query, `Query ${against}`)));
  } else if (parts.length) {
    parts.push(h('p', { class: 'muted small', text: 'Query unchanged.' }));
  }
  if (!parts.length) parts.push(h('p', { class: 'muted small', text: `The same definition as version ${previous.version}.` }));
  return h('div', { class: 'changes' }, parts);
}

/**
 * Who saved a version.
 * @param {string | null} savedBy
 */
function who(savedBy) {
  const attrs = { class: 'who', dataset: { savedBy: savedBy ?? '' } };
  if (savedBy === null) return h('span', attrs, 'before history was kept');
  if (savedBy === 'cli') return h('span', attrs, 'by the command line (', h('code', { text: 'cli' }), ')');
  return h('span', attrs, 'by key ', h('code', { text: savedBy }));
}

// The segment whose History takes the focus once the page is drawn again
// after a Restore, so that a keyboard is not sent back to the top.
/** @type {string | null} */
let focusAfterRestore = null;

/** Draws the current route again, as the editor's "Load their version" does. */
function redraw() {
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

/**
 * The History section of the segment `id`, and `load`, which fills it.
 * @param {string} id
 * @param {{ etag: () => string | null, signal: AbortSignal }} options `etag`: the page's, sent as If-Match
 * @returns {{ section: HTMLElement, load: () => Promise<void> }}
 */
export function historySection(id, { etag, signal }) {
  const heading = h('h2', { id: 'history-title', tabindex: '-1', text: 'History' });
  const body = h('div', {}, loading('Loading the versions…'));
  const section = h('section', { class: 'panel history', 'aria-labelledby': 'history-title' },
    heading,
    h('p', { class: 'hint', text: 'Every definition this segment was saved with, newest first, each compared with the one before it.' }),
    body);

  /**
   * Version `v`, with Restore unless it is the current one.
   * @param {SegmentVersion} v
   * @param {SegmentVersion | null} previous
   * @param {boolean} current
   */
  const item = (v, previous, current) => {
    const titleId = `version-${v.version}-title`;
    const actions = h('span', { class: 'actions' });
    const message = h('div', {});
    if (current) actions.append(h('span', { class: 'chip', text: 'Current' }));
    else {
      const restore = h('button', { type: 'button', class: 'secondary', text: 'Restore', 'aria-label': `Restore version ${v.version}` });
      restore.addEventListener('click', () => confirmRestore(v, actions, restore, message));
      actions.append(restore);
    }
    return h('li', { class: 'version', dataset: { version: String(v.version) }, 'aria-labelledby': titleId },
      h('div', { class: 'version-head' },
        h('h3', { id: titleId, text: `Version ${v.version}` }),
        h('span', { class: 'muted small' }, 'Saved ', time(v.saved_at), ', ', who(v.saved_by)),
        actions),
      message,
      changes(previous, v));
  };

  /**
   * Asks before restoring `v`, in `actions` (where `restore` was).
   * @param {SegmentVersion} v
   * @param {HTMLElement} actions
   * @param {HTMLButtonElement} restore
   * @param {HTMLElement} message
   */
  const confirmRestore = (v, actions, restore, message) => {
    const yes = h('button', { type: 'button', text: 'Yes, restore' });
    const no = h('button', { type: 'button', class: 'secondary', text: 'Cancel' });
    const problem = h('span', { role: 'alert' });
    replace(message);
    replace(actions, h('span', { class: 'confirm' }, `Make version ${v.version} current again, as a new version? `, yes, no, problem));
    no.addEventListener('click', () => {
      replace(actions, restore);
      restore.focus();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      const tag = etag();
      try {
        await api('POST', `/fetch/segments/${id}/versions/${v.version}/restore`, { headers: tag ? { 'If-Match': tag } : {} });
        toast(`Restored version ${v.version}: it is the current definition again.`);
        focusAfterRestore = id;
        redraw();
      } catch (e) {
        if (statusOf(e) === 412) {
          // The editor's message for a stale save: nothing was changed.
          const reload = h('button', { type: 'button', class: 'secondary', text: 'Load the current version' });
          reload.addEventListener('click', redraw);
          replace(actions, restore);
          replace(message, h('div', { class: 'notice error', role: 'alert' },
            h('p', { text: `${errorMessage(e)} Load the current version to see what changed, then restore again if you still want to.` }), reload));
          reload.focus();
          return;
        }
        yes.disabled = false;
        replace(problem, ` ${errorMessage(e)}`);
      }
    });
    yes.focus();
  };

  const load = async () => {
    const focus = focusAfterRestore === id;
    focusAfterRestore = null;
    try {
      const { data } = await api('GET', `/fetch/segments/${id}/versions`, { signal });
      /** @type {SegmentVersion[]} */
      const versions = data.data;
      if (!versions.length) {
        replace(body, h('p', { class: 'empty', text: 'No saved versions.' }));
      } else {
        const newest = versions.length - 1;
        const items = versions.map((v, i) => item(v, i ? versions[i - 1] : null, i === newest)).reverse();
        replace(body, h('ol', { class: 'versions', 'aria-label': 'Versions, newest first' }, items));
      }
    } catch (e) {
      if (isAbort(e)) return;
      replace(body, errorBox(e));
    }
    if (focus && !signal.aborted) heading.focus();
  };
  return { section, load };
}
