// @ts-check
// The `tag` condition in the builder: whether a subscriber has a tag, or
// any, all or none of several (`{"tag": {"any_of": ["vip", "trial"]}}`).

import { opsEditor } from './builder-operators.js';

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
  draw: (ctx, condition, _ref, pointer) => [opsEditor(ctx, TAGS, ctx.at(condition, 'tag'), `${pointer}/tag`)],
};
