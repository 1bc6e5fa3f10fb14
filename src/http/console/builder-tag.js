// @ts-check
// The `tag` condition in the builder: whether a subscriber has a tag, or
// any, all or none of several (`{"tag": {"any_of": ["vip", "trial"]}}`).

import { h } from './dom.js';
import { opsEditor } from './builder-operators.js';
import { LISTS, unknownTags } from './suggest.js';

/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-operators.js').Family} Family */

/** @type {Family} */
export const TAGS = {
  name: 'tag',
  ops: ['has', 'has_not', 'any_of', 'all_of', 'none_of'],
};

/** @type {Kind} */
export const TAG = {
  kind: 'tag',
  label: 'Tag',
  create: () => ({ tag: { has: '' } }),
  draw: (ctx, condition, _ref, pointer) => [opsEditor(ctx, TAGS, ctx.at(condition, 'tag'), `${pointer}/tag`, [], {
    list: LISTS.tag,
    // A note, not an error: a query may name a tag nobody has yet.
    note: (_op, value) => {
      const unknown = unknownTags(value, ctx.knownTags);
      if (!unknown.length) return null;
      const names = unknown.map((n) => `“${n}”`).join(', ');
      return h('p', { class: 'note-unknown', dataset: { unknownTags: unknown.join(',') } },
        unknown.length === 1 ? `No subscriber has this tag yet: ${names}.` : `No subscriber has these tags yet: ${names}.`);
    },
  })],
};
