// @ts-check
// The `event` condition in the builder: a subscriber's events of a type,
// narrowed to a time window (`when`) and to details that match (`where`,
// value operators on each detail path), then tested by how many there are
// (`count`), the sum of a detail (`sum`), or the time of the first or last
// one (`first`, `last`). Each part is a section added with its own button;
// `count` and `sum` take number operators, the time parts time operators.

import { h } from './dom.js';
import { button, errorsSlot, escapePointer, input, isObject, renamed } from './builder-controls.js';
import { opsEditor } from './builder-operators.js';
import { VALUE } from './builder-field.js';
import { TIME } from './builder-subscriber.js';
import { currencyOf, isMoneyPath } from './money.js';
import { LISTS } from './suggest.js';

/** @typedef {import('./builder-controls.js').Context} Context */
/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./builder-controls.js').Kind} Kind */
/** @typedef {import('./builder-operators.js').Family} Family */

/** @type {Family} */
export const NUMBER = {
  name: 'number',
  ops: ['equals', 'not_equals', 'more_than', 'at_least', 'less_than', 'at_most'],
};

/**
 * The sections of an event test after its type: key, what it means, and
 * how it is edited.
 * @type {[string, string, Family | 'where' | 'sum'][]}
 */
const SECTIONS = [
  ['when', 'counted only in a time window', TIME],
  ['where', 'counted only when details match', 'where'],
  ['count', 'how many', NUMBER],
  ['sum', 'sum of a detail', 'sum'],
  ['first', 'first one', TIME],
  ['last', 'last one', TIME],
];

/**
 * A new section's contents.
 * @param {string} key
 * @returns {Json}
 */
function newSection(key) {
  return key === 'where' ? { '': { equals: '' } }
    : key === 'sum' ? { of: 'value.amount', at_least: 0 }
      : key === 'count' ? { at_least: 1 }
        : { within_last: { days: 30 } };
}

/**
 * The detail tests of `where`: a path and its value operators each.
 * @param {Context} ctx
 * @param {Record<string, Json>} ev
 * @param {string} sp
 * @param {HTMLElement} section
 */
function whereSection(ctx, ev, sp, section) {
  const where = ev.where;
  if (!isObject(where)) return;
  for (const path of Object.keys(where)) {
    const wp = `${sp}/${escapePointer(path)}`;
    const pathInput = input(path, 'Detail path', `${wp}:path`, () => {}, { placeholder: 'value.amount', class: 'short' });
    pathInput.addEventListener('change', () => {
      ev.where = renamed(ev.where, path, pathInput.value, ev.where[path]);
      ctx.changed(true);
    });
    section.append(h('div', { class: 'where', dataset: { pointer: wp } },
      h('div', { class: 'inline' }, h('span', { class: 'lead', text: 'detail' }), pathInput,
        button('×', `${wp}:remove`, () => {
          delete ev.where[path];
          ctx.changed(true);
        }, { 'aria-label': `Remove the test of ${path || 'this path'}`, class: 'small icon' })),
      errorsSlot(),
      opsEditor(ctx, VALUE, { get: () => ev.where[path], set: (v, s) => { ev.where[path] = v; ctx.changed(s); } }, wp, [],
        { currency: isMoneyPath(path) ? currencyOf(ev) : null })));
  }
  section.append(button('+ detail test', `${sp}:add`, () => {
    if (!('' in ev.where)) ev.where[''] = { equals: '' };
    ctx.changed(true);
  }));
}

/**
 * `sum`: the path of the detail summed, and number operators.
 * @param {Context} ctx
 * @param {Record<string, Json>} ev
 * @param {string} sp
 * @param {HTMLElement} section
 */
function sumSection(ctx, ev, sp, section) {
  const sum = ev.sum;
  if (isObject(sum)) {
    section.append(h('div', { class: 'inline', dataset: { pointer: `${sp}/of` } }, h('span', { class: 'lead', text: 'of' }),
      input(sum.of ?? '', 'Sum of the detail path', `${sp}/of`, (t) => {
        const money = isMoneyPath(sum.of);
        sum.of = t;
        // Amounts are typed in units and kept in cents: redraw when the
        // path becomes, or stops being, the amount.
        ctx.changed(money !== isMoneyPath(t));
      }, { placeholder: 'value.amount', class: 'short' }), errorsSlot()));
  }
  section.append(opsEditor(ctx, NUMBER, ctx.at(ev, 'sum'), sp, ['of'], { currency: isObject(sum) && isMoneyPath(sum.of) ? currencyOf(ev) : null }));
}

/**
 * The editor of an event test (`ev`, the object under `event`).
 * @param {Context} ctx
 * @param {Json} ev
 * @param {string} pointer
 * @returns {HTMLElement}
 */
function eventEditor(ctx, ev, pointer) {
  const p = `${pointer}/event`;
  const body = h('div', { class: 'event' });
  if (!isObject(ev)) return h('p', { class: 'muted', text: 'Not an object: edit it in the JSON.' });
  body.append(h('div', { class: 'inline', dataset: { pointer: `${p}/type` } },
    h('span', { class: 'lead', text: 'type' }),
    input(ev.type ?? '', 'Event type', `${p}/type`, (t) => {
      if (t === '') delete ev.type;
      else ev.type = t;
      ctx.changed(false);
    }, { placeholder: 'blank: any type', list: LISTS.event }), errorsSlot()));
  const adders = [];
  for (const [key, text, family] of SECTIONS) {
    const sp = `${p}/${key}`;
    if (!(key in ev)) {
      adders.push(button(`+ ${key}`, `${sp}:add`, () => {
        ev[key] = newSection(key);
        ctx.changed(true);
      }, { 'aria-label': `Add ${key}: ${text}` }));
      continue;
    }
    const section = h('fieldset', { class: 'section', dataset: { pointer: sp } },
      h('legend', {}, h('span', { class: 'lead', text: key }), ` ${text} `,
        button('×', `${sp}:remove`, () => {
          delete ev[key];
          ctx.changed(true);
        }, { 'aria-label': `Remove ${key}`, title: `Remove ${key}`, class: 'small icon' })),
      errorsSlot());
    if (family === 'where') whereSection(ctx, ev, sp, section);
    else if (family === 'sum') sumSection(ctx, ev, sp, section);
    else section.append(opsEditor(ctx, family, ctx.at(ev, key), sp));
    body.append(section);
  }
  if (adders.length) body.append(h('div', { class: 'adders' }, adders));
  return body;
}

/** @type {Kind} */
export const EVENT = {
  kind: 'event',
  label: 'Event',
  // No type: any event (`{"event": {}}`, "performed any event"), valid as
  // it is; a type typed narrows it.
  create: () => ({ event: {} }),
  draw: (ctx, condition, _ref, pointer) => [eventEditor(ctx, condition.event, pointer)],
};
