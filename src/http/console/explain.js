// @ts-check
// The explanation of the match endpoint in words: condition by condition, a
// sentence with the subscriber's value and what the condition needs, then
// yes or no ("Spent $606.50 on purchases in the last 90 days; needs more
// than $250: yes"). The facts come from the explanation's nodes, the
// requirements from the segment's saved query at each node's JSON pointer
// (`at`). Under "Details", the same tree as the API gives it: each node's
// kind, pointer and raw facts.

import { h, count, when } from './dom.js';
import { isObject } from './builder-controls.js';
import { currencyOf, isMoneyPath, money } from './money.js';
import { eventWords, listText, needs, performedOnly, timeNeeds, valueText, whereText, windowText } from './words.js';

/** @typedef {import('./builder-controls.js').Json} Json */
/** @typedef {import('./words.js').WordsContext} WordsContext */

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
  sample: 'sample', everyone: 'everyone',
};

/**
 * The value at a JSON pointer (RFC 6901) in `doc`; undefined when there is none.
 * @param {Json} doc
 * @param {string} pointer
 * @returns {Json}
 */
export function atPointer(doc, pointer) {
  if (pointer === '') return doc;
  let here = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(here)) here = here[Number(key)];
    else if (isObject(here)) here = here[key];
    else return undefined;
  }
  return here;
}

/**
 * @param {string} text
 * @returns {string}
 */
function capital(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

/**
 * An event test's clauses: what was counted, and what it needs.
 * @param {Record<string, Json>} ev the object under `event`
 * @param {Record<string, unknown>} facts
 * @returns {[string, string][]}
 */
function eventClauses(ev, facts) {
  const [noun, plural] = eventWords(ev.type);
  const currency = currencyOf(ev);
  const scope = `${whereText(ev.where, currency)}${windowText(ev.when)}`;
  const n = typeof facts.count === 'number' ? facts.count : 0;
  const counted = n > 0 ? `${count(n)} ${n === 1 ? noun : plural}${scope}` : `no ${plural}${scope}`;
  /** @type {[string, string][]} */
  const clauses = [];
  if (performedOnly(ev)) clauses.push([counted, 'at least one']);
  if (isObject(ev.count)) clauses.push([counted, needs(ev.count)]);
  if (isObject(ev.sum)) {
    const sum = facts.sum;
    if (isMoneyPath(ev.sum.of)) {
      clauses.push([`spent ${money(sum, currency)} on ${plural}${scope}`, needs(ev.sum, { currency, fixed: ['of'] })]);
    } else {
      clauses.push([`${valueText(ev.sum.of)} adds up to ${valueText(sum)} over ${plural}${scope}`, needs(ev.sum, { fixed: ['of'] })]);
    }
  }
  for (const key of /** @type {const} */ (['first', 'last'])) {
    if (!(key in ev)) continue;
    const at = facts[key];
    const fact = typeof at === 'string' ? `${key} ${noun}${scope} ${when(at)}` : `no ${plural}${scope}, so no ${key} one`;
    clauses.push([fact, timeNeeds(ev[key])]);
  }
  return clauses;
}

/**
 * A tag test's words, with the named tags the subscriber has.
 * @param {Record<string, Json>} ops
 * @param {Record<string, unknown>} facts
 * @returns {string}
 */
function tagSentence(ops, facts) {
  const seen = Array.isArray(facts.tags) ? facts.tags.map(String) : [];
  /** @param {Json} v */
  const names = (v) => (Array.isArray(v) ? v.map(valueText).join(', ') : valueText(v));
  /** @type {Record<string, string>} */
  const words = { has: 'tagged', has_not: 'not tagged', any_of: 'tagged any of', all_of: 'tagged all of', none_of: 'tagged none of' };
  const parts = Object.entries(ops).map(([op, v]) => `${words[op] || op.replace(/_/g, ' ')} ${names(v)}`);
  const lists = Object.keys(ops).some((op) => Array.isArray(ops[op]));
  const has = lists ? (seen.length ? ` (has ${listText(seen, 'and')})` : ' (has none of them)') : '';
  return capital(`${parts.join(', and ')}${has}`);
}

/**
 * The sentence of one node, before its yes or no. `cond` is the condition
 * at the node's pointer in the saved query (undefined when not found: the
 * facts alone are then shown).
 * @param {ExplanationNode} node
 * @param {Json} cond
 * @param {Json} query
 * @param {WordsContext} ctx
 * @returns {string}
 */
function sentence(node, cond, query, ctx) {
  const facts = isObject(node.facts) ? node.facts : {};
  const inner = isObject(cond) ? cond[node.condition] : undefined;
  switch (node.condition) {
    case 'all': return node.children && node.children.length ? 'All of these' : 'No conditions: everyone';
    case 'any': return 'At least one of these';
    case 'not': return 'Not the following';
    case 'groups': return node.children && node.children.length ? 'At least one of these groups' : 'No groups: nobody';
    case 'group': {
      const n = Number(node.at.split('/').pop());
      const groups = atPointer(query, node.at.replace(/\/\d+$/, ''));
      if (Array.isArray(groups) && groups.length === 1) return 'All of these';
      return `Group ${Number.isFinite(n) ? n + 1 : ''}: all of its filters`;
    }
    case 'email':
      return `Email is ${valueText(facts.email)}${isObject(inner) ? `; needs ${needs(inner)}` : ''}`;
    case 'subscribed':
      if (inner === false) return 'Has unsubscribed';
      if (inner === true) return 'Has not unsubscribed';
      return facts.subscribed ? 'Subscribed' : 'Unsubscribed';
    case 'created':
      return `Created ${when(String(facts.created_at ?? ''))}${inner !== undefined ? `; needs ${timeNeeds(inner)}` : ''}`;
    case 'tag':
      if (isObject(inner)) return tagSentence(inner, facts);
      break;
    case 'field': {
      const key = isObject(inner) ? valueText(inner.key) : 'value';
      const value = facts.present === false ? 'is not set' : `is ${valueText(facts.value)}`;
      return `Field ${key} ${value}${isObject(inner) ? `; needs ${needs(inner, { fixed: ['key'] })}` : ''}`;
    }
    case 'event': {
      if (!isObject(inner)) break;
      const clauses = eventClauses(inner, facts);
      if (clauses.length === 1) return capital(`${clauses[0][0]}; needs ${clauses[0][1]}`);
      return capital(clauses.map(([fact, need]) => `${fact}, needs ${need}`).join('; '));
    }
    case 'segment': {
      const id = String(facts.segment_id ?? (isObject(inner) ? inner.member_of ?? inner.not_member_of : ''));
      const name = ctx.segmentNames?.get(id) || `segment ${id}`;
      return isObject(inner) && 'not_member_of' in inner ? `Not a member of ${name}` : `Member of ${name}`;
    }
    case 'sample':
      if (isObject(inner)) {
        return `In the sample “${valueText(inner.salt)}” from ${valueText(inner.from)} to ${valueText(inner.to)}; the subscriber's bucket is ${valueText(facts.bucket)}`;
      }
      break;
    default:
      break;
  }
  const shown = Object.entries(facts).map(([k, v]) => `${k.replace(/_/g, ' ')} ${valueText(v)}`);
  return capital(`${NAMES[node.condition] || node.condition}${shown.length ? ` (${shown.join(', ')})` : ''}`);
}

/**
 * One node in words, and its children.
 * @param {ExplanationNode} node
 * @param {Json} query
 * @param {WordsContext} ctx
 * @returns {HTMLLIElement}
 */
function wordsItem(node, query, ctx) {
  // A group of one (Bento's single group, a group of one filter, `all` or
  // `any` of one) holds exactly when its one condition does: only that
  // condition is worded.
  if (['groups', 'group', 'all', 'any'].includes(node.condition) && node.children && node.children.length === 1) {
    return wordsItem(node.children[0], query, ctx);
  }
  let text;
  try {
    text = sentence(node, atPointer(query, node.at), query, ctx);
  } catch {
    text = capital(NAMES[node.condition] || node.condition);
  }
  const answer = node.matched ? 'yes' : 'no';
  return h('li', { class: answer, dataset: { pointer: node.at, matched: String(node.matched), condition: node.condition } },
    h('div', { class: 'node' },
      h('span', { class: 'mark', 'aria-hidden': 'true', text: node.matched ? '✓' : '✗' }),
      h('span', { class: 'sentence' }, `${text}: `, h('strong', { class: 'answer', text: answer }))),
    node.children && node.children.length ? h('ul', {}, node.children.map((c) => wordsItem(c, query, ctx))) : null);
}

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
 * One node as the API gives it: kind, pointer, outcome, raw facts.
 * @param {ExplanationNode} node
 * @returns {HTMLLIElement}
 */
function rawItem(node) {
  const outcome = node.matched ? 'holds' : 'does not hold';
  return h('li', { class: node.matched ? 'yes' : 'no', dataset: { pointer: node.at, matched: String(node.matched) } },
    h('div', { class: 'node' },
      h('span', { class: 'mark', 'aria-hidden': 'true', text: node.matched ? '✓' : '✗' }),
      h('span', { class: 'visually-hidden', text: `${outcome}: ` }),
      h('strong', { text: NAMES[node.condition] || node.condition }),
      ' ', h('code', { class: 'pointer', text: node.at || '(whole query)' }),
      h('span', { class: 'outcome', text: ` ${outcome}` })),
    facts(node),
    node.children && node.children.length ? h('ul', {}, node.children.map(rawItem)) : null);
}

/**
 * A match answer's `explanation` in words, condition by condition, with the
 * raw tree (pointers and facts) under a Details toggle.
 * @param {ExplanationNode} explanation
 * @param {Json} query the segment's saved `visitor_event_query`
 * @param {WordsContext} [ctx]
 * @returns {HTMLElement}
 */
export function explanationView(explanation, query, ctx = {}) {
  return h('div', { class: 'explanation' },
    h('ul', { class: 'explain' }, wordsItem(explanation, query, ctx)),
    h('details', { class: 'explain-details' },
      h('summary', { text: 'Details: each condition’s place in the query (JSON pointer) and raw facts' }),
      h('ul', { class: 'explain-raw' }, rawItem(explanation))));
}
