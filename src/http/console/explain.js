// @ts-check
// The explanation tree of the match endpoint: every condition of the query
// with its outcome for one subscriber and the facts it was decided on.

import { h } from './dom.js';

/**
 * One node of the match endpoint's explanation: a condition, where it is in
 * the query, its outcome, the facts it was decided on, and its children.
 * @typedef {object} ExplanationNode
 * @property {string} condition
 * @property {string} at
 * @property {boolean} matched
 * @property {Record<string, unknown> | null} [facts]
 * @property {ExplanationNode[]} [children]
 */

/** @type {Record<string, string>} */
const NAMES = {
  all: 'all of', any: 'any of', not: 'not', groups: 'groups', group: 'group', email: 'email',
  subscribed: 'subscription', created: 'created', tag: 'tag', field: 'field', event: 'event', segment: 'segment',
  everyone: 'everyone',
};

/**
 * @param {unknown} value
 * @returns {string}
 */
function factText(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** @param {ExplanationNode} node */
function facts(node) {
  if (!node.facts || typeof node.facts !== 'object') return null;
  return h('dl', { class: 'facts' },
    Object.entries(node.facts).map(([key, value]) => [h('dt', { text: key }), h('dd', {}, h('code', { text: factText(value) }))]));
}

/**
 * @param {ExplanationNode} node
 * @returns {HTMLLIElement}
 */
function item(node) {
  const outcome = node.matched ? 'holds' : 'does not hold';
  return h('li', { class: node.matched ? 'yes' : 'no', dataset: { pointer: node.at, matched: String(node.matched) } },
    h('div', { class: 'node' },
      h('span', { class: 'mark', 'aria-hidden': 'true', text: node.matched ? '✓' : '✗' }),
      h('span', { class: 'visually-hidden', text: `${outcome}: ` }),
      h('strong', { text: NAMES[node.condition] || node.condition }),
      ' ', h('code', { class: 'pointer', text: node.at || '(whole query)' }),
      h('span', { class: 'outcome', text: ` ${outcome}` })),
    facts(node),
    node.children && node.children.length ? h('ul', {}, node.children.map(item)) : null);
}

/**
 * The tree of `explanation` (a match answer's `explanation`).
 * @param {ExplanationNode} explanation
 * @returns {HTMLUListElement}
 */
export function explanationTree(explanation) {
  return h('ul', { class: 'explain' }, item(explanation));
}
