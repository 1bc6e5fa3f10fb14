// @ts-check
// The query language in words, for people who do not read JSON: a segment's
// whole query as one sentence ("Subscribers who are tagged customer and
// purchased at least twice in the last 90 days"), and the pieces the Why?
// explanation (explain.js) words each condition with: what an operator
// requires, a span, a date, an event type's name, a value. Money (`value.amount`,
// in cents) is shown in units with its currency (money.js). Anything this
// module does not know is put in a neutral phrase rather than refused, so a
// query the builder cannot draw still reads.

import { h, count } from './dom.js';
import { isObject } from './builder-controls.js';
import { currencyOf, isMoneyPath, money } from './money.js';

/** @typedef {import('./dom.js').Child} Child */
/** @typedef {import('./builder-controls.js').Json} Json */

/**
 * What the words need to know about the site.
 * @typedef {object} WordsContext
 * @property {Map<string, string>} [segmentNames] segment id → name
 */

/**
 * How Bento's usual event types read: a noun, its plural, and a verb in the
 * past ("purchased at least twice").
 * @type {Record<string, [string, string, string]>}
 */
const EVENT_WORDS = {
  $purchase: ['purchase', 'purchases', 'purchased'],
  $pageview: ['page view', 'page views', 'viewed a page'],
  $view: ['view', 'views', 'viewed'],
  $open_email: ['email open', 'email opens', 'opened an email'],
  $click: ['click', 'clicks', 'clicked'],
  $login: ['login', 'logins', 'logged in'],
  $signup: ['sign-up', 'sign-ups', 'signed up'],
  $subscribe: ['subscription', 'subscriptions', 'subscribed'],
  $unsubscribe: ['unsubscription', 'unsubscriptions', 'unsubscribed'],
};

/**
 * An event type's words: `[noun, plural, verb]`; any type when blank.
 * @param {unknown} type
 * @returns {[string, string, string]}
 */
export function eventWords(type) {
  if (typeof type !== 'string' || type.trim() === '') return ['event', 'events', 'did anything'];
  const t = type.trim();
  const known = EVENT_WORDS[t.toLowerCase()];
  if (known) return known;
  return [`“${t}” event`, `“${t}” events`, `had a “${t}” event`];
}

/**
 * A value as text: strings as they are, numbers with separators, `null`
 * as "empty".
 * @param {unknown} value
 * @returns {string}
 */
export function valueText(value) {
  if (value === null) return 'empty (null)';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return count(value);
  if (typeof value === 'boolean') return String(value);
  if (value === undefined) return '(nothing)';
  return JSON.stringify(value);
}

/**
 * A list read out: `a, b or c`.
 * @param {string[]} items
 * @param {string} [last]
 * @returns {string}
 */
export function listText(items, last = 'or') {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} ${last} ${items[items.length - 1]}`;
}

/**
 * A span: `{"days": 30}` → `30 days`, `{"weeks": 1}` → `1 week`.
 * @param {unknown} span
 * @returns {string}
 */
export function spanText(span) {
  if (!isObject(span)) return valueText(span);
  const [unit, n] = Object.entries(span)[0] || ['', ''];
  if (typeof n !== 'number') return valueText(span);
  return `${count(n)} ${n === 1 ? unit.replace(/s$/, '') : unit}`;
}

/**
 * An instant as written in a query (`2026-01-01` or RFC 3339) as a date to
 * read: `Jan 1, 2026`; anything else as it is.
 * @param {unknown} instant
 * @returns {string}
 */
export function dateText(instant) {
  if (typeof instant !== 'string') return valueText(instant);
  const d = new Date(instant);
  if (Number.isNaN(d.getTime())) return instant;
  if (/^\d{4}-\d{2}-\d{2}$/.test(instant)) return d.toLocaleDateString('en', { dateStyle: 'medium', timeZone: 'UTC' });
  return d.toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * A number operand: money in units when `currency` is given, else a count.
 * @param {unknown} n
 * @param {string | null} currency
 * @returns {string}
 */
function amount(n, currency) {
  return currency && typeof n === 'number' ? money(n, currency, { short: true }) : valueText(n);
}

/**
 * A time window, past tense: `within the last 30 days`, `more than 6 weeks
 * ago`, `since Jan 1, 2026`.
 * @param {string} op
 * @param {unknown} v
 * @returns {string}
 */
function timeOp(op, v) {
  switch (op) {
    case 'within_last': return `within the last ${spanText(v)}`;
    case 'older_than': return `more than ${spanText(v)} ago`;
    case 'since': return `on or after ${dateText(v)}`;
    case 'before': return `before ${dateText(v)}`;
    case 'between': return Array.isArray(v) ? `between ${dateText(v[0])} and ${dateText(v[1])} (excluded)` : `between ${valueText(v)}`;
    default: return `${op.replace(/_/g, ' ')} ${valueText(v)}`;
  }
}

/**
 * Which events a `when` window counts: `in the last 90 days`.
 * @param {unknown} when
 * @returns {string}
 */
export function windowText(when) {
  if (!isObject(when)) return '';
  const parts = Object.entries(when).map(([op, v]) => (op === 'within_last' ? `in the last ${spanText(v)}` : timeOp(op, v)));
  return parts.length ? ` ${parts.join(' and ')}` : '';
}

/**
 * A time test as a requirement: `within the last 30 days`.
 * @param {unknown} ops
 * @returns {string}
 */
export function timeNeeds(ops) {
  if (!isObject(ops)) return valueText(ops);
  return Object.entries(ops).map(([op, v]) => timeOp(op, v)).join(' and ');
}

/**
 * One operator as a requirement on a value: `more than $250`, `team`,
 * `one of pro or team`, `to contain x`, `to be set`.
 * @param {string} op
 * @param {unknown} v
 * @param {string | null} [currency] the operand is money in cents
 * @returns {string}
 */
export function opNeeds(op, v, currency = null) {
  switch (op) {
    case 'equals': return typeof v === 'number' ? `exactly ${amount(v, currency)}` : valueText(v);
    case 'not_equals': return `anything but ${amount(v, currency)}`;
    case 'in': return Array.isArray(v) ? (v.length ? `one of ${listText(v.map((x) => amount(x, currency)))}` : 'one of an empty list (never)') : valueText(v);
    case 'contains': return `to contain “${valueText(v)}”`;
    case 'starts_with': return `to start with “${valueText(v)}”`;
    case 'ends_with': return `to end with “${valueText(v)}”`;
    case 'domain': return `the domain ${valueText(v)}`;
    case 'more_than': return `more than ${amount(v, currency)}`;
    case 'at_least': return `at least ${amount(v, currency)}`;
    case 'less_than': return `less than ${amount(v, currency)}`;
    case 'at_most': return `at most ${amount(v, currency)}`;
    case 'exists': return v === false ? 'to be absent' : 'to be set';
    case 'since': case 'before': case 'between': case 'within_last': case 'older_than': return timeOp(op, v);
    default: return `${op.replace(/_/g, ' ')} ${valueText(v)}`;
  }
}

/**
 * An operator object as a requirement: `at least 10 and less than 20`;
 * `fixed` keys (a field's `key`, a sum's `of`) are not operators.
 * @param {unknown} ops
 * @param {{ currency?: string | null, fixed?: string[] }} [options]
 * @returns {string}
 */
export function needs(ops, { currency = null, fixed = [] } = {}) {
  if (!isObject(ops)) return valueText(ops);
  const parts = Object.entries(ops).filter(([op]) => !fixed.includes(op)).map(([op, v]) => opNeeds(op, v, currency));
  return parts.length ? parts.join(' and ') : 'nothing';
}

/**
 * One operator as a description of a value after a name: `equal to pro`,
 * `more than 50`, `containing x`, `set`.
 * @param {string} op
 * @param {unknown} v
 * @param {string | null} currency
 * @returns {string}
 */
function opAdjective(op, v, currency) {
  switch (op) {
    case 'equals': return `equal to ${amount(v, currency)}`;
    case 'not_equals': return `not equal to ${amount(v, currency)}`;
    case 'in': return Array.isArray(v) ? `equal to ${listText(v.map((x) => amount(x, currency)))}` : valueText(v);
    case 'contains': return `containing “${valueText(v)}”`;
    case 'starts_with': return `starting with “${valueText(v)}”`;
    case 'ends_with': return `ending with “${valueText(v)}”`;
    case 'domain': return `with the domain ${valueText(v)}`;
    case 'exists': return v === false ? 'not set' : 'set';
    default: return opNeeds(op, v, currency);
  }
}

/**
 * @param {unknown} ops
 * @param {string | null} [currency]
 * @param {string[]} [fixed]
 * @returns {string}
 */
function adjectives(ops, currency = null, fixed = []) {
  if (!isObject(ops)) return valueText(ops);
  return Object.entries(ops).filter(([op]) => !fixed.includes(op)).map(([op, v]) => opAdjective(op, v, currency)).join(' and ');
}

/**
 * How often, from count operators: `at least twice`, `exactly once`.
 * @param {unknown} ops
 * @returns {string}
 */
export function timesText(ops) {
  if (!isObject(ops)) return valueText(ops);
  /** @param {unknown} n */
  const times = (n) => (n === 1 ? 'once' : n === 2 ? 'twice' : `${valueText(n)} times`);
  /** @type {Record<string, string>} */
  const words = { equals: 'exactly', not_equals: 'other than', more_than: 'more than', at_least: 'at least', less_than: 'fewer than', at_most: 'at most' };
  return Object.entries(ops).map(([op, n]) => `${words[op] || op.replace(/_/g, ' ')} ${times(n)}`).join(' and ');
}

/**
 * The `where` of an event test as words: ` with value.currency equal to USD`.
 * @param {unknown} where
 * @param {string} currency
 * @returns {string}
 */
export function whereText(where, currency) {
  if (!isObject(where)) return '';
  const parts = Object.entries(where).map(([path, ops]) => `${path} ${adjectives(ops, isMoneyPath(path) ? currency : null)}`);
  return parts.length ? ` with ${parts.join(' and ')}` : '';
}

/**
 * Whether an event test has none of `count`, `sum`, `first`, `last`: it then
 * asks for at least one counted event.
 * @param {Record<string, Json>} ev
 * @returns {boolean}
 */
export function performedOnly(ev) {
  return !['count', 'sum', 'first', 'last'].some((k) => k in ev);
}

/**
 * An event test as a clause after "who": `purchased at least twice in the
 * last 90 days`, `spent more than $250 on purchases in the last 90 days`.
 * @param {Json} ev
 * @param {boolean} [negated] the clause of `not` around it
 * @returns {string | null} null when it cannot be said simply negated
 */
function eventClause(ev, negated = false) {
  if (!isObject(ev)) return negated ? null : 'match an event test the console cannot put into words';
  const [, plural, verb] = eventWords(ev.type);
  const currency = currencyOf(ev);
  const scope = `${whereText(ev.where, currency)}${windowText(ev.when)}`;
  if (performedOnly(ev)) return `${negated ? 'never ' : ''}${verb}${scope}`;
  if (negated) return null;
  const parts = [];
  if (isObject(ev.count)) {
    const zero = Object.entries(ev.count).every(([op, n]) => (op === 'equals' || op === 'at_most') && n === 0);
    parts.push(zero ? `never ${verb}${scope}` : `${verb} ${timesText(ev.count)}${scope}`);
  }
  if (isObject(ev.sum)) {
    const of = ev.sum.of;
    parts.push(isMoneyPath(of)
      ? `spent ${needs(ev.sum, { currency, fixed: ['of'] })} on ${plural}${scope}`
      : `had ${plural}${scope} whose ${valueText(of)} adds up to ${needs(ev.sum, { fixed: ['of'] })}`);
  }
  if ('first' in ev) parts.push(`first ${verb} ${timeNeeds(ev.first)}${scope}`);
  if ('last' in ev) parts.push(`last ${verb} ${timeNeeds(ev.last)}${scope}`);
  return parts.join(' and ');
}

/**
 * @param {string} text
 * @returns {HTMLElement}
 */
const em = (text) => h('em', { text });

/**
 * Tag names, each emphasised, joined: `a, b or c`.
 * @param {unknown} names
 * @param {string} last
 * @returns {Child[]}
 */
function tagList(names, last) {
  const list = Array.isArray(names) ? names.map((n) => valueText(n)) : [valueText(names)];
  /** @type {Child[]} */
  const out = [];
  list.forEach((name, i) => {
    if (i > 0) out.push(i === list.length - 1 ? ` ${last} ` : ', ');
    out.push(em(name));
  });
  return out;
}

/**
 * A `tag` test as clauses after "who": `are tagged customer`.
 * @param {Record<string, Json>} ops
 * @returns {Child[][]}
 */
function tagClauses(ops) {
  return Object.entries(ops).map(([op, v]) => {
    switch (op) {
      case 'has': return ['are tagged ', ...tagList(v, 'and')];
      case 'has_not': return ['are not tagged ', ...tagList(v, 'or')];
      case 'any_of': return ['are tagged ', ...tagList(v, 'or')];
      case 'all_of': return ['are tagged ', ...tagList(v, 'and')];
      case 'none_of': return ['are tagged none of ', ...tagList(v, 'or')];
      default: return [`match the tag test ${op} `, ...tagList(v, 'and')];
    }
  });
}

/**
 * A segment's name, emphasised, by id.
 * @param {unknown} id
 * @param {WordsContext} ctx
 * @returns {Child}
 */
function segmentName(id, ctx) {
  const name = ctx.segmentNames?.get(String(id));
  return name ? em(name) : `segment ${valueText(id)}`;
}

/**
 * Joins clauses with commas and a last `and` or `or`.
 * @param {Child[][]} clauses
 * @param {string} last
 * @returns {Child[]}
 */
function joinClauses(clauses, last) {
  /** @type {Child[]} */
  const out = [];
  clauses.forEach((c, i) => {
    if (i > 0) out.push(i === clauses.length - 1 ? ` ${last} ` : ', ');
    out.push(...c);
  });
  return out;
}

/**
 * A list of conditions as one clause: `a and b`, or `(a or b)` when nested.
 * @param {Json[]} list
 * @param {'and' | 'or'} join
 * @param {WordsContext} ctx
 * @param {number} depth
 * @returns {Child[]}
 */
function listClause(list, join, ctx, depth) {
  if (list.length === 1) return clause(list[0], ctx, depth);
  const joined = joinClauses(list.map((c) => clause(c, ctx, depth + 1)), join);
  return depth > 0 ? ['(', ...joined, ')'] : joined;
}

/**
 * A condition as a clause after "who"; never throws.
 * @param {Json} c
 * @param {WordsContext} ctx
 * @param {number} depth
 * @returns {Child[]}
 */
function clause(c, ctx, depth) {
  const neutral = ['match a condition the console cannot put into words'];
  if (!isObject(c) || Object.keys(c).length !== 1) return neutral;
  const [kind, v] = Object.entries(c)[0];
  switch (kind) {
    case 'all':
      if (!Array.isArray(v)) return neutral;
      return v.length ? listClause(v, 'and', ctx, depth) : ['are any subscriber'];
    case 'any':
      if (!Array.isArray(v)) return neutral;
      return v.length ? listClause(v, 'or', ctx, depth) : ['are nobody (an empty “any of”)'];
    case 'groups': {
      if (!Array.isArray(v)) return neutral;
      if (!v.length) return ['are nobody (no groups)'];
      const groups = v.map((g) => ({ all: isObject(g) && Array.isArray(g.filters) ? g.filters : [] }));
      return groups.length === 1 ? clause(groups[0], ctx, depth) : listClause(groups, 'or', ctx, depth);
    }
    case 'not':
      return negated(v, ctx, depth);
    case 'email':
      return [`have an email address ${adjectives(v)}`];
    case 'subscribed':
      return [v === false ? 'have unsubscribed' : 'are subscribed'];
    case 'created':
      return [`were created ${timeNeeds(v)}`];
    case 'tag':
      return isObject(v) ? joinClauses(tagClauses(v), 'and') : neutral;
    case 'field':
      return isObject(v) ? ['have the field ', em(valueText(v.key)), ` ${adjectives(v, null, ['key'])}`] : neutral;
    case 'event':
      return [eventClause(v) || neutral[0]];
    case 'segment':
      if (!isObject(v)) return neutral;
      if ('not_member_of' in v) return ['are not in ', segmentName(v.not_member_of, ctx)];
      return ['are in ', segmentName(v.member_of, ctx)];
    case 'sample':
      if (!isObject(v)) return neutral;
      return ['fall in the sample ', em(valueText(v.salt)), ` (buckets ${valueText(v.from)} to ${valueText(v.to)}, about ${valueText(Number(v.to) - Number(v.from))}%)`];
    default:
      return neutral;
  }
}

/**
 * The clause of `not c`: in plain words where there is one, else "are not
 * among those who …".
 * @param {Json} c
 * @param {WordsContext} ctx
 * @param {number} depth
 * @returns {Child[]}
 */
function negated(c, ctx, depth) {
  if (isObject(c) && Object.keys(c).length === 1) {
    const [kind, v] = Object.entries(c)[0];
    if (kind === 'subscribed') return [v === false ? 'are subscribed' : 'have unsubscribed'];
    if (kind === 'tag' && isObject(v) && Object.keys(v).length === 1 && 'has' in v) return ['are not tagged ', ...tagList(v.has, 'and')];
    if (kind === 'segment' && isObject(v)) {
      return 'not_member_of' in v ? ['are in ', segmentName(v.not_member_of, ctx)] : ['are not in ', segmentName(v.member_of, ctx)];
    }
    if (kind === 'event') {
      const words = eventClause(v, true);
      if (words) return [words];
    }
  }
  return ['are not among those who ', ...clause(c, ctx, depth + 1)];
}

/**
 * A whole query (a segment's `visitor_event_query`) as one sentence, with
 * tags, fields and segments emphasised. Never throws: what it cannot word
 * it names neutrally.
 * @param {Json} query
 * @param {WordsContext} [ctx]
 * @returns {Child[]}
 */
export function querySentence(query, ctx = {}) {
  try {
    if (!isObject(query)) return ['A query the console cannot put into words.'];
    const keys = Object.keys(query);
    if (keys.length === 0 || (Array.isArray(query.all) && query.all.length === 0)) return ['Every subscriber of the site.'];
    if ((Array.isArray(query.any) && query.any.length === 0) || (Array.isArray(query.groups) && query.groups.length === 0)) {
      return ['Nobody: an empty list of alternatives holds for no one.'];
    }
    if (keys.length === 1 && keys[0] === 'foreign') {
      return ['A query written for another system: kept as saved, never evaluated, so nobody is counted.'];
    }
    return ['Subscribers who ', ...clause(query, ctx, 0), '.'];
  } catch {
    return ['A query the console cannot put into words.'];
  }
}
