// @ts-check
// The `sample` condition in the builder: a stable sample of the subscribers,
// those whose bucket for a salt lies in [from, to)
// (`{"sample": {"salt": "spring-test", "from": 0, "to": 10}}`). A salt, and
// two bounds from 0 to 100 in hundredths; the hint under them shows the
// share of the audience the range holds.

import { h } from './dom.js';
import { errorsSlot, input, isObject } from './builder-controls.js';

/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./builder-controls.js').Kind} Kind */

/**
 * A number if the text is one, else the text (the API then says why not).
 * @param {string} text
 * @returns {number | string}
 */
function numberOrText(text) {
  const t = text.trim();
  return t !== '' && Number.isFinite(Number(t)) ? Number(t) : text;
}

/**
 * What a range holds, for people: "10% of the subscribers", or nothing
 * when the bounds are not numbers in order.
 * @param {Json} from
 * @param {Json} to
 * @returns {string}
 */
function share(from, to) {
  if (typeof from !== 'number' || typeof to !== 'number' || !(from < to) || from < 0 || to > 100) return '';
  const points = Math.round((to - from) * 100) / 100;
  return `About ${points}% of the subscribers: the same ones on every server and after every restart, for this salt.`;
}

/** @type {Kind} */
export const SAMPLE = {
  kind: 'sample',
  label: 'Sample',
  create: () => ({ sample: { salt: '', from: 0, to: 10 } }),
  draw: (ctx, condition, _ref, pointer) => {
    const inner = condition.sample;
    if (!isObject(inner)) return [];
    const hint = h('p', { class: 'muted sample-share', text: share(inner.from, inner.to) });
    /**
     * A box for one key of the sample.
     * @param {'salt' | 'from' | 'to'} key
     * @param {string} lead
     * @param {string} label
     * @param {Record<string, string | number | boolean>} attrs
     */
    const box = (key, lead, label, attrs) => h('div', { class: 'inline', dataset: { pointer: `${pointer}/sample/${key}` } },
      h('span', { class: 'lead', text: lead }),
      input(inner[key] ?? '', label, `${pointer}/sample/${key}`, (text) => {
        inner[key] = key === 'salt' ? text : numberOrText(text);
        hint.textContent = share(inner.from, inner.to);
        ctx.changed(false);
      }, attrs),
      errorsSlot());
    return [
      h('div', { dataset: { pointer: `${pointer}/sample` } },
        box('salt', 'salt', 'Sample salt', { placeholder: 'spring-test', class: 'short' }),
        box('from', 'from', 'Sample from (included)', { inputmode: 'decimal', class: 'short' }),
        box('to', 'to', 'Sample to (not included)', { inputmode: 'decimal', class: 'short' }),
        hint,
        errorsSlot()),
    ];
  },
};
