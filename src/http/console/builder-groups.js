// @ts-check
// The conditions that combine others in the builder: `all` (every one
// holds), `any` (at least one holds), `not` (the one inside does not hold)
// and `groups` (Bento's form: any group holds, a group holding when all its
// filters do). Each nested condition is drawn by the builder's own editor,
// so conditions nest to any depth.

import { h } from './dom.js';
import { button, errorsSlot, isObject } from './builder-controls.js';

/** @typedef {import('./builder-controls.js').Context} Context */
/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./builder-controls.js').Kind} Kind */

/**
 * A list of conditions, each with its Remove, and a button adding one.
 * @param {Context} ctx
 * @param {Json[]} list
 * @param {string} pointer
 * @param {string} addLabel
 * @returns {HTMLElement[]}
 */
function conditionList(ctx, list, pointer, addLabel) {
  const items = h('ol', { class: 'conditions' });
  list.forEach((_, i) => {
    items.append(h('li', {}, ctx.condition(ctx.at(list, i), `${pointer}/${i}`, {
      onRemove: () => {
        list.splice(i, 1);
        ctx.changed(true);
      },
    })));
  });
  return [items, button(addLabel, `${pointer}:add`, () => {
    list.push(ctx.create('tag'));
    ctx.changed(true);
  })];
}

/**
 * `all` or `any`: a list of conditions.
 * @param {'all' | 'any'} kind
 * @param {string} label
 * @param {string} meaning
 * @returns {Kind}
 */
function list(kind, label, meaning) {
  return {
    kind,
    label,
    create: () => ({ [kind]: [] }),
    draw: (ctx, condition, _ref, pointer) => {
      const inner = condition[kind];
      if (!Array.isArray(inner)) return [];
      return [h('p', { class: 'muted small', text: meaning }), ...conditionList(ctx, inner, `${pointer}/${kind}`, '+ condition')];
    },
  };
}

export const ALL = list('all', 'All of', 'Every condition below must hold.');
export const ANY = list('any', 'Any of', 'At least one condition below must hold.');

/** @type {Kind} */
export const NOT = {
  kind: 'not',
  label: 'Not',
  create: () => ({ not: { tag: { has: '' } } }),
  draw: (ctx, condition, _ref, pointer) => [ctx.condition(ctx.at(condition, 'not'), `${pointer}/not`)],
};

/** @type {Kind} */
export const GROUPS = {
  kind: 'groups',
  label: 'Groups',
  create: () => ({ groups: [{ filters: [] }] }),
  draw: (ctx, condition, _ref, pointer) => {
    const inner = condition.groups;
    if (!Array.isArray(inner)) return [];
    const groups = h('ol', { class: 'groups' });
    inner.forEach((group, g) => {
      const gp = `${pointer}/groups/${g}`;
      const groupBox = h('li', { class: 'group', dataset: { pointer: gp } },
        h('div', { class: 'cond-head' }, h('span', { class: 'lead', text: `Group ${g + 1}` }),
          button('Remove group', `${gp}:remove`, () => {
            inner.splice(g, 1);
            ctx.changed(true);
          }, { class: 'small secondary' })),
        errorsSlot());
      if (isObject(group) && Array.isArray(group.filters)) {
        groupBox.append(...conditionList(ctx, group.filters, `${gp}/filters`, '+ filter'));
      } else {
        groupBox.append(h('p', { class: 'muted', text: 'A group is {"filters": […]}: edit it in the JSON.' }));
      }
      groups.append(groupBox);
    });
    return [
      h('p', { class: 'muted small', text: 'Any group holds; a group holds when all its filters do.' }),
      groups,
      button('+ group', `${pointer}/groups:add`, () => {
        inner.push({ filters: [] });
        ctx.changed(true);
      }),
    ];
  },
};
