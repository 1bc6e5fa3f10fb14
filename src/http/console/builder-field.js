// @ts-check
// The `field` condition in the builder: a custom field's key and the value
// operators that test it (`{"field": {"key": "plan", "equals": "pro"}}`).
// Value operators take any type: text, number, time, whether the value
// exists. They are also those of each detail path in an event's `where`.

import { h } from './dom.js';
import { errorsSlot, input, isObject } from './builder-controls.js';
import { opsEditor } from './builder-operators.js';
import { LISTS } from './suggest.js';

/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-operators.js').Family} Family */

/** @type {Family} */
export const VALUE = {
  name: 'value',
  ops: ['exists', 'equals', 'not_equals', 'in', 'contains', 'starts_with', 'ends_with', 'more_than', 'at_least', 'less_than',
    'at_most', 'since', 'before', 'between', 'within_last', 'older_than'],
};

/** @type {Kind} */
export const FIELD = {
  kind: 'field',
  label: 'Field',
  create: () => ({ field: { key: '', equals: '' } }),
  draw: (ctx, condition, _ref, pointer) => {
    const inner = condition.field;
    if (!isObject(inner)) return [];
    return [
      h('div', { class: 'inline', dataset: { pointer: `${pointer}/field/key` } },
        h('span', { class: 'lead', text: 'key' }),
        input(inner.key ?? '', 'Field key', `${pointer}/field/key`, (t) => {
          inner.key = t;
          ctx.changed(false);
        }, { placeholder: 'plan', class: 'short', list: LISTS.field }), errorsSlot()),
      opsEditor(ctx, VALUE, ctx.at(condition, 'field'), `${pointer}/field`, ['key']),
    ];
  },
};
