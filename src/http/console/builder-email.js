// @ts-check
// The `email` condition in the builder: a subscriber's email address tested
// with text operators (`{"email": {"domain": "example.com"}}`). The text
// operators are the grammar's for an address: equality, a list, parts of
// the text, and the domain.

import { opsEditor } from './builder-operators.js';

/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-operators.js').Family} Family */

/** @type {Family} */
export const TEXT = {
  name: 'text',
  ops: ['equals', 'not_equals', 'in', 'contains', 'starts_with', 'ends_with', 'domain'],
};

/** @type {Kind} */
export const EMAIL = {
  kind: 'email',
  label: 'Email',
  create: () => ({ email: { domain: '' } }),
  draw: (ctx, condition, _ref, pointer) => [opsEditor(ctx, TEXT, ctx.at(condition, 'email'), `${pointer}/email`)],
};
