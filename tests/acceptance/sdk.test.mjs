// Acceptance tests: Bento's official Node SDK (pinned in package.json) against a running
// Corral server. Segment routes are reached through the SDK's own client
// (`analytics.V1._client`), so every request carries the SDK's real authentication,
// headers and `site_uuid` placement, and every failure goes through its error mapping.
// A few tests use plain `fetch` to see what the SDK hides (status codes, content types) or
// to send requests the way Bento's other SDKs do.
//
// Run with scripts/acceptance.sh, which starts the servers and sets:
//   CORRAL_BASE_URL, CORRAL_SITE_UUID, CORRAL_PUBLISHABLE_KEY, CORRAL_SECRET_KEY
//     a server without rate limiting;
//   CORRAL_LIMITED_BASE_URL, CORRAL_LIMITED_SITE_UUID, CORRAL_LIMITED_PUBLISHABLE_KEY,
//   CORRAL_LIMITED_SECRET_KEY
//     a second server limited to 5 requests a minute;
//   CORRAL_OTHER_SITE_UUID, CORRAL_OTHER_PUBLISHABLE_KEY, CORRAL_OTHER_SECRET_KEY (optional)
//     a second site on the first server, for the site-isolation tests.
// Every test makes its own segments with unique names, so tests can share a server.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Analytics, NotAuthorizedError, RateLimitedError } from '@bentonow/bento-node-sdk';

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
const LIMITED = {
  baseUrl: required('CORRAL_LIMITED_BASE_URL'),
  siteUuid: required('CORRAL_LIMITED_SITE_UUID'),
  publishableKey: required('CORRAL_LIMITED_PUBLISHABLE_KEY'),
  secretKey: required('CORRAL_LIMITED_SECRET_KEY'),
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
const SEGMENT_KEYS = ['name', 'description', 'visitor_event_query', 'created_at', 'updated_at'];

function sdk(server, overrides = {}) {
  const s = { ...server, ...overrides };
  return new Analytics({
    authentication: { publishableKey: s.publishableKey, secretKey: s.secretKey },
    siteUuid: s.siteUuid,
    clientOptions: { baseUrl: s.baseUrl, timeout: 10000 },
  });
}

const main = sdk(MAIN).V1._client;

function suffix() {
  return randomBytes(5).toString('hex');
}

/** A key of the same shape as a real one that no site has. */
function bogus(like) {
  return randomBytes(Math.ceil(like.length / 2)).toString('hex').slice(0, like.length);
}

async function createSegment(client, attributes) {
  const body = await client.post('/fetch/segments', { segment: attributes });
  assert.ok(body && typeof body === 'object' && body.data, `create answered ${JSON.stringify(body)}`);
  return body.data;
}

async function listSegments(client) {
  const body = await client.get('/fetch/segments');
  assert.ok(Array.isArray(body.data), `list answered ${JSON.stringify(body)}`);
  return body.data;
}

/** Checks the wire shape every segment record must have and returns its attributes. */
function assertSegmentShape(record) {
  assert.equal(typeof record.id, 'string', `id must be a JSON string: ${JSON.stringify(record)}`);
  assert.ok(record.id.length > 0);
  assert.equal(record.type, 'segments');
  const a = record.attributes;
  assert.ok(a && typeof a === 'object', `attributes missing: ${JSON.stringify(record)}`);
  for (const key of ['name', 'description', 'created_at', 'updated_at']) {
    assert.ok(key in a, `attributes lack ${key}: ${JSON.stringify(a)}`);
  }
  assert.equal(typeof a.name, 'string');
  assert.ok(a.description === null || typeof a.description === 'string');
  assert.match(a.created_at, TIMESTAMP);
  assert.match(a.updated_at, TIMESTAMP);
  return a;
}

/** Plain HTTP, to see status codes and headers, or to send requests as other SDKs do. */
async function http(server, method, path, { query = {}, body, headers = {}, auth = true } = {}) {
  const url = new URL(server.baseUrl + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const h = { ...headers };
  if (auth) {
    h.Authorization =
      'Basic ' + Buffer.from(`${server.publishableKey}:${server.secretKey}`).toString('base64');
  }
  if (body !== undefined && !('Content-Type' in h)) h['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text, json };
}

function assertJsonError(res, status) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status} ${res.text}`);
  assert.match(res.contentType, /^application\/json/i, `error content type: ${res.contentType}`);
  assert.ok(res.json && typeof res.json === 'object', `error body is not JSON: ${res.text}`);
  assert.ok(
    typeof res.json.error === 'string' || Array.isArray(res.json.errors),
    `error body has neither "error" nor "errors": ${res.text}`,
  );
}

function notFound(err) {
  assert.ok(err instanceof Error);
  assert.match(err.message, /^\[404\]/);
  return true;
}

describe('creating segments (Corral extension)', () => {
  test('create answers the saved segment in a data envelope', async () => {
    const name = `Created ${suffix()}`;
    const record = await createSegment(main, { name, visitor_event_query: {} });
    const a = assertSegmentShape(record);
    assert.equal(a.name, name);
    assert.equal(a.description, null, 'description not given must be null');
    assert.deepEqual(a.visitor_event_query, {});
  });

  test('create answers 201 with JSON, site_uuid in the query string as other SDKs send it', async () => {
    const name = `Created raw ${suffix()}`;
    const res = await http(MAIN, 'POST', '/fetch/segments', {
      query: { site_uuid: MAIN.siteUuid },
      body: { segment: { name, description: 'made by plain HTTP', visitor_event_query: {} } },
    });
    assert.equal(res.status, 201, res.text);
    assert.match(res.contentType, /^application\/json/i);
    const a = assertSegmentShape(res.json.data);
    assert.equal(a.name, name);
    assert.equal(a.description, 'made by plain HTTP');
  });

  test('a segment without a name is refused with 422 naming the field, and not saved', async () => {
    const description = `nameless ${suffix()}`;
    // The README: a well-formed body that breaks a rule is a 422, each problem at its field.
    await assert.rejects(
      main.post('/fetch/segments', { segment: { description, visitor_event_query: {} } }),
      (err) => {
        assert.equal(err.message, `[422] - {"errors":[{"field":"name","message":"can't be blank"}]}`);
        return true;
      },
    );
    const all = await listSegments(main);
    assert.ok(!all.some((s) => s.attributes.description === description), 'refused segment was saved');
  });
});

describe('GET /fetch/segments', () => {
  test('lists kept segments ordered by name, case-insensitively, with the wire shape', async () => {
    const sfx = suffix();
    // Created out of order. Byte order would put capitals first; ASCII-only lowercase
    // would put "\u00c9mile" before "\u00e9a"; Unicode lowercase puts "\u00e9a" first.
    const names = ['gamma', '\u00c9mile', 'beta', 'Alpha', '\u00e9a', 'Delta', 'Eta'];
    const created = [];
    for (const n of names) {
      const attributes = { name: `${n} ${sfx}`, visitor_event_query: {} };
      if (n === 'beta') attributes.description = 'the second letter';
      created.push(await createSegment(main, attributes));
    }
    const ids = new Set(created.map((r) => r.id));
    assert.equal(ids.size, names.length, 'each created segment must have its own id');

    const body = await main.get('/fetch/segments');
    assert.ok(Array.isArray(body.data), `list answered ${JSON.stringify(body)}`);
    const ours = body.data.filter((r) => ids.has(r.id));
    assert.equal(ours.length, names.length, 'every created segment must be listed');
    for (const r of ours) assertSegmentShape(r);

    const expected = ['Alpha', 'beta', 'Delta', 'Eta', 'gamma', '\u00e9a', '\u00c9mile'].map((n) => `${n} ${sfx}`);
    assert.deepEqual(ours.map((r) => r.attributes.name), expected);

    const beta = ours.find((r) => r.attributes.name === `beta ${sfx}`);
    assert.equal(beta.attributes.description, 'the second letter');
    for (const r of ours.filter((r) => r !== beta)) assert.equal(r.attributes.description, null);
  });

  test('a name equal to a kept one ignoring case is taken, and free again once that one is discarded', async () => {
    const sfx = suffix();
    const lower = await createSegment(main, { name: `zeta ${sfx}`, visitor_event_query: {} });
    await assert.rejects(
      createSegment(main, { name: `Zeta ${sfx}`, visitor_event_query: {} }),
      (err) => err.message === '[422] - {"errors":[{"field":"name","message":"has already been taken"}]}',
    );
    await main.delete(`/fetch/segments/${lower.id}`);
    const upper = await createSegment(main, { name: `Zeta ${sfx}`, visitor_event_query: {} });
    const listed = (await listSegments(main)).filter((r) => r.id === lower.id || r.id === upper.id);
    assert.deepEqual(listed.map((r) => r.id), [upper.id]);
  });

  test('works for a GET with Content-Type: application/json and an empty body, ignoring unknown parameters', async () => {
    const name = `Go style ${suffix()}`;
    const record = await createSegment(main, { name, visitor_event_query: {} });
    const res = await http(MAIN, 'GET', '/fetch/segments', {
      query: { site_uuid: MAIN.siteUuid, page: '1', utm_source: 'test' },
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(res.status, 200, res.text);
    assert.match(res.contentType, /^application\/json/i);
    assert.ok(res.json.data.some((r) => r.id === record.id), 'created segment missing');
  });
});

describe('GET /fetch/segments/:id', () => {
  test('answers the segment with its visitor_event_query exactly as saved', async () => {
    // A query in Bento's own shape (its grammar is not public) is saved under "foreign",
    // which Corral keeps verbatim and never evaluates.
    const bentoQuery = {
      match: 'any',
      groups: [
        {
          match: 'all',
          filters: [
            { type: 'tag', name: 'caf\u00e9 \u2615 \u65e5\u672c\u8a9e', negate: false },
            { type: 'field', key: 'plan', operator: 'in', value: ['gold', 'p\u0142atyna', '\u{1F947}'] },
            { type: 'field', key: 'beta_tester', operator: 'eq', value: true },
            { type: 'field', key: 'churned_at', operator: 'eq', value: null },
          ],
        },
        {
          match: 'all',
          filters: [{ type: 'event', name: '$purchase', count: { gte: 2 }, within_days: 30.5 }],
        },
      ],
    };
    const query = { foreign: bentoQuery };
    const name = `Nested \u00fcnic\u00f8de ${suffix()}`;
    const description = 'Kunden mit \u00dcberblick \u2014 \u201cVIP\u201d';
    const created = await createSegment(main, { name, description, visitor_event_query: query });
    assert.deepEqual(created.attributes.visitor_event_query, query);

    const body = await main.get(`/fetch/segments/${created.id}`);
    assert.ok(body.data && !Array.isArray(body.data), `get answered ${JSON.stringify(body)}`);
    const a = assertSegmentShape(body.data);
    assert.equal(body.data.id, created.id);
    assert.equal(a.name, name);
    assert.equal(a.description, description);
    assert.deepEqual(a.visitor_event_query, query);
    assert.equal(a.created_at, created.attributes.created_at);

    // On the wire: the very text the SDK sent (key order, Unicode as UTF-8).
    const res = await http(MAIN, 'GET', `/fetch/segments/${created.id}`, { query: { site_uuid: MAIN.siteUuid } });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.text.includes(`"visitor_event_query":${JSON.stringify(query)}`), res.text);
  });

  test('a foreign query comes back as written: number literals, key order, escapes and Unicode', async () => {
    // Written by hand: JSON.stringify would lose 12345678901234567890 and 1.10.
    const query = String.raw`{"foreign":{"zeta":12345678901234567890,"alpha":1.10,"nested":{"b":[1,2.50,-0.0e+5,true,null,{"é":"日本語 \u00e9 \"q\""}],"a":{}},"emoji":"🐄"}}`;
    const name = `Verbatim ${suffix()}`;
    const created = await http(MAIN, 'POST', '/fetch/segments', {
      query: { site_uuid: MAIN.siteUuid },
      body: `{"segment":{"name":${JSON.stringify(name)},"visitor_event_query":${query}}}`,
    });
    assert.equal(created.status, 201, created.text);
    assert.ok(created.text.includes(`"visitor_event_query":${query}`), created.text);
    const id = created.json.data.id;

    const got = await http(MAIN, 'GET', `/fetch/segments/${id}`, { query: { site_uuid: MAIN.siteUuid } });
    assert.equal(got.status, 200, got.text);
    assert.ok(got.text.includes(`"visitor_event_query":${query}`), got.text);
    const listed = await http(MAIN, 'GET', '/fetch/segments', { query: { site_uuid: MAIN.siteUuid } });
    assert.ok(listed.text.includes(`"visitor_event_query":${query}`), 'the list must carry the same text');

    // Through the SDK (JSON.parse): the values, as far as JavaScript numbers hold them.
    const viaSdk = (await main.get(`/fetch/segments/${id}`)).data.attributes.visitor_event_query;
    assert.deepEqual(viaSdk, JSON.parse(query));
    assert.deepEqual(Object.keys(viaSdk.foreign), ['zeta', 'alpha', 'nested', 'emoji']);
  });

  test('a query in the documented grammar comes back as written', async () => {
    const query = {
      all: [
        { subscribed: true },
        { tag: { has: 'customer' } },
        { field: { key: 'plan', in: ['pro', 'team'] } },
        {
          event: {
            type: '$purchase',
            when: { within_last: { days: 90 } },
            where: { 'value.currency': { equals: 'USD' } },
            sum: { of: 'value.amount', at_least: 50000 },
          },
        },
        {
          any: [
            { event: { type: '$open_email', last: { within_last: { weeks: 2 } } } },
            { event: { type: '$login', when: { within_last: { days: 30 } }, count: { at_least: 3 } } },
          ],
        },
      ],
    };
    const created = await createSegment(main, { name: `Grammar ${suffix()}`, visitor_event_query: query });
    assert.deepEqual(created.attributes.visitor_event_query, query);
    const res = await http(MAIN, 'GET', `/fetch/segments/${created.id}`, { query: { site_uuid: MAIN.siteUuid } });
    assert.ok(res.text.includes(`"visitor_event_query":${JSON.stringify(query)}`), res.text);
  });

  test('an unknown id raises the SDK error for 404', async () => {
    await assert.rejects(main.get('/fetch/segments/999999999'), notFound);
    await assert.rejects(main.get('/fetch/segments/no-such-segment'), notFound);
  });

  test('a 404 answer is a JSON error body', async () => {
    const res = await http(MAIN, 'GET', '/fetch/segments/999999999', { query: { site_uuid: MAIN.siteUuid } });
    assertJsonError(res, 404);
  });
});

describe('changing, discarding and restoring segments (Corral extensions)', () => {
  test('PATCH changes the given fields and keeps the others', async () => {
    const sfx = suffix();
    const created = await createSegment(main, {
      name: `Before ${sfx}`,
      description: 'first words',
      visitor_event_query: {},
    });
    const renamed = await main.patch(`/fetch/segments/${created.id}`, { segment: { name: `After ${sfx}` } });
    const a = assertSegmentShape(renamed.data);
    assert.equal(renamed.data.id, created.id);
    assert.equal(a.name, `After ${sfx}`);
    assert.equal(a.description, 'first words', 'a field not sent must be kept');
    assert.deepEqual(a.visitor_event_query, {});
    assert.equal(a.created_at, created.attributes.created_at);
    assert.ok(a.updated_at >= created.attributes.updated_at, 'updated_at went backwards');

    await main.patch(`/fetch/segments/${created.id}`, { segment: { description: 'second words' } });
    const fetched = (await main.get(`/fetch/segments/${created.id}`)).data.attributes;
    assert.equal(fetched.name, `After ${sfx}`);
    assert.equal(fetched.description, 'second words');
  });

  test('a segment discarded through the SDK (site_uuid in the body) leaves the list and its get is 404', async () => {
    const sfx = suffix();
    const kept = await createSegment(main, { name: `Kept ${sfx}`, visitor_event_query: {} });
    const gone = await createSegment(main, { name: `Discarded ${sfx}`, visitor_event_query: {} });

    // The SDK accepts only 200 and 201: a 204 here would be an error.
    const answer = await main.delete(`/fetch/segments/${gone.id}`);
    assert.equal(answer.data.id, gone.id);
    assert.equal(answer.data.attributes.name, `Discarded ${sfx}`);

    const ids = (await listSegments(main)).map((r) => r.id);
    assert.ok(ids.includes(kept.id), 'kept segment must stay listed');
    assert.ok(!ids.includes(gone.id), 'discarded segment must leave the list');
    await assert.rejects(main.get(`/fetch/segments/${gone.id}`), notFound);
    const stillThere = await main.get(`/fetch/segments/${kept.id}`);
    assert.equal(stillThere.data.id, kept.id);
  });

  test('a segment discarded by plain HTTP (site_uuid in the query string) answers 200 and is gone', async () => {
    const gone = await createSegment(main, { name: `Discarded raw ${suffix()}`, visitor_event_query: {} });
    const res = await http(MAIN, 'DELETE', `/fetch/segments/${gone.id}`, { query: { site_uuid: MAIN.siteUuid } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.contentType, /^application\/json/i);
    assert.equal(res.json.data.id, gone.id);
    const ids = (await listSegments(main)).map((r) => r.id);
    assert.ok(!ids.includes(gone.id), 'discarded segment must leave the list');
    await assert.rejects(main.get(`/fetch/segments/${gone.id}`), notFound);
  });

  test('a restored segment is listed and readable again', async () => {
    const query = { all: [{ tag: { has: `restored-${suffix()}` } }, { subscribed: true }] };
    const created = await createSegment(main, { name: `Restored ${suffix()}`, visitor_event_query: query });
    await main.delete(`/fetch/segments/${created.id}`);
    await assert.rejects(main.get(`/fetch/segments/${created.id}`), notFound);

    const restored = await main.post(`/fetch/segments/${created.id}/restore`);
    assert.equal(restored.data.id, created.id);
    assertSegmentShape(restored.data);

    const ids = (await listSegments(main)).map((r) => r.id);
    assert.ok(ids.includes(created.id), 'restored segment must be listed');
    const fetched = await main.get(`/fetch/segments/${created.id}`);
    assert.deepEqual(fetched.data.attributes.visitor_event_query, query);
  });
});

describe('tag and field lists (paging is a Corral extension)', () => {
  test('getTags reads the whole list, and _client pages it with limit and cursor', async () => {
    const sfx = suffix();
    const names = ['a', 'b', 'c'].map((l) => `page-${l}-${sfx}`);
    const tags = sdk(MAIN).V1.Tags;
    for (const name of names) await tags.createTag({ name });
    const whole = (await tags.getTags()).map((t) => t.attributes.name);
    for (const name of names) assert.ok(whole.includes(name), `${name} not in getTags`);

    const paged = [];
    let cursor;
    do {
      const page = await main.get('/fetch/tags', { limit: 2, cursor });
      assert.ok(page.data.length <= 2, JSON.stringify(page.meta));
      paged.push(...page.data);
      cursor = page.meta.next_cursor ?? undefined;
    } while (cursor);
    const ids = paged.map((t) => t.id);
    assert.equal(new Set(ids).size, ids.length, 'no tag is on two pages');
    const ours = paged.map((t) => t.attributes.name).filter((n) => names.includes(n));
    assert.deepEqual(ours, names);

    const fields = await main.get('/fetch/fields', { limit: 1 });
    assert.ok(Array.isArray(fields.data) && fields.data.length <= 1);
    assert.ok('next_cursor' in fields.meta);
    await assert.rejects(main.get('/fetch/tags', { cursor: 'not-a-cursor' }), (err) => {
      assert.match(err.message, /^\[422\] - /);
      assert.equal(JSON.parse(err.message.slice('[422] - '.length)).errors[0].field, 'cursor');
      return true;
    });
  });
});

describe('authentication', () => {
  test('a wrong secret key raises NotAuthorizedError', async () => {
    const client = sdk(MAIN, { secretKey: bogus(MAIN.secretKey) }).V1._client;
    await assert.rejects(client.get('/fetch/segments'), NotAuthorizedError);
    await assert.rejects(
      client.post('/fetch/segments', { segment: { name: `Intruder ${suffix()}`, visitor_event_query: {} } }),
      NotAuthorizedError,
    );
  });

  test('a wrong publishable key raises NotAuthorizedError', async () => {
    const client = sdk(MAIN, { publishableKey: bogus(MAIN.publishableKey) }).V1._client;
    await assert.rejects(client.get('/fetch/segments'), NotAuthorizedError);
  });

  test('a wrong site_uuid raises NotAuthorizedError', async () => {
    const created = await createSegment(main, { name: `Wrong site ${suffix()}`, visitor_event_query: {} });
    const client = sdk(MAIN, { siteUuid: bogus(MAIN.siteUuid) }).V1._client;
    await assert.rejects(client.get('/fetch/segments'), NotAuthorizedError);
    await assert.rejects(client.get(`/fetch/segments/${created.id}`), NotAuthorizedError);
    await assert.rejects(client.delete(`/fetch/segments/${created.id}`), NotAuthorizedError);
    const still = await main.get(`/fetch/segments/${created.id}`);
    assert.equal(still.data.id, created.id);
  });

  test('missing credentials or a missing site_uuid answer 401 {"error":"Unauthorized"}', async () => {
    const noAuth = await http(MAIN, 'GET', '/fetch/segments', { query: { site_uuid: MAIN.siteUuid }, auth: false });
    assertJsonError(noAuth, 401);
    assert.deepEqual(noAuth.json, { error: 'Unauthorized' });
    const noSite = await http(MAIN, 'GET', '/fetch/segments');
    assertJsonError(noSite, 401);
    assert.deepEqual(noSite.json, { error: 'Unauthorized' });
  });
});

describe('site isolation', { skip: OTHER ? false : 'CORRAL_OTHER_SITE_UUID is not set' }, () => {
  test("one site's keys neither see nor touch another site's segments", async () => {
    const other = OTHER && sdk(OTHER).V1._client;
    const sfx = suffix();
    const mine = await createSegment(main, { name: `Mine ${sfx}`, visitor_event_query: {} });
    const theirs = await createSegment(other, { name: `Theirs ${sfx}`, visitor_event_query: {} });

    const myIds = (await listSegments(main)).map((r) => r.id);
    assert.ok(myIds.includes(mine.id));
    assert.ok(!myIds.includes(theirs.id), "another site's segment is listed");
    await assert.rejects(main.get(`/fetch/segments/${theirs.id}`), notFound);
    await assert.rejects(main.delete(`/fetch/segments/${theirs.id}`), notFound);
    const theirsStill = await other.get(`/fetch/segments/${theirs.id}`);
    assert.equal(theirsStill.data.attributes.name, `Theirs ${sfx}`);
  });

  test("one site's keys with another site's site_uuid raise NotAuthorizedError", async () => {
    const mixed = sdk(MAIN, { siteUuid: OTHER?.siteUuid }).V1._client;
    await assert.rejects(mixed.get('/fetch/segments'), NotAuthorizedError);
  });
});

describe('rate limiting (server limited to 5 requests a minute)', () => {
  test('repeated requests end in RateLimitedError after some succeed', async () => {
    const client = sdk(LIMITED).V1._client;
    let succeeded = 0;
    let failure;
    for (let i = 0; i < 10 && !failure; i++) {
      try {
        const body = await client.get('/fetch/segments');
        assert.ok(Array.isArray(body.data));
        succeeded++;
      } catch (err) {
        failure = err;
      }
    }
    assert.ok(failure, `10 requests in a row were all served (${succeeded} succeeded)`);
    assert.ok(failure instanceof RateLimitedError, `expected RateLimitedError, got ${failure}`);
    assert.ok(succeeded >= 1, 'no request succeeded before the limit');
    assert.ok(succeeded <= 5, `${succeeded} requests succeeded under a limit of 5 a minute`);

    const res = await http(LIMITED, 'GET', '/fetch/segments', { query: { site_uuid: LIMITED.siteUuid } });
    assertJsonError(res, 429);
  });
});
