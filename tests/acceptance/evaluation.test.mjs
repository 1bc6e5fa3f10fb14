// Acceptance tests for live segment evaluation: queries are checked against Corral's query
// language (docs/query-language.md) when saved, and segments are evaluated against the
// current data. The audience is built through the Bento Node SDK's own methods
// (`Batch.importSubscribers`, `track`, `trackPurchase`, `tagSubscriber`, `Commands.*`), and
// segment counts are read with the SDK's `Stats.getSegmentStats`. Corral's own evaluation
// routes (match, members, preview), which no SDK method calls, and segment creation go
// through the SDK's client (`analytics.V1._client`), so they carry the SDK's real
// authentication, headers and `site_uuid` placement; plain `fetch` is used where a status
// code or content type must be seen.
//
// Run with scripts/acceptance.sh, which starts the servers and sets:
//   CORRAL_BASE_URL, CORRAL_SITE_UUID, CORRAL_PUBLISHABLE_KEY, CORRAL_SECRET_KEY
//     the main site, on a server without rate limiting (also on /stats/*);
//   CORRAL_OTHER_SITE_UUID, CORRAL_OTHER_PUBLISHABLE_KEY, CORRAL_OTHER_SECRET_KEY (optional)
//     a second site on the same server, for the site-isolation tests.
// Every test uses its own emails, tag names and event types (random suffix) and builds
// segments that only its own subscribers can match, so segment counts are exact even on
// the shared main site. This file creates subscribers, so scripts/acceptance.sh runs it after
// audience.test.mjs (whose site-stats deltas must not see them), not in parallel with it.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Analytics } from '@bentonow/bento-node-sdk';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the suite with scripts/acceptance.sh`);
  return value;
}

const MAIN = {
  baseUrl: required('CORRAL_BASE_URL'),
  siteUuid: required('CORRAL_SITE_UUID'),
  publishableKey: required('CORRAL_PUBLISHABLE_KEY'),
  secretKey: required('CORRAL_SECRET_KEY'),
};
const OTHER = process.env.CORRAL_OTHER_SITE_UUID
  ? {
      baseUrl: MAIN.baseUrl,
      siteUuid: required('CORRAL_OTHER_SITE_UUID'),
      publishableKey: required('CORRAL_OTHER_PUBLISHABLE_KEY'),
      secretKey: required('CORRAL_OTHER_SECRET_KEY'),
    }
  : null;

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function sdk(server) {
  return new Analytics({
    authentication: { publishableKey: server.publishableKey, secretKey: server.secretKey },
    siteUuid: server.siteUuid,
    clientOptions: { baseUrl: server.baseUrl, timeout: 10000 },
  }).V1;
}

const bento = sdk(MAIN);
const main = bento._client;

function suffix() {
  return randomBytes(5).toString('hex');
}

/** A fresh address no test has used. */
function newEmail(label) {
  return `${label}-${suffix()}@example.com`;
}

async function createSegment(client, attributes) {
  const body = await client.post('/fetch/segments', { segment: { name: `Evaluated ${suffix()}`, ...attributes } });
  assert.ok(body && typeof body === 'object' && body.data, `create answered ${JSON.stringify(body)}`);
  assert.equal(typeof body.data.id, 'string');
  return body.data;
}

async function segmentIds(client) {
  const body = await client.get('/fetch/segments');
  assert.ok(Array.isArray(body.data), `list answered ${JSON.stringify(body)}`);
  return body.data.map((r) => r.id);
}

/** `Stats.getSegmentStats`, checking the answer is Bento's flat three counts. */
async function segmentStats(api, id) {
  const stats = await api.Stats.getSegmentStats(id);
  assert.deepEqual(
    Object.keys(stats).sort(),
    ['subscriber_count', 'unsubscriber_count', 'user_count'],
    `segment stats answered ${JSON.stringify(stats)}`,
  );
  for (const v of Object.values(stats)) assert.ok(Number.isInteger(v) && v >= 0, `counts must be integers: ${JSON.stringify(stats)}`);
  return stats;
}

function counts(users, subscribers, unsubscribers) {
  return { user_count: users, subscriber_count: subscribers, unsubscriber_count: unsubscribers };
}

/** Plain HTTP, to see status codes and content types. */
async function http(server, method, path, { query = {}, body } = {}) {
  const url = new URL(server.baseUrl + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const headers = {
    Authorization: 'Basic ' + Buffer.from(`${server.publishableKey}:${server.secretKey}`).toString('base64'),
  };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text, json };
}

/** The SDK's error for a 404 with Corral's segment body. */
function segmentNotFound(err) {
  assert.ok(err instanceof Error, `not an Error: ${err}`);
  assert.equal(err.message, '[404] - {"error":"Segment not found"}');
  return true;
}

/**
 * Asserts the SDK's error for a 422 (`Error("[422] - <JSON body>")`) and returns the body's
 * `errors` list.
 */
function unprocessable(err) {
  assert.ok(err instanceof Error, `not an Error: ${err}`);
  const m = /^\[422\] - (.*)$/s.exec(err.message);
  assert.ok(m, `expected the SDK's 422 error, got ${err.message}`);
  const body = JSON.parse(m[1]);
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `422 body: ${m[1]}`);
  for (const e of body.errors) {
    assert.equal(typeof e.field, 'string', m[1]);
    assert.equal(typeof e.message, 'string', m[1]);
  }
  return body.errors;
}

/** Runs `promise`, which must fail with the SDK's 422 error; returns the `errors` list. */
async function rejects422(promise) {
  let errors;
  await assert.rejects(promise, (err) => {
    errors = unprocessable(err);
    return true;
  });
  return errors;
}

/** The `errors` of a 422 for a foreign query: one, on `visitor_event_query`, saying so. */
function assertNotEvaluable(errors) {
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0].field, 'visitor_event_query');
  assert.match(errors[0].message, /foreign/);
}

async function match(client, id, who) {
  const body = await client.post(`/fetch/segments/${id}/match`, who);
  assert.ok(body && body.data, `match answered ${JSON.stringify(body)}`);
  assert.equal(body.data.segment_id, id);
  assert.equal(typeof body.data.matched, 'boolean');
  assert.equal(body.data.subscriber.type, 'visitors');
  assert.equal(body.data.explanation.matched, body.data.matched, 'the root of the explanation is the answer');
  return body.data;
}

/** Every member's email (lowercased), following `next_cursor` from page to page. */
async function allMembers(client, id, limit) {
  const emails = [];
  const ids = [];
  let cursor;
  let total;
  for (let pages = 0; pages < 100; pages++) {
    const body = await client.get(`/fetch/segments/${id}/members`, { limit, cursor });
    assert.ok(Array.isArray(body.data) && body.meta, `members answered ${JSON.stringify(body)}`);
    assert.ok(body.data.length <= limit, `a page of ${body.data.length} over the limit ${limit}`);
    if (total === undefined) total = body.meta.count;
    assert.equal(body.meta.count, total, 'meta.count must not change between pages of an unchanged audience');
    for (const r of body.data) {
      assert.equal(r.type, 'visitors');
      ids.push(r.id);
      emails.push(r.attributes.email.toLowerCase());
    }
    if (body.meta.next_cursor === null) return { emails, ids, count: total };
    assert.equal(typeof body.meta.next_cursor, 'string');
    assert.equal(body.data.length, limit, 'a page followed by another must be full');
    cursor = body.meta.next_cursor;
  }
  throw new Error('members never reached its last page');
}

/** Three subscribers with `tag`, one of them unsubscribed through `Commands.unsubscribe`. */
async function threeTagged(label, tag) {
  const emails = [1, 2, 3].map((i) => newEmail(`${label}-${i}`));
  assert.equal(await bento.Batch.importSubscribers({ subscribers: emails.map((email) => ({ email, tags: tag })) }), 3);
  assert.equal(await bento.Commands.unsubscribe({ email: emails[2] }), 1);
  return emails;
}

describe('Stats.getSegmentStats: live counts of a segment', () => {
  test('a tag segment counts its members exactly, and follows every change at once', async () => {
    const tag = `Seg-${suffix()}`;
    const segment = await createSegment(main, { visitor_event_query: { tag: { has: tag.toLowerCase() } } });
    assert.deepEqual(await segmentStats(bento, segment.id), counts(0, 0, 0), 'a tag nobody has is had by nobody');

    const [a, b, c] = [1, 2, 3].map((i) => newEmail(`tagged-${i}`));
    assert.equal(await bento.Batch.importSubscribers({ subscribers: [a, b, c].map((email) => ({ email, tags: tag })) }), 3);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 3, 0));

    assert.equal(await bento.Commands.unsubscribe({ email: c }), 1);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 2, 1));

    // Someone else is tagged through an event: one more member, immediately.
    const d = newEmail('tagged-4');
    assert.equal(await bento.tagSubscriber({ email: d, tagName: tag.toUpperCase() }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(4, 3, 1));

    assert.equal(await bento.removeSubscriber({ email: d }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(4, 2, 2));

    assert.equal(await bento.Commands.removeTag({ email: a, tagName: tag }), 1);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 1, 2));

    assert.equal(await bento.Commands.subscribe({ email: c }), 1);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 2, 1));

    // Untagged subscribers and other tags change nothing.
    await bento.Subscribers.createSubscriber({ email: newEmail('untagged') });
    await bento.tagSubscriber({ email: newEmail('other-tag'), tagName: `${tag}-not` });
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 2, 1));
  });

  test('an event-count segment follows track calls', async () => {
    const type = `$evt_${suffix()}`;
    const segment = await createSegment(main, { visitor_event_query: { event: { type, count: { at_least: 2 } } } });
    const [a, b] = [newEmail('tracker-a'), newEmail('tracker-b')];

    assert.equal(await bento.track({ type, email: a }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(0, 0, 0), 'one event is not at least two');
    assert.equal(await bento.track({ type, email: a, details: { n: 2 } }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(1, 1, 0));

    // Events of another type, or of this type for someone else once, do not count.
    assert.equal(await bento.track({ type: `${type}_other`, email: b }), true);
    assert.equal(await bento.track({ type: `${type}_other`, email: b }), true);
    assert.equal(await bento.track({ type, email: b }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(1, 1, 0));

    // Two events in one batch (one dated in the past) make b a member.
    assert.equal(
      await bento.Batch.importEvents({ events: [{ type, email: b, date: new Date('2024-01-02T03:04:05.000Z') }] }),
      1,
    );
    assert.deepEqual(await segmentStats(bento, segment.id), counts(2, 2, 0));

    assert.equal(await bento.removeSubscriber({ email: b }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(2, 1, 1), 'an unsubscribed member stays a member');

    // The same events, counted at most once: a "performed exactly once" segment.
    const once = await createSegment(main, { visitor_event_query: { event: { type, count: { equals: 1 } } } });
    const c = newEmail('tracker-c');
    assert.equal(await bento.track({ type, email: c }), true);
    assert.deepEqual(await segmentStats(bento, once.id), counts(1, 1, 0));
  });

  test('a $purchase sum segment adds up value.amount of trackPurchase events, each unique key once', async () => {
    const sfx = suffix();
    const order = (n) => `order-${sfx}-${n}`;
    const purchase = (n, amount, currency = 'USD') => ({
      unique: { key: order(n) },
      value: { currency, amount },
      cart: { items: [{ product_sku: `SKU-${n}`, product_name: 'Widget', quantity: 1, product_price: amount }] },
    });
    // Only this test's orders count: other tests also track purchases on the site.
    const segment = await createSegment(main, {
      visitor_event_query: {
        event: {
          type: '$purchase',
          where: { 'unique.key': { starts_with: `order-${sfx}-` }, 'value.currency': { equals: 'usd' } },
          sum: { of: 'value.amount', at_least: 10000 },
        },
      },
    });
    const [a, b, c] = [newEmail('buyer-a'), newEmail('buyer-b'), newEmail('buyer-c')];

    assert.equal(await bento.trackPurchase({ email: a, purchaseDetails: purchase(1, 6000) }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(0, 0, 0));
    assert.equal(await bento.trackPurchase({ email: a, purchaseDetails: purchase(2, 5000) }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(1, 1, 0), '6000 + 5000 is at least 10000');

    // A retried purchase (same unique key) is stored once, so it does not add up twice.
    assert.equal(await bento.trackPurchase({ email: b, purchaseDetails: purchase(3, 6000) }), true);
    assert.equal(await bento.trackPurchase({ email: b, purchaseDetails: purchase(3, 6000) }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(1, 1, 0), 'a retried purchase was counted twice');
    // Another currency is not counted.
    assert.equal(await bento.trackPurchase({ email: b, purchaseDetails: purchase(4, 9000, 'EUR') }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(1, 1, 0));
    assert.equal(await bento.trackPurchase({ email: b, purchaseDetails: purchase(5, 4000), date: new Date() }), true);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(2, 2, 0), '6000 + 4000 is exactly 10000: at_least includes it');

    // One big purchase, then unsubscribed.
    assert.equal(await bento.trackPurchase({ email: c, purchaseDetails: purchase(6, 25000) }), true);
    assert.equal(await bento.Commands.unsubscribe({ email: c }), 1);
    assert.deepEqual(await segmentStats(bento, segment.id), counts(3, 2, 1));

    // The sum and count are what match reports for b.
    const explained = await match(main, segment.id, { email: b });
    assert.equal(explained.matched, true);
    assert.equal(explained.explanation.condition, 'event');
    assert.equal(explained.explanation.at, '');
    assert.equal(explained.explanation.facts.count, 2);
    assert.equal(explained.explanation.facts.sum, 10000);
  });

  test('a segment reference combined with {"subscribed": true} follows the referenced segment live', async () => {
    const tag = `ref-${suffix()}`;
    const other = `ref-other-${suffix()}`;
    const base = await createSegment(main, { visitor_event_query: { tag: { has: tag } } });
    const emails = await threeTagged('ref', tag);

    const subscribed = await createSegment(main, {
      visitor_event_query: { all: [{ segment: { member_of: base.id } }, { subscribed: true }] },
    });
    const unsubscribed = await createSegment(main, {
      visitor_event_query: { all: [{ segment: { member_of: Number(base.id) } }, { subscribed: false }] },
    });
    const outside = await createSegment(main, {
      visitor_event_query: { all: [{ tag: { any_of: [tag, other] } }, { segment: { not_member_of: base.id } }] },
    });
    assert.deepEqual(await segmentStats(bento, base.id), counts(3, 2, 1));
    assert.deepEqual(await segmentStats(bento, subscribed.id), counts(2, 2, 0));
    assert.deepEqual(await segmentStats(bento, unsubscribed.id), counts(1, 0, 1));
    assert.deepEqual(await segmentStats(bento, outside.id), counts(0, 0, 0));

    // A change of the audience reaches the referring segments at once.
    const d = newEmail('ref-4');
    assert.equal(await bento.tagSubscriber({ email: d, tagName: tag }), true);
    assert.deepEqual(await segmentStats(bento, subscribed.id), counts(3, 3, 0));

    // So does a change of the referenced segment's query.
    assert.equal(await bento.tagSubscriber({ email: emails[0], tagName: other }), true);
    await main.patch(`/fetch/segments/${base.id}`, { segment: { visitor_event_query: { tag: { has: other } } } });
    assert.deepEqual(await segmentStats(bento, base.id), counts(1, 1, 0));
    assert.deepEqual(await segmentStats(bento, subscribed.id), counts(1, 1, 0));
    assert.deepEqual(await segmentStats(bento, unsubscribed.id), counts(0, 0, 0));
    assert.deepEqual(await segmentStats(bento, outside.id), counts(3, 2, 1), 'the three tagged with the old tag only');
  });

  test('the grammar at work: groups, email domain, typed field values, not', async () => {
    const sfx = suffix();
    const domain = `d${sfx}.example`;
    const at = (local) => `${local}@${domain}`;
    await bento.addSubscriber({ email: at('ada'), fields: { plan: 'Pro', seats: 10 } });
    await bento.addSubscriber({ email: at('bob'), fields: { plan: 'free', seats: '10' } });
    await bento.addSubscriber({ email: at('cy'), fields: { seats: 3 } });
    await bento.updateFields({ email: at('Dee'), fields: { plan: 'team', seats: 60 } });
    await bento.removeSubscriber({ email: at('dee') });
    const inDomain = { email: { domain: domain.toUpperCase() } };
    const stats = async (query) => segmentStats(bento, (await createSegment(main, { visitor_event_query: query })).id);

    assert.deepEqual(await stats(inDomain), counts(4, 3, 1));
    // Type-strict: the text "10" is not the number 10; text compares ignoring case.
    assert.deepEqual(await stats({ all: [inDomain, { field: { key: 'Seats', equals: 10 } }] }), counts(1, 1, 0));
    assert.deepEqual(await stats({ all: [inDomain, { field: { key: 'seats', at_least: 10 } }] }), counts(2, 1, 1));
    assert.deepEqual(await stats({ all: [inDomain, { field: { key: 'plan', equals: 'pro' } }] }), counts(1, 1, 0));
    // not_equals needs the field; not + equals includes those without it.
    assert.deepEqual(await stats({ all: [inDomain, { field: { key: 'plan', not_equals: 'free' } }] }), counts(2, 1, 1));
    assert.deepEqual(await stats({ all: [inDomain, { not: { field: { key: 'plan', equals: 'free' } } }] }), counts(3, 2, 1));
    // Bento's shape: an OR of ANDs.
    assert.deepEqual(
      await stats({
        groups: [
          { filters: [inDomain, { field: { key: 'plan', in: ['team', 'free'] } }, { subscribed: true }] },
          { filters: [inDomain, { email: { starts_with: 'ADA@' } }] },
        ],
      }),
      counts(2, 2, 0),
    );
    assert.deepEqual(await stats({ groups: [] }), counts(0, 0, 0), 'an empty groups list matches nobody');
    assert.deepEqual(await stats({ all: [inDomain, { any: [] }] }), counts(0, 0, 0), 'an empty any is false');
    assert.deepEqual(await stats({ all: [inDomain, { all: [] }] }), counts(4, 3, 1), 'an empty all is true');
    assert.deepEqual(await stats({ all: [inDomain, { created: { within_last: { hours: 1 } } }] }), counts(4, 3, 1));
    assert.deepEqual(await stats({ all: [inDomain, { created: { before: '2000-01-01' } }] }), counts(0, 0, 0));
    // Tag names ignore case and surrounding spaces.
    await bento.tagSubscriber({ email: at('cy'), tagName: `Vip ${sfx}` });
    assert.deepEqual(await stats({ tag: { all_of: [`  VIP ${sfx} `] } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ all: [inDomain, { tag: { none_of: [`vip ${sfx}`] } }] }), counts(3, 2, 1));
  });

  test('events: a when window, where tests on details, and not performed', async () => {
    const sfx = suffix();
    const type = `$visit_${sfx}`;
    const domain = `v${sfx}.example`;
    const [old, recent, never] = ['old', 'recent', 'never'].map((l) => `${l}@${domain}`);
    await bento.track({ type, email: old, date: new Date('2024-03-01T12:00:00.000Z'), details: { page: '/pricing', n: 5 } });
    await bento.track({ type, email: recent, details: { page: '/docs', n: '5' } });
    await bento.track({ type, email: recent, details: { page: '/pricing/team', n: 7 } });
    await bento.track({ type: `${type}_other`, email: never });
    const inDomain = { email: { domain } };
    const stats = async (event) => segmentStats(bento, (await createSegment(main, { visitor_event_query: { all: [inDomain, event] } })).id);

    assert.deepEqual(await stats({ event: { type } }), counts(2, 2, 0));
    assert.deepEqual(await stats({ event: { type, when: { within_last: { days: 30 } } } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ event: { type, when: { between: ['2024-03-01', '2024-03-02'] } } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ event: { type, when: { before: '2024-03-01T12:00:00Z' } } }), counts(0, 0, 0), 'before excludes its instant');
    assert.deepEqual(await stats({ event: { type, last: { older_than: { days: 30 } } } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ event: { type, where: { page: { starts_with: '/PRICING' } } } }), counts(2, 2, 0));
    // Type-strict details: the text "5" is not a number.
    assert.deepEqual(await stats({ event: { type, where: { n: { at_least: 5 } }, count: { equals: 1 } } }), counts(2, 2, 0));
    assert.deepEqual(await stats({ event: { type, where: { n: { equals: '5' } } } }), counts(1, 1, 0));
    // Not performed: count 0 and not both include someone with no such event.
    assert.deepEqual(await stats({ event: { type, count: { equals: 0 } } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ not: { event: { type } } }), counts(1, 1, 0));
    assert.deepEqual(await stats({ event: { type: ` ${type} `, count: { at_most: 1 } } }), counts(2, 2, 0), 'the type ignores surrounding spaces');
  });
});

describe('Stats.getSegmentStats: errors as the SDK raises them', () => {
  test('an unknown or discarded segment raises the SDK error for 404', async () => {
    await assert.rejects(bento.Stats.getSegmentStats('999999999'), segmentNotFound);
    await assert.rejects(bento.Stats.getSegmentStats('no-such-segment'), segmentNotFound);

    const gone = await createSegment(main, { visitor_event_query: { tag: { has: `gone-${suffix()}` } } });
    assert.deepEqual(await segmentStats(bento, gone.id), counts(0, 0, 0));
    await main.delete(`/fetch/segments/${gone.id}`);
    await assert.rejects(bento.Stats.getSegmentStats(gone.id), segmentNotFound);

    const res = await http(MAIN, 'GET', '/stats/segment', { query: { segment_id: gone.id, site_uuid: MAIN.siteUuid } });
    assert.equal(res.status, 404, res.text);
    assert.match(res.contentType, /^application\/json/i);
    assert.deepEqual(res.json, { error: 'Segment not found' });
  });

  test('a segment with a foreign query raises the SDK error for 422, saying it is not evaluable', async () => {
    const foreign = await createSegment(main, { visitor_event_query: { foreign: { groups: [{ filters: [{ type: 'tag', value: 'vip' }] }] } } });
    assertNotEvaluable(await rejects422(bento.Stats.getSegmentStats(foreign.id)));

    const res = await http(MAIN, 'GET', '/stats/segment', { query: { segment_id: foreign.id, site_uuid: MAIN.siteUuid } });
    assert.equal(res.status, 422, res.text);
    assert.match(res.contentType, /^application\/json/i);
  });

  test('no segment id raises the SDK error for 422 on segment_id', async () => {
    // The SDK leaves an undefined parameter out of the query string.
    const errors = await rejects422(bento.Stats.getSegmentStats(undefined));
    assert.deepEqual(errors.map((e) => e.field), ['segment_id']);
  });
});

describe('saving a query checks it against the grammar', () => {
  test('an unknown operator is refused with 422 at its JSON pointer, naming the right one; nothing is saved', async () => {
    const name = `Invalid ${suffix()}`;
    const before = await segmentIds(main);
    const errors = await rejects422(
      main.post('/fetch/segments', { segment: { name, visitor_event_query: { event: { type: 'x', count: { gte: 3 } } } } }),
    );
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].field, 'visitor_event_query/event/count/gte');
    assert.match(errors[0].message, /at_least/);
    assert.deepEqual(await segmentIds(main), before, 'a refused segment must not be saved');

    const res = await http(MAIN, 'POST', '/fetch/segments', {
      body: { site_uuid: MAIN.siteUuid, segment: { name, visitor_event_query: { event: { type: 'x', count: { gte: 3 } } } } },
    });
    assert.equal(res.status, 422, res.text);
    assert.match(res.contentType, /^application\/json/i);
    assert.deepEqual(res.json.errors.map((e) => e.field), ['visitor_event_query/event/count/gte']);
    assert.deepEqual(await segmentIds(main), before);
  });

  test('every problem is listed at once, each at its pointer', async () => {
    const before = await segmentIds(main);
    const errors = await rejects422(
      main.post('/fetch/segments', {
        segment: {
          name: `Invalid ${suffix()}`,
          visitor_event_query: {
            groups: [
              { filters: [{ tag: { hass: 'customer' } }, { event: { type: '$purchase', count: { gte: 2 } } }] },
              { filters: [{ created: { within_last: { days: 0 } } }] },
            ],
          },
        },
      }),
    );
    const fields = errors.map((e) => e.field).sort();
    assert.deepEqual(
      fields,
      [
        'visitor_event_query/groups/0/filters/0/tag/hass',
        'visitor_event_query/groups/0/filters/1/event/count/gte',
        'visitor_event_query/groups/1/filters/0/created/within_last/days',
      ].sort(),
      JSON.stringify(errors),
    );
    assert.deepEqual(await segmentIds(main), before);
  });

  test('a condition with two keys, foreign beside other keys, and an empty condition are refused', async () => {
    for (const [query, field] of [
      [{ tag: { has: 'a' }, subscribed: true }, 'visitor_event_query'],
      [{ foreign: { a: 1 }, tag: { has: 'a' } }, 'visitor_event_query'],
      [{ all: [{ foreign: { a: 1 } }] }, 'visitor_event_query/all/0/foreign'],
      [{ not: {} }, 'visitor_event_query/not'],
    ]) {
      const errors = await rejects422(main.post('/fetch/segments', { segment: { name: `Invalid ${suffix()}`, visitor_event_query: query } }));
      assert.ok(
        errors.some((e) => e.field === field || e.field.startsWith(`${field}/`)),
        `${JSON.stringify(query)}: expected an error at ${field}, got ${JSON.stringify(errors)}`,
      );
    }
  });

  test('changing a segment to an invalid query is refused and keeps the saved one', async () => {
    const query = { all: [{ tag: { has: `kept-${suffix()}` } }, { subscribed: true }] };
    const segment = await createSegment(main, { visitor_event_query: query });
    const errors = await rejects422(
      main.patch(`/fetch/segments/${segment.id}`, { segment: { visitor_event_query: { all: [{ tag: { has: 'x' } }, { subscribed: 'yes' }] } } }),
    );
    assert.deepEqual(errors.map((e) => e.field), ['visitor_event_query/all/1/subscribed']);
    assert.deepEqual((await main.get(`/fetch/segments/${segment.id}`)).data.attributes.visitor_event_query, query);
  });

  test('references to a missing, discarded or foreign segment, and cycles, are refused', async () => {
    const foreign = await createSegment(main, { visitor_event_query: { foreign: { anything: true } } });
    const gone = await createSegment(main, { visitor_event_query: {} });
    await main.delete(`/fetch/segments/${gone.id}`);
    for (const id of ['999999999', gone.id, foreign.id]) {
      const errors = await rejects422(
        main.post('/fetch/segments', {
          segment: { name: `Ref ${suffix()}`, visitor_event_query: { all: [{ subscribed: true }, { segment: { member_of: id } }] } },
        }),
      );
      assert.deepEqual(errors.map((e) => e.field), ['visitor_event_query/all/1/segment/member_of'], `reference to ${id}`);
    }

    const a = await createSegment(main, { visitor_event_query: { tag: { has: `cycle-${suffix()}` } } });
    const b = await createSegment(main, { visitor_event_query: { segment: { member_of: a.id } } });
    const errors = await rejects422(main.patch(`/fetch/segments/${a.id}`, { segment: { visitor_event_query: { segment: { not_member_of: b.id } } } }));
    assert.deepEqual(errors.map((e) => e.field), ['visitor_event_query/segment/not_member_of']);
    const self = await rejects422(main.patch(`/fetch/segments/${a.id}`, { segment: { visitor_event_query: { segment: { member_of: a.id } } } }));
    assert.deepEqual(self.map((e) => e.field), ['visitor_event_query/segment/member_of']);
    assert.deepEqual(await segmentStats(bento, b.id), counts(0, 0, 0), 'the refused changes left both segments evaluable');
  });
});

describe('POST /fetch/segments/:id/match (Corral extension)', () => {
  test('says whether a subscriber matches, by email or uuid, with the outcome of every condition', async () => {
    const tag = `match-${suffix()}`;
    const [a, , c] = await threeTagged('match', tag);
    const outsider = newEmail('match-outsider');
    await bento.Subscribers.createSubscriber({ email: outsider });
    const segment = await createSegment(main, { visitor_event_query: { all: [{ tag: { has: tag } }, { subscribed: true }] } });

    const yes = await match(main, segment.id, { email: a.toUpperCase() });
    assert.equal(yes.matched, true);
    assert.equal(yes.subscriber.attributes.email, a);
    assert.deepEqual(yes.explanation, {
      at: '',
      condition: 'all',
      matched: true,
      children: [
        { at: '/all/0', condition: 'tag', matched: true, facts: { tags: [tag] } },
        { at: '/all/1', condition: 'subscribed', matched: true, facts: { subscribed: true } },
      ],
    });

    const unsubscribed = await match(main, segment.id, { email: c });
    assert.equal(unsubscribed.matched, false);
    assert.deepEqual(
      unsubscribed.explanation.children.map((n) => [n.at, n.condition, n.matched]),
      [
        ['/all/0', 'tag', true],
        ['/all/1', 'subscribed', false],
      ],
    );
    assert.deepEqual(unsubscribed.explanation.children[1].facts, { subscribed: false });

    const byUuid = await bento.Subscribers.getSubscribers({ email: outsider });
    const no = await match(main, segment.id, { uuid: byUuid.attributes.uuid });
    assert.equal(no.matched, false);
    assert.equal(no.subscriber.id, byUuid.id);
    assert.deepEqual(no.explanation.children[0], { at: '/all/0', condition: 'tag', matched: false, facts: { tags: [] } });
  });

  test('explains nested groups, events and not by their JSON pointers', async () => {
    const sfx = suffix();
    const type = `$seen_${sfx}`;
    const email = newEmail('explained');
    await bento.track({ type, email, details: { page: '/pricing' } });
    await bento.track({ type, email, details: { page: '/docs' } });
    const segment = await createSegment(main, {
      visitor_event_query: {
        groups: [
          { filters: [{ event: { type, where: { page: { equals: '/PRICING' } }, count: { at_least: 1 } } }, { not: { tag: { has: `none-${sfx}` } } }] },
          { filters: [{ event: { type, count: { at_least: 5 } } }] },
        ],
      },
    });
    const r = await match(main, segment.id, { email });
    assert.equal(r.matched, true);
    const e = r.explanation;
    assert.deepEqual([e.at, e.condition, e.matched], ['', 'groups', true]);
    assert.deepEqual(e.children.map((g) => [g.at, g.condition, g.matched]), [
      ['/groups/0', 'group', true],
      ['/groups/1', 'group', false],
    ]);
    const [event, not] = e.children[0].children;
    assert.deepEqual([event.at, event.condition, event.matched, event.facts.count], ['/groups/0/filters/0', 'event', true, 1]);
    assert.match(event.facts.first, TIMESTAMP);
    assert.deepEqual([not.at, not.condition, not.matched], ['/groups/0/filters/1', 'not', true]);
    assert.deepEqual(not.children.map((n) => [n.at, n.condition, n.matched]), [['/groups/0/filters/1/not', 'tag', false]]);
    const five = e.children[1].children[0];
    assert.deepEqual([five.at, five.matched, five.facts.count], ['/groups/1/filters/0', false, 2]);
  });

  test('404 for an unknown subscriber or segment, 422 without email or uuid or on a foreign query', async () => {
    const segment = await createSegment(main, { visitor_event_query: { subscribed: true } });
    const email = newEmail('matchable');
    await bento.Subscribers.createSubscriber({ email });

    const noOne = await http(MAIN, 'POST', `/fetch/segments/${segment.id}/match`, { body: { site_uuid: MAIN.siteUuid, email: newEmail('nobody') } });
    assert.equal(noOne.status, 404, noOne.text);
    assert.deepEqual(noOne.json, { error: 'Subscriber not found' });
    await assert.rejects(main.post('/fetch/segments/999999999/match', { email }), segmentNotFound);
    assert.deepEqual((await rejects422(main.post(`/fetch/segments/${segment.id}/match`, {}))).map((e) => e.field), ['email']);

    const foreign = await createSegment(main, { visitor_event_query: { foreign: { subscribed: true } } });
    assertNotEvaluable(await rejects422(main.post(`/fetch/segments/${foreign.id}/match`, { email })));
  });
});

describe('GET /fetch/segments/:id/members (Corral extension)', () => {
  test('pages through exactly the members, in a stable order, by cursor', async () => {
    const tag = `members-${suffix()}`;
    const emails = Array.from({ length: 7 }, (_, i) => newEmail(`member-${i}`));
    assert.equal(await bento.Batch.importSubscribers({ subscribers: emails.map((email) => ({ email, tags: tag })) }), 7);
    await bento.Commands.unsubscribe({ email: emails[3] });
    await bento.Subscribers.createSubscriber({ email: newEmail('not-a-member') });
    const segment = await createSegment(main, { visitor_event_query: { tag: { has: tag } } });

    const paged = await allMembers(main, segment.id, 3);
    assert.equal(paged.count, 7);
    assert.deepEqual([...paged.emails].sort(), [...emails].sort(), 'members must be exactly the tagged subscribers, each once');
    assert.equal(new Set(paged.ids).size, 7);

    // The same order whatever the page size.
    assert.deepEqual((await allMembers(main, segment.id, 2)).ids, paged.ids);
    const whole = await allMembers(main, segment.id, 100);
    assert.deepEqual(whole.ids, paged.ids);
    assert.deepEqual(whole.ids, [...whole.ids].sort((x, y) => Number(x) - Number(y)), 'members come in subscriber order');

    // Live between pages: a member who joins after the first page is on the pages to come.
    const page1 = await main.get(`/fetch/segments/${segment.id}/members`, { limit: 4 });
    const late = newEmail('member-late');
    await bento.tagSubscriber({ email: late, tagName: tag });
    const page2 = await main.get(`/fetch/segments/${segment.id}/members`, { limit: 4, cursor: page1.meta.next_cursor });
    assert.equal(page2.meta.count, 8);
    assert.deepEqual(
      [...page1.data, ...page2.data].map((r) => r.attributes.email.toLowerCase()).sort(),
      [...emails, late].sort(),
    );

    // The records are the visitors resources getSubscribers answers.
    const first = await main.get(`/fetch/segments/${segment.id}/members`, { limit: 1 });
    assert.equal(first.data.length, 1);
    const same = await bento.Subscribers.getSubscribers({ email: first.data[0].attributes.email });
    assert.deepEqual(first.data[0], same);
  });

  test('an empty segment has no members; bad limit or cursor and a foreign query are 422; unknown is 404', async () => {
    const empty = await createSegment(main, { visitor_event_query: { tag: { has: `empty-${suffix()}` } } });
    assert.deepEqual(await main.get(`/fetch/segments/${empty.id}/members`), { data: [], meta: { count: 0, next_cursor: null } });

    assert.deepEqual((await rejects422(main.get(`/fetch/segments/${empty.id}/members`, { limit: 0 }))).map((e) => e.field), ['limit']);
    assert.deepEqual((await rejects422(main.get(`/fetch/segments/${empty.id}/members`, { limit: 1001 }))).map((e) => e.field), ['limit']);
    assert.deepEqual((await rejects422(main.get(`/fetch/segments/${empty.id}/members`, { cursor: 'not-a-cursor' }))).map((e) => e.field), ['cursor']);
    const foreign = await createSegment(main, { visitor_event_query: { foreign: [] } });
    assertNotEvaluable(await rejects422(main.get(`/fetch/segments/${foreign.id}/members`)));
    await assert.rejects(main.get('/fetch/segments/999999999/members'), segmentNotFound);
  });
});

describe('POST /fetch/segments/preview (Corral extension)', () => {
  test('counts and samples what an unsaved query selects, and saves nothing', async () => {
    const tag = `preview-${suffix()}`;
    const emails = await threeTagged('preview', tag);
    const before = await segmentIds(main);

    const body = await main.post('/fetch/segments/preview', { visitor_event_query: { tag: { has: tag } }, sample: 2 });
    const p = body.data;
    assert.deepEqual(
      { user_count: p.user_count, subscriber_count: p.subscriber_count, unsubscriber_count: p.unsubscriber_count },
      counts(3, 2, 1),
    );
    assert.equal(p.sample.length, 2);
    for (const r of p.sample) {
      assert.equal(r.type, 'visitors');
      assert.ok(emails.includes(r.attributes.email), `${r.attributes.email} is not a member`);
    }
    // The sample is the first members in subscriber order, as getSubscribers answers them.
    const records = await Promise.all(emails.map((email) => bento.Subscribers.getSubscribers({ email })));
    records.sort((x, y) => Number(x.id) - Number(y.id));
    assert.deepEqual(p.sample, records.slice(0, 2));

    const none = await main.post('/fetch/segments/preview', { visitor_event_query: { all: [{ tag: { has: tag } }, { subscribed: true }] }, sample: 0 });
    assert.deepEqual(none.data, { ...counts(2, 2, 0), sample: [] });

    const all = await main.post('/fetch/segments/preview', { visitor_event_query: { tag: { has: tag } } });
    assert.deepEqual(all.data.sample.map((r) => r.attributes.email).sort(), [...emails].sort(), 'the default sample holds all three');
    assert.deepEqual(await segmentIds(main), before, 'a preview must not save a segment');
  });

  test('a bad query is refused with 422 at its pointer, as saving it would be; a foreign one is not evaluable', async () => {
    const errors = await rejects422(main.post('/fetch/segments/preview', { visitor_event_query: { event: { type: 'x', count: { gte: 3 } } } }));
    assert.deepEqual(errors.map((e) => e.field), ['visitor_event_query/event/count/gte']);
    assert.match(errors[0].message, /at_least/);

    const res = await http(MAIN, 'POST', '/fetch/segments/preview', {
      body: { site_uuid: MAIN.siteUuid, visitor_event_query: { tag: { has: ['not', 'a', 'name'] } } },
    });
    assert.equal(res.status, 422, res.text);
    assert.match(res.contentType, /^application\/json/i);
    assert.deepEqual(res.json.errors.map((e) => e.field), ['visitor_event_query/tag/has']);

    assert.deepEqual((await rejects422(main.post('/fetch/segments/preview', { visitor_event_query: { segment: { member_of: '999999999' } } }))).map((e) => e.field), [
      'visitor_event_query/segment/member_of',
    ]);
    assertNotEvaluable(await rejects422(main.post('/fetch/segments/preview', { visitor_event_query: { foreign: { tag: 'vip' } } })));
  });
});

describe('site isolation of evaluation', { skip: OTHER ? false : 'CORRAL_OTHER_SITE_UUID is not set' }, () => {
  test("another site's segment is 404 to getSegmentStats, match and members, and counts only its own site", async () => {
    const other = sdk(OTHER);
    const tag = `iso-${suffix()}`;
    const email = newEmail('iso');
    const theirs = await createSegment(other._client, { visitor_event_query: { tag: { has: tag } } });
    // The same tag and email on both sites: each site's segment sees only its own subscriber.
    assert.equal(await other.tagSubscriber({ email, tagName: tag }), true);
    assert.equal(await bento.tagSubscriber({ email, tagName: tag }), true);
    assert.equal(await bento.tagSubscriber({ email: newEmail('iso-main'), tagName: tag }), true);
    assert.deepEqual(await segmentStats(other, theirs.id), counts(1, 1, 0));

    await assert.rejects(bento.Stats.getSegmentStats(theirs.id), segmentNotFound);
    await assert.rejects(main.post(`/fetch/segments/${theirs.id}/match`, { email }), segmentNotFound);
    await assert.rejects(main.get(`/fetch/segments/${theirs.id}/members`), segmentNotFound);

    const mine = await createSegment(main, { visitor_event_query: { tag: { has: tag } } });
    assert.deepEqual(await segmentStats(bento, mine.id), counts(2, 2, 0));
    await assert.rejects(other.Stats.getSegmentStats(mine.id), segmentNotFound);

    // A query cannot refer to another site's segment.
    const errors = await rejects422(main.post('/fetch/segments/preview', { visitor_event_query: { segment: { member_of: theirs.id } } }));
    assert.deepEqual(errors.map((e) => e.field), ['visitor_event_query/segment/member_of']);
  });
});
