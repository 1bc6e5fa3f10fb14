// The explanation tree of the match endpoint: every condition of the query
// with its outcome for one subscriber and the facts it was decided on.

import { h } from './dom.js';

const NAMES = {
  all: 'all of', any: 'any of', not: 'not', groups: 'groups', group: 'group', email: 'email',
  subscribed: 'subscription', created: 'created', tag: 'tag', field: 'field', event: 'event', segment: 'segment',
  everyone: 'everyone',
};

function factText(value) {
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

function facts(node) {
  if (!node.facts || typeof node.facts !== 'object') return null;
  return h('dl', { class: 'facts' },
    Object.entries(node.facts).map(([key, value]) => [h('dt', { text: key }), h('dd', {}, h('code', { text: factText(value) }))]));
}

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

/** The tree of `explanation` (a match answer's `explanation`). */
export function explanationTree(explanation) {
  return h('ul', { class: 'explain' }, item(explanation));
}
