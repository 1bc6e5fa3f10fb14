// @ts-check
// The `segment` condition in the builder: membership of another saved
// segment of the site (`{"segment": {"member_of": "42"}}`), chosen by name.

import { h } from './dom.js';
import { errorsSlot, isObject, select } from './builder-controls.js';

/** @typedef {import('./builder-controls.js').Kind} Kind */

/** @type {[string, string][]} */
const MEMBERSHIP = [['member_of', 'is a member of'], ['not_member_of', 'is not a member of']];

/** @type {Kind} */
export const SEGMENT = {
  kind: 'segment',
  label: 'Segment',
  create: (segments) => ({ segment: { member_of: segments[0] ? segments[0].id : '' } }),
  draw: (ctx, condition, ref, pointer) => {
    const inner = condition.segment;
    if (!isObject(inner)) return [];
    const segments = ctx.segments;
    const op = 'not_member_of' in inner ? 'not_member_of' : 'member_of';
    const id = String(inner[op] ?? '');
    const known = segments.some((s) => String(s.id) === id);
    /** @type {[string, string][]} */
    const segmentOptions = segments.map((s) => [String(s.id), `${s.name} (#${s.id})`]);
    if (!known) segmentOptions.unshift([id, id ? `#${id} (not a kept segment)` : 'Choose a segment']);
    return [
      h('div', { class: 'inline', dataset: { pointer: `${pointer}/segment/${op}` } },
        select(MEMBERSHIP, op, 'Membership', `${pointer}/segment:op`,
          (next) => ref.set({ segment: { [next]: id } }, true)),
        select(segmentOptions, id, 'Segment', `${pointer}/segment:id`, (next) => ref.set({ segment: { [op]: next } }, false)),
        errorsSlot()),
    ];
  },
};
