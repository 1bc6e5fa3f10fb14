// Acceptance tests for the audience: subscribers, tags, fields, commands, batch imports,
// tracked events and site stats, driven through the Bento Node SDK's own methods
// (`analytics.V1.Subscribers.getSubscribers`, `analytics.V1.track`, ...), never `_client`,
// so every request is exactly what an application using the SDK sends. Every test checks
// the effect of what it sends by reading it back through the SDK, or, for what no SDK
// method reads (a subscriber's events), through Corral's preview over plain HTTP.
//
// Run with scripts/acceptance.sh, which starts the servers and sets:
//   CORRAL_BASE_URL, CORRAL_SITE_UUID, CORRAL_PUBLISHABLE_KEY, CORRAL_SECRET_KEY
//     the main site, on a server without rate limiting (also on /stats/*);
//   CORRAL_OTHER_SITE_UUID, CORRAL_OTHER_PUBLISHABLE_KEY, CORRAL_OTHER_SECRET_KEY (optional)
//     a second site on the same server, for the site-isolation tests;
//   CORRAL_STATS_SITE_UUID, CORRAL_STATS_PUBLISHABLE_KEY, CORRAL_STATS_SECRET_KEY (optional)
//     a third site on the same server that only the exact-count stats test touches.
// Every test uses its own emails, tag names and field keys (random suffix), so tests are
// independent of each other and of sdk.test.mjs; counts on the shared main site are
// compared before and after (exact, since the tests of this file run one after another and
// sdk.test.mjs, run in parallel by `node --test`, creates no subscribers; scripts/acceptance.sh runs
// evaluation.test.mjs, which does, only after this file).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Analytics } from '@bentonow/bento-node-sdk';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the suite with scripts/acceptance.sh`);
  return value;
}

function optionalSite(prefix) {
  if (!process.env[`${prefix}_SITE_UUID`]) return null;
  return {
    baseUrl: required('CORRAL_BASE_URL'),
    siteUuid: required(`${prefix}_SITE_UUID`),
    publishableKey: required(`${prefix}_PUBLISHABLE_KEY`),
    secretKey: required(`${prefix}_SECRET_KEY`),
  };
}

const MAIN = {
  baseUrl: required('CORRAL_BASE_URL'),
  siteUuid: required('CORRAL_SITE_UUID'),
  publishableKey: required('CORRAL_PUBLISHABLE_KEY'),
  secretKey: required('CORRAL_SECRET_KEY'),
};
const OTHER = optionalSite('CORRAL_OTHER');
const STATS = optionalSite('CORRAL_STATS');

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function sdk(server) {
  return new Analytics({
    authentication: { publishableKey: server.publishableKey, secretKey: server.secretKey },
    siteUuid: server.siteUuid,
    clientOptions: { baseUrl: server.baseUrl, timeout: 10000 },
  }).V1;
}

const bento = sdk(MAIN);

function suffix() {
  return randomBytes(5).toString('hex');
}

/** A fresh address no test has used. */
function newEmail(label) {
  return `${label}-${suffix()}@example.com`;
}

/** Checks the wire shape of a subscriber record (`type` `visitors`) and returns its attributes. */
function assertSubscriberShape(record) {
  assert.ok(record && typeof record === 'object', `not a record: ${JSON.stringify(record)}`);
  assert.equal(typeof record.id, 'string', `id must be a JSON string: ${JSON.stringify(record)}`);
  assert.ok(record.id.length > 0);
  assert.equal(record.type, 'visitors');
  const a = record.attributes;
  assert.ok(a && typeof a === 'object', `attributes missing: ${JSON.stringify(record)}`);
  for (const key of ['uuid', 'email', 'fields', 'cached_tag_ids', 'unsubscribed_at']) {
    assert.ok(key in a, `attributes lack ${key}: ${JSON.stringify(a)}`);
  }
  assert.equal(typeof a.uuid, 'string');
  assert.ok(a.uuid.length > 0);
  assert.equal(typeof a.email, 'string');
  assert.ok(a.fields === null || (typeof a.fields === 'object' && !Array.isArray(a.fields)), `fields: ${JSON.stringify(a.fields)}`);
  assert.ok(Array.isArray(a.cached_tag_ids), `cached_tag_ids: ${JSON.stringify(a.cached_tag_ids)}`);
  for (const id of a.cached_tag_ids) assert.equal(typeof id, 'string', `tag ids must be strings: ${JSON.stringify(a.cached_tag_ids)}`);
  if (a.unsubscribed_at !== null) assert.match(a.unsubscribed_at, TIMESTAMP);
  return a;
}

function assertTagShape(record) {
  assert.equal(typeof record.id, 'string', `id must be a JSON string: ${JSON.stringify(record)}`);
  assert.equal(record.type, 'tags');
  const a = record.attributes;
  assert.equal(typeof a.name, 'string');
  assert.match(a.created_at, TIMESTAMP);
  assert.ok(a.discarded_at === null || TIMESTAMP.test(a.discarded_at), `discarded_at: ${a.discarded_at}`);
  assert.equal(typeof a.site_id, 'number', `site_id must be a number: ${JSON.stringify(a)}`);
  return a;
}

function assertFieldShape(record) {
  assert.equal(typeof record.id, 'string', `id must be a JSON string: ${JSON.stringify(record)}`);
  assert.equal(record.type, 'visitors-fields');
  const a = record.attributes;
  assert.equal(typeof a.key, 'string');
  assert.equal(typeof a.name, 'string');
  assert.match(a.created_at, TIMESTAMP);
  assert.ok(a.whitelisted === null || typeof a.whitelisted === 'boolean', `whitelisted: ${a.whitelisted}`);
  return a;
}

/** The subscriber with this email, read through the SDK; fails when there is none. */
async function subscriber(api, email) {
  const record = await api.Subscribers.getSubscribers({ email });
  assert.ok(record, `no subscriber found for ${email}`);
  assertSubscriberShape(record);
  return record;
}

/** A subscriber's fields, `{}` for none (Bento answers `null` then). */
function fieldsOf(record) {
  return record.attributes.fields ?? {};
}

/** The site's tag with this name (ignoring case), or undefined. */
async function tagNamed(api, name) {
  const tags = await api.Tags.getTags();
  assert.ok(Array.isArray(tags), `getTags answered ${JSON.stringify(tags)}`);
  const matches = tags.filter((t) => t.attributes.name?.toLowerCase() === name.toLowerCase());
  assert.ok(matches.length <= 1, `tag names must be unique ignoring case: ${JSON.stringify(matches)}`);
  return matches[0];
}

/** The tag names a subscriber has, lowercased and sorted. */
async function tagNamesOf(api, record) {
  const tags = await api.Tags.getTags();
  const byId = new Map(tags.map((t) => [t.id, t.attributes.name]));
  return record.attributes.cached_tag_ids
    .map((id) => {
      assert.ok(byId.has(id), `cached tag id ${id} is not among the site's tags`);
      return byId.get(id).toLowerCase();
    })
    .sort();
}

/**
 * How many subscribers a query selects, by `POST /fetch/segments/preview` (a Corral extension,
 * which no SDK method calls: plain HTTP with the SDK's credentials). Saves nothing.
 */
async function previewCount(query) {
  const url = new URL(`${MAIN.baseUrl}/fetch/segments/preview`);
  url.searchParams.set('site_uuid', MAIN.siteUuid);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      Authorization: 'Basic ' + Buffer.from(`${MAIN.publishableKey}:${MAIN.secretKey}`).toString('base64'),
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ visitor_event_query: query, sample: 0 }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text).data.user_count;
}

async function siteStats(api) {
  const stats = await api.Stats.getSiteStats();
  assert.deepEqual(Object.keys(stats).sort(), ['subscriber_count', 'unsubscriber_count', 'user_count'], `stats answered ${JSON.stringify(stats)}`);
  for (const v of Object.values(stats)) assert.ok(Number.isInteger(v) && v >= 0, `counts must be integers: ${JSON.stringify(stats)}`);
  assert.equal(stats.user_count, stats.subscriber_count + stats.unsubscriber_count, `counts do not add up: ${JSON.stringify(stats)}`);
  return stats;
}

describe('Subscribers', () => {
  test('createSubscriber creates a subscribed subscriber with no tags and answers it', async () => {
    const email = newEmail('created');
    assert.equal(await bento.Subscribers.getSubscribers({ email }), null, 'the address must be new');
    const created = await bento.Subscribers.createSubscriber({ email });
    const a = assertSubscriberShape(created);
    assert.equal(a.email, email);
    assert.equal(a.unsubscribed_at, null);
    assert.deepEqual(a.cached_tag_ids, []);
    assert.deepEqual(fieldsOf(created), {});

    const found = await subscriber(bento, email);
    assert.equal(found.id, created.id);
    assert.equal(found.attributes.uuid, a.uuid);
  });

  test('createSubscriber for a known email answers the same subscriber, not a second one', async () => {
    const email = newEmail('twice');
    const first = await bento.Subscribers.createSubscriber({ email });
    await bento.Commands.addTag({ email, tagName: `kept-${suffix()}` });
    const second = await bento.Subscribers.createSubscriber({ email });
    assertSubscriberShape(second);
    assert.equal(second.id, first.id);
    assert.equal(second.attributes.uuid, first.attributes.uuid);
    assert.equal(second.attributes.cached_tag_ids.length, 1, 'creating again must not reset the subscriber');
  });

  test('getSubscribers finds a subscriber by email (ignoring case) and by uuid', async () => {
    const email = newEmail('Lookup');
    const created = await bento.Subscribers.createSubscriber({ email });

    const byEmail = await bento.Subscribers.getSubscribers({ email });
    assertSubscriberShape(byEmail);
    assert.equal(byEmail.id, created.id);
    assert.equal(byEmail.attributes.email.toLowerCase(), email.toLowerCase());

    const byUpper = await bento.Subscribers.getSubscribers({ email: email.toUpperCase() });
    assert.ok(byUpper, 'email lookup must ignore case');
    assert.equal(byUpper.id, created.id);

    const byUuid = await bento.Subscribers.getSubscribers({ uuid: created.attributes.uuid });
    assertSubscriberShape(byUuid);
    assert.equal(byUuid.id, created.id);
    assert.equal(byUuid.attributes.email.toLowerCase(), email.toLowerCase());
  });

  test('an address with "+", non-ASCII letters and capitals round-trips through the query string', async () => {
    const email = `Zo\u00eb+News-${suffix()}@Example.com`;
    assert.equal(await bento.addSubscriber({ email, fields: { plus: true } }), true);
    const found = await bento.Subscribers.getSubscribers({ email });
    assert.ok(found, `not found by ${email}`);
    assert.equal(found.attributes.email.toLowerCase(), email.toLowerCase());
    assert.deepEqual(fieldsOf(found), { plus: true });
    const lower = await bento.Subscribers.getSubscribers({ email: email.toLowerCase() });
    assert.equal(lower?.id, found.id, 'lookup must ignore case');
    // An event for the address in other case reaches the same subscriber.
    assert.equal(await bento.updateFields({ email: email.toUpperCase(), fields: { upper: 1 } }), true);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { plus: true, upper: 1 });
  });

  test('getSubscribers answers null for an unknown email or uuid', async () => {
    assert.equal(await bento.Subscribers.getSubscribers({ email: newEmail('nobody') }), null);
    assert.equal(await bento.Subscribers.getSubscribers({ uuid: randomBytes(16).toString('hex') }), null);
  });
});

describe('Tags', () => {
  test('createTag answers the tag, getTags lists it, and the same name in other case is the same tag', async () => {
    const name = `Lead ${suffix()}`;
    const created = await bento.Tags.createTag({ name });
    const a = assertTagShape(created);
    assert.equal(a.name, name);
    assert.equal(a.discarded_at, null);

    const again = await bento.Tags.createTag({ name: name.toUpperCase() });
    assertTagShape(again);
    assert.equal(again.id, created.id, 'a name equal ignoring case must answer the existing tag');
    assert.equal(again.attributes.name, name, 'the first spelling is kept');

    const tags = await bento.Tags.getTags();
    assert.ok(Array.isArray(tags));
    for (const t of tags) assertTagShape(t);
    const listed = tags.filter((t) => t.attributes.name.toLowerCase() === name.toLowerCase());
    assert.deepEqual(listed.map((t) => t.id), [created.id]);
    assert.equal(listed[0].attributes.site_id, a.site_id);
  });

  test('deleteTag takes the tag off every subscriber and off getTags; deleting it again is a 404', async () => {
    const name = `Doomed ${suffix()}`;
    const keep = `Kept ${suffix()}`;
    const [a, b] = [newEmail('untagged-a'), newEmail('untagged-b')];
    assert.equal(await bento.Commands.addTag({ email: a, tagName: name }), 1);
    assert.equal(await bento.Commands.addTag({ email: a, tagName: keep }), 1);
    assert.equal(await bento.Commands.addTag({ email: b, tagName: name }), 1);
    const doomed = await tagNamed(bento, name);
    const kept = await tagNamed(bento, keep);

    // As the SDK sends it: DELETE with {"tag":{"name"},"site_uuid"} in the body.
    assert.deepEqual(await bento.Tags.deleteTag(doomed.id, { name: name.toUpperCase() }), { message: 'Tag deleted' });

    assert.equal(await tagNamed(bento, name), undefined, 'a deleted tag is still listed');
    assert.deepEqual((await subscriber(bento, a)).attributes.cached_tag_ids, [kept.id]);
    assert.deepEqual((await subscriber(bento, b)).attributes.cached_tag_ids, []);
    await assert.rejects(bento.Tags.deleteTag(doomed.id, { name }), (err) => {
      assert.equal(err.message, '[404] - {"error":"Tag not found"}');
      return true;
    });
    // Another tag's name guards against deleting the wrong one: nothing is deleted.
    await assert.rejects(bento.Tags.deleteTag(kept.id, { name }), (err) => {
      assert.equal(err.message, '[404] - {"error":"Tag not found"}');
      return true;
    });
    assert.ok(await tagNamed(bento, keep), 'a refused delete deleted the tag');
  });
});

describe('Fields', () => {
  test('createField normalises the key, getFields lists it, and an equivalent key is the same field', async () => {
    const sfx = suffix();
    const created = await bento.Fields.createField({ key: `First Name ${sfx}` });
    const a = assertFieldShape(created);
    assert.equal(a.key, `first_name_${sfx}`);

    const again = await bento.Fields.createField({ key: `first-name.${sfx}` });
    assertFieldShape(again);
    assert.equal(again.id, created.id, 'keys with the same normal form are one field');
    assert.equal(again.attributes.key, `first_name_${sfx}`);

    const fields = await bento.Fields.getFields();
    assert.ok(Array.isArray(fields));
    for (const f of fields) assertFieldShape(f);
    const listed = fields.filter((f) => f.attributes.key === `first_name_${sfx}`);
    assert.deepEqual(listed.map((f) => f.id), [created.id]);
  });

  test('a field set on a subscriber is listed by getFields under its normalised key', async () => {
    const sfx = suffix();
    const email = newEmail('field-lister');
    assert.equal(await bento.updateFields({ email, fields: { [`Company Size ${sfx}`]: 50 } }), true);
    const keys = (await bento.Fields.getFields()).map((f) => f.attributes.key);
    assert.ok(keys.includes(`company_size_${sfx}`), `company_size_${sfx} not in ${JSON.stringify(keys)}`);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { [`company_size_${sfx}`]: 50 });
  });
});

describe('Commands', () => {
  test('addTag adds the tag to the subscriber (creating the tag), removeTag takes it off', async () => {
    const email = newEmail('tagged');
    await bento.Subscribers.createSubscriber({ email });
    const tagName = `Customer ${suffix()}`;
    const keep = `Keep ${suffix()}`;

    assert.equal(await bento.Commands.addTag({ email, tagName }), 1);
    assert.equal(await bento.Commands.addTag({ email, tagName: keep }), 1);
    const tag = await tagNamed(bento, tagName);
    assert.ok(tag, 'addTag must create the tag');
    let s = await subscriber(bento, email);
    assert.ok(s.attributes.cached_tag_ids.includes(tag.id), `tag ${tag.id} not in ${JSON.stringify(s.attributes.cached_tag_ids)}`);
    assert.deepEqual(await tagNamesOf(bento, s), [tagName.toLowerCase(), keep.toLowerCase()].sort());

    // Adding it again (in other case) changes nothing.
    assert.equal(await bento.Commands.addTag({ email, tagName: tagName.toUpperCase() }), 1);
    s = await subscriber(bento, email);
    assert.equal(s.attributes.cached_tag_ids.filter((id) => id === tag.id).length, 1);
    assert.equal(s.attributes.cached_tag_ids.length, 2);

    assert.equal(await bento.Commands.removeTag({ email, tagName }), 1);
    s = await subscriber(bento, email);
    assert.ok(!s.attributes.cached_tag_ids.includes(tag.id), 'removeTag must take the tag off');
    assert.deepEqual(await tagNamesOf(bento, s), [keep.toLowerCase()]);
    assert.ok(await tagNamed(bento, tagName), 'removing a tag from a subscriber must not delete the tag');
  });

  test('addField sets a field keeping its JSON type, removeField removes it', async () => {
    const email = newEmail('fielded');
    await bento.Subscribers.createSubscriber({ email });

    assert.equal(await bento.Commands.addField({ email, field: { key: 'plan', value: 'gold' } }), 1);
    assert.equal(await bento.Commands.addField({ email, field: { key: 'seats', value: 12 } }), 1);
    assert.equal(await bento.Commands.addField({ email, field: { key: 'beta', value: true } }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { plan: 'gold', seats: 12, beta: true });

    assert.equal(await bento.Commands.addField({ email, field: { key: 'plan', value: 'platinum' } }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { plan: 'platinum', seats: 12, beta: true });

    assert.equal(await bento.Commands.removeField({ email, fieldName: 'seats' }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { plan: 'platinum', beta: true });
    assert.equal(await bento.Commands.removeField({ email, fieldName: 'plan' }), 1);
    assert.equal(await bento.Commands.removeField({ email, fieldName: 'beta' }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), {});

    // Keys as an application writes them are normalised the same way both ways.
    assert.equal(await bento.Commands.addField({ email, field: { key: 'Favourite Colour', value: 'blue' } }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { favourite_colour: 'blue' });
    assert.equal(await bento.Commands.removeField({ email, fieldName: 'Favourite Colour' }), 1);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), {});
  });

  test('unsubscribe sets unsubscribed_at, subscribe clears it', async () => {
    const email = newEmail('toggle');
    await bento.Subscribers.createSubscriber({ email });
    const before = Date.now();

    assert.equal(await bento.Commands.unsubscribe({ email }), 1);
    const out = await subscriber(bento, email);
    assert.match(out.attributes.unsubscribed_at ?? '', TIMESTAMP, 'unsubscribe must set unsubscribed_at');
    const at = Date.parse(out.attributes.unsubscribed_at);
    assert.ok(at >= before - 5000 && at <= Date.now() + 5000, `unsubscribed_at ${out.attributes.unsubscribed_at} is not now`);

    assert.equal(await bento.Commands.subscribe({ email }), 1);
    const back = await subscriber(bento, email);
    assert.equal(back.attributes.unsubscribed_at, null, 'subscribe must clear unsubscribed_at');
    assert.equal(back.attributes.uuid, out.attributes.uuid);
  });

  test('changeEmail moves the subscriber to the new address, keeping uuid, fields and tags', async () => {
    const oldEmail = newEmail('old');
    const newAddress = newEmail('new');
    const tagName = `Moved ${suffix()}`;
    const created = await bento.Subscribers.createSubscriber({ email: oldEmail });
    await bento.Commands.addTag({ email: oldEmail, tagName });
    await bento.Commands.addField({ email: oldEmail, field: { key: 'city', value: 'Lyon' } });
    const before = await subscriber(bento, oldEmail);

    assert.equal(await bento.Commands.changeEmail({ oldEmail, newEmail: newAddress }), 1);
    assert.equal(await bento.Subscribers.getSubscribers({ email: oldEmail }), null, 'the old address must be free');
    const after = await subscriber(bento, newAddress);
    assert.equal(after.id, created.id);
    assert.equal(after.attributes.uuid, created.attributes.uuid);
    assert.equal(after.attributes.email, newAddress);
    assert.deepEqual(after.attributes.fields, before.attributes.fields);
    assert.deepEqual(after.attributes.cached_tag_ids, before.attributes.cached_tag_ids);

    const byUuid = await bento.Subscribers.getSubscribers({ uuid: created.attributes.uuid });
    assert.equal(byUuid.attributes.email, newAddress);
  });

  test('changeEmail to the same address in other case keeps the subscriber', async () => {
    const oldEmail = newEmail('recase');
    const created = await bento.Subscribers.createSubscriber({ email: oldEmail });
    const upper = oldEmail.toUpperCase();
    assert.equal(await bento.Commands.changeEmail({ oldEmail, newEmail: upper }), 1);
    const after = await subscriber(bento, upper);
    assert.equal(after.id, created.id);
    assert.equal(after.attributes.uuid, created.attributes.uuid);
  });

  test('changeEmail to an address another subscriber has is refused and changes neither', async () => {
    const a = newEmail('holder-a');
    const b = newEmail('holder-b');
    const sa = await bento.Subscribers.createSubscriber({ email: a });
    const sb = await bento.Subscribers.createSubscriber({ email: b });
    assert.equal(await bento.Commands.changeEmail({ oldEmail: a, newEmail: b }), 0);
    assert.equal((await subscriber(bento, a)).id, sa.id);
    assert.equal((await subscriber(bento, b)).id, sb.id);
  });

  test('changeEmail for an unknown address is refused and creates nobody', async () => {
    const oldEmail = newEmail('ghost');
    const newAddress = newEmail('ghost-new');
    assert.equal(await bento.Commands.changeEmail({ oldEmail, newEmail: newAddress }), 0);
    assert.equal(await bento.Subscribers.getSubscribers({ email: oldEmail }), null);
    assert.equal(await bento.Subscribers.getSubscribers({ email: newAddress }), null);
  });
});

describe('Batch', () => {
  test('importSubscribers creates subscribers with fields and comma-separated tags', async () => {
    const sfx = suffix();
    const a = newEmail('import-a');
    const b = newEmail('import-b');
    const lead = `lead-${sfx}`;
    const mql = `MQL-${sfx}`;
    const n = await bento.Batch.importSubscribers({
      subscribers: [
        { email: a, first_name: 'Ada', seats: 3, tags: `${lead}, ${mql}` },
        { email: b, first_name: 'Bob', tags: lead },
      ],
    });
    assert.equal(n, 2);

    const sa = await subscriber(bento, a);
    assert.deepEqual(fieldsOf(sa), { first_name: 'Ada', seats: 3 });
    assert.deepEqual(await tagNamesOf(bento, sa), [lead, mql.toLowerCase()].sort());
    assert.equal(sa.attributes.unsubscribed_at, null);
    const sb = await subscriber(bento, b);
    assert.deepEqual(fieldsOf(sb), { first_name: 'Bob' });
    assert.deepEqual(await tagNamesOf(bento, sb), [lead]);
    assert.notEqual(sa.attributes.uuid, sb.attributes.uuid);
  });

  test('importSubscribers merges into a known subscriber: remove_tags, null removes a field', async () => {
    const sfx = suffix();
    const email = newEmail('reimport');
    const cold = `cold-${sfx}`;
    const hot = `hot-${sfx}`;
    assert.equal(await bento.Batch.importSubscribers({ subscribers: [{ email, plan: 'free', company: 'Acme', tags: cold }] }), 1);
    const first = await subscriber(bento, email);

    assert.equal(
      await bento.Batch.importSubscribers({ subscribers: [{ email, plan: 'pro', company: null, tags: hot, remove_tags: cold }] }),
      1,
    );
    const second = await subscriber(bento, email);
    assert.equal(second.id, first.id);
    assert.equal(second.attributes.uuid, first.attributes.uuid);
    assert.deepEqual(fieldsOf(second), { plan: 'pro' });
    assert.deepEqual(await tagNamesOf(bento, second), [hot]);
  });

  test('importEvents applies each event and counts them; a refused event leaves no trace', async () => {
    const sfx = suffix();
    const email = newEmail('events');
    const broken = newEmail('broken');
    const tag = `evt-${sfx}`;
    const n = await bento.Batch.importEvents({
      events: [
        { type: '$subscribe', email, fields: { source: 'landing' } },
        { type: '$tag', email, details: { tag } },
        { type: '$pageview', email, details: { url: '/pricing' }, fields: { last_page: '/pricing' } },
        // No details.tag: refused, and must not create its subscriber.
        { type: '$tag', email: broken },
      ],
    });
    assert.equal(n, 3, 'the three valid events count, the refused one does not');

    const s = await subscriber(bento, email);
    assert.deepEqual(fieldsOf(s), { source: 'landing', last_page: '/pricing' });
    assert.deepEqual(await tagNamesOf(bento, s), [tag]);
    assert.equal(s.attributes.unsubscribed_at, null);
    assert.equal(await bento.Subscribers.getSubscribers({ email: broken }), null, 'a refused event must not create its subscriber');
  });

  test('importEvents: $remove_tag takes a tag off, $unsubscribe unsubscribes', async () => {
    const email = newEmail('events-off');
    const tag = `gone-${suffix()}`;
    assert.equal(await bento.Batch.importEvents({ events: [{ type: '$tag', email, details: { tag } }] }), 1);
    assert.deepEqual(await tagNamesOf(bento, await subscriber(bento, email)), [tag]);

    const n = await bento.Batch.importEvents({
      events: [
        { type: '$remove_tag', email, details: { tag } },
        { type: '$unsubscribe', email },
      ],
    });
    assert.equal(n, 2);
    const s = await subscriber(bento, email);
    assert.deepEqual(s.attributes.cached_tag_ids, []);
    assert.match(s.attributes.unsubscribed_at ?? '', TIMESTAMP);
  });
});

describe('Batch limits and concurrency', () => {
  test('importEvents takes the SDK\'s largest batch, 1,000 events, and the SDK refuses 1,001 before sending', async () => {
    const sfx = suffix();
    const events = Array.from({ length: 1000 }, (_, i) => ({
      type: '$pageview',
      email: `bulk-${i % 100}-${sfx}@example.com`,
      details: { url: `/page/${i}`, referrer: 'https://www.example.com/some/where?utm_source=newsletter' },
      fields: { last_page: i },
    }));
    assert.equal(await bento.Batch.importEvents({ events }), 1000);
    const s = await subscriber(bento, `bulk-7-${sfx}@example.com`);
    assert.deepEqual(fieldsOf(s), { last_page: 907 }, 'the last event of a subscriber wins');
    await assert.rejects(bento.Batch.importEvents({ events: [...events, events[0]] }), { name: 'TooManyEventsError' });
  });

  test('1,000 plain events over 250 new addresses, in mixed case and mixed with special events, make 250 subscribers', async () => {
    const sfx = suffix();
    const address = (i) => `plain-${i}-${sfx}@example.com`;
    const cases = [(e) => e, (e) => e.toUpperCase(), (e) => e[0].toUpperCase() + e.slice(1), (e) => e];
    const events = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 250; i++) {
        events.push({ type: '$pageview', email: cases[round](address(i)), details: { round, i } });
      }
    }
    // Special events in the middle of the plain ones, for addresses the plain ones created.
    events.splice(300, 1, { type: '$tag', email: address(3), details: { tag: `mid-${sfx}` } });
    events.splice(600, 1, { type: '$unsubscribe', email: address(4) });
    const before = await siteStats(bento);
    assert.equal(await bento.Batch.importEvents({ events }), 1000);
    const after = await siteStats(bento);
    assert.equal(after.user_count - before.user_count, 250, `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    assert.equal(after.unsubscriber_count - before.unsubscriber_count, 1);

    const s3 = await subscriber(bento, address(3).toUpperCase());
    assert.deepEqual(await tagNamesOf(bento, s3), [`mid-${sfx}`]);
    const s4 = await subscriber(bento, address(4));
    assert.match(s4.attributes.unsubscribed_at ?? '', TIMESTAMP, 'plain events after $unsubscribe must not resubscribe');
    const s249 = await subscriber(bento, address(249));
    assert.equal(s249.attributes.unsubscribed_at, null);
  });

  test('the batch answer carries Bento\'s results and failed counts (plain HTTP, as the SDK only returns results)', async () => {
    const email = newEmail('raw-batch');
    const url = `${MAIN.baseUrl}/batch/events`;
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        Authorization: 'Basic ' + Buffer.from(`${MAIN.publishableKey}:${MAIN.secretKey}`).toString('base64'),
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({
        site_uuid: MAIN.siteUuid,
        events: [{ type: '$pageview', email }, { type: '$pageview', email: 'not-an-email' }],
      }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/i);
    const body = await res.json();
    assert.equal(body.results, 1, JSON.stringify(body));
    assert.equal(body.failed, 1, JSON.stringify(body));
  });

  test('importSubscribers takes 1,000 subscribers', async () => {
    const sfx = suffix();
    const subscribers = Array.from({ length: 1000 }, (_, i) => ({
      email: `many-${i}-${sfx}@example.com`,
      first_name: `Person ${i}`,
      tags: `bulk-${sfx}`,
    }));
    assert.equal(await bento.Batch.importSubscribers({ subscribers }), 1000);
    const s = await subscriber(bento, `many-999-${sfx}@example.com`);
    assert.deepEqual(fieldsOf(s), { first_name: 'Person 999' });
    assert.deepEqual(await tagNamesOf(bento, s), [`bulk-${sfx}`]);
  });

  test('importSubscribers leaves a subscriber over a cap out of results and stores nothing of it', async () => {
    const sfx = suffix();
    const tooMany = { email: newEmail('too-many-fields') };
    for (let i = 0; i < 201; i++) tooMany[`f${i}_${sfx}`] = i;
    const fine = { email: newEmail('within-caps'), plan: 'pro' };
    const before = await siteStats(bento);
    assert.equal(await bento.Batch.importSubscribers({ subscribers: [tooMany, fine] }), 1);
    assert.equal(await bento.Subscribers.getSubscribers({ email: tooMany.email }), null);
    assert.deepEqual(fieldsOf(await subscriber(bento, fine.email)), { plan: 'pro' });
    const keys = (await bento.Fields.getFields()).map((f) => f.attributes.key);
    assert.ok(!keys.includes(`f0_${sfx}`), 'a refused item registers no field key');
    const after = await siteStats(bento);
    assert.equal(after.user_count - before.user_count, 1);
  });

  test('the same subscriber, tag and purchase sent in parallel are stored once', async () => {
    const sfx = suffix();
    const email = newEmail('parallel');
    const tagName = `Parallel ${sfx}`;
    const purchaseDetails = { unique: { key: `order-${sfx}` }, value: { currency: 'USD', amount: 1 } };
    const before = await siteStats(bento);
    const answers = await Promise.all([
      ...Array.from({ length: 8 }, () => bento.addSubscriber({ email })),
      ...Array.from({ length: 8 }, () => bento.tagSubscriber({ email, tagName })),
      ...Array.from({ length: 8 }, () => bento.trackPurchase({ email, purchaseDetails })),
    ]);
    assert.deepEqual(answers, Array(24).fill(true));
    const tags = await Promise.all(Array.from({ length: 8 }, (_, i) => bento.Tags.createTag({ name: i % 2 ? tagName : tagName.toLowerCase() })));
    assert.equal(new Set(tags.map((t) => t.id)).size, 1, `parallel createTag made several tags: ${JSON.stringify(tags.map((t) => t.id))}`);
    const s = await subscriber(bento, email);
    assert.deepEqual(s.attributes.cached_tag_ids, [tags[0].id]);
    assert.equal((await siteStats(bento)).user_count - before.user_count, 1, 'one subscriber, not several');
    // The subscriber's purchases, counted by Corral's preview (no SDK method reads events).
    const purchases = (count) => ({ all: [{ email: { equals: email } }, { event: { type: '$purchase', count } }] });
    assert.equal(await previewCount(purchases({ equals: 1 })), 1, 'the purchase was not stored exactly once');
    assert.equal(await previewCount(purchases({ at_least: 2 })), 0, 'the purchase was stored more than once');
  });
});

describe('top-level tracking methods', () => {
  test('track records a custom event, creating the subscriber and merging its fields', async () => {
    const email = newEmail('tracked');
    assert.equal(await bento.Subscribers.getSubscribers({ email }), null);
    const ok = await bento.track({
      type: '$completed_onboarding',
      email,
      details: { step: 5, nested: { ok: true } },
      fields: { onboarded: true, plan: 'trial' },
    });
    assert.equal(ok, true);
    const s = await subscriber(bento, email);
    assert.equal(s.attributes.email, email);
    assert.deepEqual(fieldsOf(s), { onboarded: true, plan: 'trial' });

    const dated = await bento.track({
      type: '$login',
      email,
      date: new Date('2024-08-06T05:44:04.444Z'),
      fields: { plan: 'paid' },
    });
    assert.equal(dated, true);
    assert.deepEqual(fieldsOf(await subscriber(bento, email)), { onboarded: true, plan: 'paid' });
  });

  test('trackPurchase is stored once per unique key: a retry is acknowledged and changes nothing', async () => {
    const sfx = suffix();
    const email = newEmail('buyer');
    const purchaseDetails = {
      unique: { key: `order-${sfx}` },
      value: { currency: 'USD', amount: 12050 },
      cart: {
        abandoned_checkout_url: 'https://shop.example.com/cart/1',
        items: [{ product_sku: 'SKU-1', product_name: 'Widget', quantity: 2, product_price: 6025 }],
      },
    };
    assert.equal(await bento.trackPurchase({ email, purchaseDetails }), true);
    const first = await subscriber(bento, email);
    assert.equal(first.attributes.unsubscribed_at, null);

    // The SDK retries a purchase the same way: it must still be reported as a result.
    assert.equal(await bento.trackPurchase({ email, purchaseDetails }), true, 'a retried purchase must still count as a result');
    assert.deepEqual(await subscriber(bento, email), first, 'a retried purchase must change nothing');

    // In one batch: the retry and a new purchase both count.
    const n = await bento.Batch.importEvents({
      events: [
        { type: '$purchase', email, details: purchaseDetails },
        { type: '$purchase', email, details: { ...purchaseDetails, unique: { key: `order-${sfx}-2` } } },
        { type: '$purchase', email, details: { ...purchaseDetails, unique: { key: `order-${sfx}-2` } } },
      ],
    });
    assert.equal(n, 3);

    // The SDK's types allow a numeric unique key.
    const numeric = Number.parseInt(sfx.slice(0, 8), 16);
    const numericDetails = { unique: { key: numeric }, value: { currency: 'eur', amount: 10 } };
    assert.equal(await bento.trackPurchase({ email, purchaseDetails: numericDetails, date: new Date() }), true);
    assert.equal(await bento.trackPurchase({ email, purchaseDetails: numericDetails }), true);
  });

  test('tagSubscriber adds the tag (creating subscriber and tag), matching an existing tag ignoring case', async () => {
    const email = newEmail('tag-me');
    const name = `Vip ${suffix()}`;
    const tag = await bento.Tags.createTag({ name });
    assert.equal(await bento.tagSubscriber({ email, tagName: name.toUpperCase() }), true);
    const s = await subscriber(bento, email);
    assert.deepEqual(s.attributes.cached_tag_ids, [tag.id]);

    const other = `Other ${suffix()}`;
    assert.equal(await bento.tagSubscriber({ email, tagName: other, date: new Date() }), true);
    const created = await tagNamed(bento, other);
    assert.ok(created, 'tagSubscriber must create an unknown tag');
    assert.deepEqual((await subscriber(bento, email)).attributes.cached_tag_ids.sort(), [tag.id, created.id].sort());
  });

  test('addSubscriber subscribes with fields, and subscribes again after an unsubscribe', async () => {
    const email = newEmail('added');
    assert.equal(await bento.addSubscriber({ email, fields: { first_name: 'Grace', score: 9.5 } }), true);
    let s = await subscriber(bento, email);
    assert.equal(s.attributes.unsubscribed_at, null);
    assert.deepEqual(fieldsOf(s), { first_name: 'Grace', score: 9.5 });

    assert.equal(await bento.removeSubscriber({ email }), true);
    assert.notEqual((await subscriber(bento, email)).attributes.unsubscribed_at, null);

    assert.equal(await bento.addSubscriber({ email }), true);
    s = await subscriber(bento, email);
    assert.equal(s.attributes.unsubscribed_at, null, 'addSubscriber must resubscribe');
    assert.deepEqual(fieldsOf(s), { first_name: 'Grace', score: 9.5 }, 'addSubscriber without fields must keep them');
  });

  test('removeSubscriber sets unsubscribed_at and getSiteStats counts one more unsubscriber', async () => {
    const email = newEmail('leaver');
    const before = await siteStats(bento);
    await bento.addSubscriber({ email });
    assert.equal(await bento.removeSubscriber({ email }), true);
    const s = await subscriber(bento, email);
    assert.match(s.attributes.unsubscribed_at ?? '', TIMESTAMP, 'removeSubscriber must set unsubscribed_at');
    const after = await siteStats(bento);
    assert.deepEqual(
      {
        users: after.user_count - before.user_count,
        subscribers: after.subscriber_count - before.subscriber_count,
        unsubscribers: after.unsubscriber_count - before.unsubscriber_count,
      },
      { users: 1, subscribers: 0, unsubscribers: 1 },
      `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`,
    );
  });

  test('only a subscribe resubscribes: tags, fields and other events leave an unsubscribed subscriber unsubscribed', async () => {
    const email = newEmail('stays-out');
    await bento.addSubscriber({ email });
    await bento.removeSubscriber({ email });
    const out = (await subscriber(bento, email)).attributes.unsubscribed_at;
    assert.match(out ?? '', TIMESTAMP);

    await bento.tagSubscriber({ email, tagName: `After ${suffix()}` });
    await bento.updateFields({ email, fields: { plan: 'pro' } });
    await bento.track({ type: '$login', email, fields: { seen: true } });
    await bento.trackPurchase({ email, purchaseDetails: { unique: { key: `order-${suffix()}` }, value: { currency: 'USD', amount: 5 } } });
    await bento.Commands.addTag({ email, tagName: `Cmd ${suffix()}` });
    await bento.Batch.importSubscribers({ subscribers: [{ email, company: 'Acme' }] });
    await bento.removeSubscriber({ email }); // a second unsubscribe keeps the first time
    const s = await subscriber(bento, email);
    assert.equal(s.attributes.unsubscribed_at, out);
    assert.deepEqual(fieldsOf(s), { plan: 'pro', seen: true, company: 'Acme' });
    assert.equal(s.attributes.cached_tag_ids.length, 2);
  });

  test('removeSubscriber with a date unsubscribes as of that date', async () => {
    const email = newEmail('leaver-dated');
    await bento.Subscribers.createSubscriber({ email });
    const date = new Date('2025-01-02T03:04:05.678Z');
    assert.equal(await bento.removeSubscriber({ email, date }), true);
    assert.equal((await subscriber(bento, email)).attributes.unsubscribed_at, date.toISOString());
  });

  test('updateFields merges fields (keys normalised), keeping the others', async () => {
    const email = newEmail('updated');
    await bento.addSubscriber({ email, fields: { plan: 'free', city: 'Oslo' } });
    assert.equal(await bento.updateFields({ email, fields: { plan: 'pro', 'Last Name': 'Hopper' } }), true);
    const s = await subscriber(bento, email);
    assert.deepEqual(fieldsOf(s), { plan: 'pro', city: 'Oslo', last_name: 'Hopper' });
    assert.equal(s.attributes.unsubscribed_at, null);
  });

  test('upsertSubscriber creates, then updates, and answers the subscriber as stored', async () => {
    const sfx = suffix();
    const email = newEmail('upserted');
    const lead = `lead-${sfx}`;
    const mql = `mql-${sfx}`;

    const created = await bento.upsertSubscriber({ email, fields: { company: 'Acme', seats: 5 }, tags: `${lead},${mql}` });
    assertSubscriberShape(created);
    assert.equal(created.attributes.email, email);
    assert.deepEqual(fieldsOf(created), { company: 'Acme', seats: 5 });
    assert.deepEqual(await tagNamesOf(bento, created), [lead, mql].sort());

    const updated = await bento.upsertSubscriber({ email, fields: { seats: 8, company: null }, remove_tags: lead });
    assertSubscriberShape(updated);
    assert.equal(updated.id, created.id);
    assert.equal(updated.attributes.uuid, created.attributes.uuid);
    assert.deepEqual(fieldsOf(updated), { seats: 8 });
    assert.deepEqual(await tagNamesOf(bento, updated), [mql]);
    assert.deepEqual(await subscriber(bento, email), updated);
  });
});

describe('Stats.getSiteStats on a site of its own', { skip: STATS ? false : 'CORRAL_STATS_SITE_UUID is not set' }, () => {
  test('counts every subscriber, the subscribed and the unsubscribed', async () => {
    const api = sdk(STATS);
    assert.deepEqual(await siteStats(api), { user_count: 0, subscriber_count: 0, unsubscriber_count: 0 });
    // An empty site lists no tags or fields: an empty list, not null.
    assert.deepEqual(await api.Tags.getTags(), []);
    assert.deepEqual(await api.Fields.getFields(), []);

    const [a, b, c, d, e, f] = ['a', 'b', 'c', 'd', 'e', 'f'].map((l) => newEmail(`stats-${l}`));
    await api.Subscribers.createSubscriber({ email: a });
    await api.addSubscriber({ email: b });
    await api.Batch.importSubscribers({ subscribers: [{ email: c }, { email: d }] });
    await api.track({ type: '$visit', email: e });
    await api.removeSubscriber({ email: c }); // known: now unsubscribed
    await api.Commands.unsubscribe({ email: d });
    await api.Commands.unsubscribe({ email: b });
    await api.Commands.subscribe({ email: b }); // back again
    await api.removeSubscriber({ email: f }); // unknown: created unsubscribed

    assert.equal((await subscriber(api, f)).attributes.email, f);
    assert.deepEqual(await siteStats(api), { user_count: 6, subscriber_count: 3, unsubscriber_count: 3 });
  });
});

describe('site isolation', { skip: OTHER ? false : 'CORRAL_OTHER_SITE_UUID is not set' }, () => {
  test("another site finds neither the main site's subscribers, tags nor fields", async () => {
    const other = sdk(OTHER);
    const sfx = suffix();
    const email = newEmail('isolated');
    const tagName = `Private ${sfx}`;
    const fieldKey = `secret_${sfx}`;
    const mine = await bento.Subscribers.createSubscriber({ email });
    await bento.tagSubscriber({ email, tagName });
    await bento.updateFields({ email, fields: { [fieldKey]: 'x' } });
    assert.ok(await tagNamed(bento, tagName), 'the tag must exist on the main site');

    assert.equal(await other.Subscribers.getSubscribers({ email }), null, "another site's subscriber found by email");
    assert.equal(await other.Subscribers.getSubscribers({ uuid: mine.attributes.uuid }), null, "another site's subscriber found by uuid");
    const otherTags = (await other.Tags.getTags()) ?? [];
    assert.ok(!otherTags.some((t) => t.attributes.name?.toLowerCase() === tagName.toLowerCase()), "another site's tag is listed");
    const otherFields = (await other.Fields.getFields()) ?? [];
    assert.ok(!otherFields.some((f) => f.attributes.key === fieldKey), "another site's field is listed");
  });

  test('the same email on two sites is two subscribers; changing one leaves the other alone', async () => {
    const other = sdk(OTHER);
    const email = newEmail('shared');
    const tagName = `Shared ${suffix()}`;
    await bento.addSubscriber({ email, fields: { site: 'main' } });
    const mine = await subscriber(bento, email);

    await other.addSubscriber({ email, fields: { site: 'other' } });
    await other.tagSubscriber({ email, tagName });
    await other.removeSubscriber({ email });
    const theirs = await subscriber(other, email);
    assert.notEqual(theirs.attributes.uuid, mine.attributes.uuid);
    assert.deepEqual(fieldsOf(theirs), { site: 'other' });
    assert.notEqual(theirs.attributes.unsubscribed_at, null);

    const stillMine = await subscriber(bento, email);
    assert.deepEqual(stillMine, mine, "another site's events changed the main site's subscriber");
    assert.equal(await tagNamed(bento, tagName), undefined, "another site's tag is listed on the main site");
    const otherTag = await tagNamed(other, tagName);
    assert.ok(otherTag, 'tagSubscriber on the other site must create the tag there');
    const mainTag = await bento.Tags.createTag({ name: tagName });
    assert.notEqual(mainTag.id, otherTag.id, 'the same tag name on two sites must be two tags');
    assert.notEqual(mainTag.attributes.site_id, otherTag.attributes.site_id, 'site_id must tell the sites apart');
  });

  test("another site's deleteTag finds no tag of the main site's id", async () => {
    const other = sdk(OTHER);
    const email = newEmail('guarded');
    const tagName = `Guarded ${suffix()}`;
    await bento.tagSubscriber({ email, tagName });
    const tag = await tagNamed(bento, tagName);
    await assert.rejects(other.Tags.deleteTag(tag.id, { name: tagName }), (err) => {
      assert.equal(err.message, '[404] - {"error":"Tag not found"}');
      return true;
    });
    assert.ok(await tagNamed(bento, tagName), "another site's delete took the tag");
    assert.deepEqual((await subscriber(bento, email)).attributes.cached_tag_ids, [tag.id]);
  });

  test("a purchase unique key used on one site does not suppress the same key on another", async () => {
    const other = sdk(OTHER);
    const key = `order-${suffix()}`;
    const purchaseDetails = { unique: { key }, value: { currency: 'USD', amount: 100 } };
    const buyer = newEmail('buyer-main');
    assert.equal(await bento.trackPurchase({ email: buyer, purchaseDetails }), true);
    assert.ok(await bento.Subscribers.getSubscribers({ email: buyer }));

    // A purchase on the other site with the same key is new there: it creates its buyer.
    const otherBuyer = newEmail('buyer-other');
    assert.equal(await other.trackPurchase({ email: otherBuyer, purchaseDetails }), true);
    assert.ok(await other.Subscribers.getSubscribers({ email: otherBuyer }), "the other site's purchase was treated as a duplicate");
    assert.equal(await bento.Subscribers.getSubscribers({ email: otherBuyer }), null);
  });
});
