// @ts-check
// The conditions on a subscriber's own record in the builder: `subscribed`
// (true for subscribed, false for unsubscribed) and `created` (when the
// subscriber was first seen, with time operators). The time operators are
// also those of an event's `when`, `first` and `last`.

import { h } from './dom.js';
import { errorsSlot, select } from './builder-controls.js';
import { opsEditor } from './builder-operators.js';

/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-operators.js').Family} Family */

/** @type {Family} */
export const TIME = {
  name: 'time',
  ops: ['since', 'before', 'between', 'within_last', 'older_than'],
};

/** @type {Kind} */
export const SUBSCRIBED = {
  kind: 'subscribed',
  label: 'Subscription',
  create: () => ({ subscribed: true }),
  draw: (_ctx, condition, ref, pointer) => [
    h('div', { dataset: { pointer: `${pointer}/subscribed` } },
      select([['true', 'is subscribed'], ['false', 'is unsubscribed']], String(condition.subscribed), 'Subscription state',
        `${pointer}/subscribed`, (v) => ref.set({ subscribed: v === 'true' }, true)), errorsSlot()),
  ],
};

/** @type {Kind} */
export const CREATED = {
  kind: 'created',
  label: 'Created',
  create: () => ({ created: { within_last: { days: 30 } } }),
  draw: (ctx, condition, _ref, pointer) => [opsEditor(ctx, TIME, ctx.at(condition, 'created'), `${pointer}/created`)],
};
