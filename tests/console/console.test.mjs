// The web console in a real browser: headless Chromium driven by Playwright
// against `corral serve --demo` (started by scripts/console.sh, which sets the
// variables read below). Every expected figure comes from Corral's API, read
// here with the same demo keys. First, TypeScript's checker reads the
// console's modules (their JSDoc types, tsconfig.json beside this file), and
// last, the builder is made to build every operator the query parser accepts
// (vocabulary.json, written from the parser by the integration tests).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CONSOLE = process.env.CORRAL_CONSOLE_URL;
const SITE = process.env.CORRAL_SITE_UUID;
const PK = process.env.CORRAL_PUBLISHABLE_KEY;
const SK = process.env.CORRAL_SECRET_KEY;
const SHOTS = process.env.CORRAL_SCREENSHOTS === '1' ? process.env.CORRAL_SCREENSHOT_DIR : null;
for (const [name, value] of Object.entries({ CORRAL_CONSOLE_URL: CONSOLE, CORRAL_SITE_UUID: SITE, CORRAL_PUBLISHABLE_KEY: PK, CORRAL_SECRET_KEY: SK })) {
  if (!value) throw new Error(`${name} is not set: run these tests with scripts/console.sh`);
}

// ---- the API, as a plain client -------------------------------------------

async function api(method, path, { params = {}, body } = {}) {
  const query = new URLSearchParams({ site_uuid: SITE, ...params });
  const response = await fetch(new URL(`api/v1${path}?${query}`, CONSOLE), {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from(`${PK}:${SK}`).toString('base64')}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

async function segments() {
  return (await api('GET', '/fetch/segments')).body.data;
}

async function segmentByName(name) {
  const found = (await segments()).find((s) => s.attributes.name === name);
  assert.ok(found, `no segment named ${name}`);
  return found;
}

async function stats(id) {
  const answer = await api('GET', '/stats/segment', { params: { segment_id: id } });
  assert.equal(answer.status, 200);
  return answer.body;
}

async function allMembers(id) {
  const members = [];
  let cursor = '';
  for (;;) {
    const page = await api('GET', `/fetch/segments/${id}/members`, { params: { limit: 1000, cursor } });
    members.push(...page.body.data);
    if (!page.body.meta.next_cursor) return members;
    cursor = page.body.meta.next_cursor;
  }
}

// The demo audience: `{name}{i}@example.com` for i in 0..40.
const NAMES = ['ada', 'grace', 'alan', 'edsger', 'barbara', 'donald', 'frances', 'ken'];
const DEMO_EMAILS = Array.from({ length: 40 }, (_, i) => `${NAMES[i % NAMES.length]}${i}@example.com`);

// ---- the browser ------------------------------------------------------------

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CORRAL_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  if (SHOTS) await mkdir(SHOTS, { recursive: true });
});
after(async () => {
  await browser?.close();
});

/** A fresh tab; every console error, page error and CSP violation fails the test. */
async function open(t, { width = 1280, height = 860 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of (401|404|412|422|429)/.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the page logged errors');
  });
  await page.goto(CONSOLE);
  return page;
}

async function signIn(page) {
  await page.getByLabel('Site UUID').fill(SITE);
  await page.getByLabel('Publishable key').fill(PK);
  await page.getByLabel('Secret key').fill(SK);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
}

/** A PNG of the page (the whole of it, or what the screen shows), or of one part of it. */
async function shot(page, name, { part = null, fullPage = true } = {}) {
  if (!SHOTS) return;
  if (part) await part.screenshot({ path: `${SHOTS}/${name}.png` });
  else await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage });
}

/** The segments table's numbers, once every count has arrived. */
async function listedCounts(page) {
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('table.segments td[data-count="members"]')];
    return cells.length > 0 && cells.every((c) => /^[\d,]+$/.test(c.textContent.trim()));
  });
  return page.$$eval('table.segments tbody tr', (rows) => rows.map((row) => ({
    id: row.dataset.segmentId,
    name: row.querySelector('th a').textContent,
    counts: ['members', 'subscribed', 'unsubscribed'].map((k) => Number(row.querySelector(`[data-count="${k}"]`).textContent.replace(/,/g, ''))),
  })));
}

// ---- the tests ----------------------------------------------------------------

test('the console\'s modules pass TypeScript\'s checker (npx tsc --noEmit)', () => {
  const run = spawnSync('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    encoding: 'utf8',
  });
  assert.equal(run.error, undefined, `npx tsc could not run: ${run.error}`);
  assert.equal(run.status, 0, `type errors in src/http/console/:\n${run.stdout}${run.stderr}`);
});

describe('the console', () => {
  test('signs in with the demo keys, and refuses wrong ones with a clear message', async (t) => {
    const page = await open(t);
    await page.getByLabel('Site UUID').waitFor();
    await shot(page, 'sign-in');
    await page.getByLabel('Site UUID').fill(SITE);
    await page.getByLabel('Publishable key').fill(PK);
    await page.getByLabel('Secret key').fill('not-the-secret');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong site UUID or keys' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'refused keys are not kept');
    await page.getByLabel('Secret key').fill(SK);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
    for (const secret of [PK, SK]) assert.ok(!page.url().includes(secret), 'keys never go in the URL');
    // A reload of the tab keeps the session.
    await page.reload();
    await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
  });

  test('lists the demo segments in Bento\'s order with the counts the API gives', async (t) => {
    const page = await open(t);
    await signIn(page);
    const listed = await listedCounts(page);
    const expected = await segments();
    assert.deepEqual(listed.map((r) => r.name), expected.map((s) => s.attributes.name));
    assert.ok(listed.length >= 4);
    for (const row of listed) {
      const s = await stats(row.id);
      assert.deepEqual(row.counts, [s.user_count, s.subscriber_count, s.unsubscriber_count], row.name);
    }
    const description = expected.find((s) => s.attributes.description).attributes.description;
    await page.getByText(description).waitFor();
    await shot(page, 'segments');
  });

  test('builds a segment from a tag and an event count in a window, whose live count matches its stats once saved', async (t) => {
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'New segment' }).click();
    await page.getByLabel('Name').fill('Active newsletter readers');
    await page.getByLabel('Description').fill('Newsletter tag and at least 2 page views in the last 60 days');
    const builder = page.locator('#builder');
    await builder.getByRole('button', { name: '+ condition' }).click();
    await builder.locator('[data-pointer="/all/0"]').getByLabel('Value: has').fill('newsletter');
    await builder.getByRole('button', { name: '+ condition' }).last().click();
    await builder.locator('[data-pointer="/all/1"]').getByLabel('Condition').first().selectOption('event');
    const event = builder.locator('[data-pointer="/all/1"]');
    await event.getByLabel('Event type').fill('$pageview');
    await event.getByRole('button', { name: /^Add when/ }).click();
    await event.getByLabel('Value: within the last: how many').fill('60');
    await event.getByRole('button', { name: /^Add count/ }).click();
    await event.getByLabel('Value: at least').fill('2');
    const expectedQuery = {
      all: [
        { tag: { has: 'newsletter' } },
        { event: { type: '$pageview', when: { within_last: { days: 60 } }, count: { at_least: 2 } } },
      ],
    };
    // The JSON beside the builder follows it.
    await page.waitForFunction((q) => {
      try {
        return JSON.stringify(JSON.parse(document.getElementById('query-json').value)) === q;
      } catch {
        return false;
      }
    }, JSON.stringify(expectedQuery));
    const preview = await api('POST', '/fetch/segments/preview', { body: { visitor_event_query: expectedQuery } });
    const expectedCount = preview.body.data.user_count;
    assert.ok(expectedCount > 0, 'the demo audience has such members');
    await page.locator(`[data-live-count="${expectedCount}"]`).waitFor();
    await shot(page, 'editor');
    await page.getByRole('button', { name: 'Create segment' }).click();
    await page.getByRole('heading', { name: 'Active newsletter readers', level: 1 }).waitFor();
    const saved = await segmentByName('Active newsletter readers');
    assert.deepEqual(saved.attributes.visitor_event_query, expectedQuery);
    const s = await stats(saved.id);
    assert.equal(s.user_count, expectedCount);
    await page.locator(`[data-count="members"]:text-is("${s.user_count}")`).waitFor();
  });

  test('shows an unknown operator typed in the JSON at its condition, in the builder and in the JSON', async (t) => {
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'New segment' }).click();
    const query = { groups: [{ filters: [{ tag: { has: 'customer' } }, { event: { type: '$purchase', count: { gte: 2 } } }] }] };
    await page.getByRole('textbox', { name: 'Query (JSON)' }).fill(JSON.stringify(query, null, 2));
    const pointer = '/groups/0/filters/1/event/count/gte';
    const atOperator = page.locator(`#builder [data-pointer="${pointer}"] .field-error`);
    await atOperator.waitFor();
    assert.match(await atOperator.textContent(), /unknown operator "gte"/);
    // The operator's own select says which one it is.
    assert.equal(await page.locator(`#builder [data-pointer="${pointer}"] select`).first().inputValue(), 'gte');
    const inJson = page.locator(`.json-errors li[data-pointer="${pointer}"]`);
    await inJson.waitFor();
    assert.match(await inJson.textContent(), /line 14/);
    // Fixing it in the builder clears the error.
    await page.locator(`#builder [data-pointer="${pointer}"] select`).first().selectOption('at_least');
    await page.locator('[data-live-count]').waitFor();
    assert.equal(await page.locator('.field-error').count(), 0);
  });

  test('refuses to overwrite a change saved meanwhile (If-Match), with a clear message', async (t) => {
    const created = await api('POST', '/fetch/segments', { body: { segment: { name: 'Edited twice', visitor_event_query: { tag: { has: 'trial' } } } } });
    assert.equal(created.status, 201);
    const id = created.body.data.id;
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}/edit`);
    await page.getByLabel('Description').fill('mine');
    const other = await api('PATCH', `/fetch/segments/${id}`, { body: { segment: { description: 'theirs' } } });
    assert.equal(other.status, 200);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('alert').filter({ hasText: 'changed by someone else' }).waitFor();
    assert.equal((await api('GET', `/fetch/segments/${id}`)).body.data.attributes.description, 'theirs');
  });

  test('explains why a member is in a segment and why a non-member is not', async (t) => {
    const segment = await segmentByName('agency leads');
    const members = new Set((await allMembers(segment.id)).map((m) => m.attributes.email));
    const member = DEMO_EMAILS.find((e) => members.has(e));
    const outsider = DEMO_EMAILS.find((e) => !members.has(e));
    assert.ok(member && outsider);
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'agency leads' }).click();
    await page.getByRole('heading', { name: 'agency leads', level: 1 }).waitFor();
    for (const [email, matched] of [[outsider, false], [member, true]]) {
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByRole('button', { name: 'Why?' }).click();
      const verdict = page.locator(`.verdict[data-matched="${matched}"]`).filter({ hasText: email });
      await verdict.waitFor();
      const answer = await api('POST', `/fetch/segments/${segment.id}/match`, { body: { email } });
      // Every condition of the answer is in the tree, with its outcome.
      const nodes = [];
      const walk = (n) => {
        nodes.push(n);
        (n.children || []).forEach(walk);
      };
      walk(answer.body.data.explanation);
      // In words: the field's value and what it needs, the tag, each with its outcome.
      const field = nodes.find((n) => n.condition === 'field');
      const fieldValue = field.facts.value;
      const fieldWords = `Field company_size is ${new Intl.NumberFormat('en').format(fieldValue)}; needs more than 50: ${field.matched ? 'yes' : 'no'}`;
      await page.locator(`.explain li[data-pointer="${field.at}"] .sentence`, { hasText: fieldWords }).waitFor();
      const tag = nodes.find((n) => n.condition === 'tag');
      await page.locator(`.explain li[data-pointer="${tag.at}"] .sentence`, { hasText: `Tagged agency: ${tag.matched ? 'yes' : 'no'}` }).waitFor();
      // Every condition of the answer is under Details, with its pointer, outcome and facts.
      await page.locator('.explain-details summary').click();
      for (const n of nodes) {
        await page.locator(`.explain-raw li[data-pointer="${n.at}"][data-matched="${n.matched}"]`).first().waitFor();
      }
      await page.locator('.explain-raw .facts code', { hasText: String(fieldValue) }).first().waitFor();
    }
  });

  test('exports every member as CSV, the rows the members API pages through', async (t) => {
    const segment = await segmentByName('agency leads');
    const members = await allMembers(segment.id);
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${segment.id}`);
    await page.getByRole('heading', { name: 'agency leads', level: 1 }).waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `segment-${segment.id}-members.csv`);
    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.trimEnd().split('\n');
    // A column per field key of the site, each value as text.
    const keys = (await api('GET', '/fetch/fields')).body.data.map((f) => f.attributes.key);
    assert.deepEqual(lines[0].split(','), ['uuid', 'email', 'created_at', 'unsubscribed_at', ...keys.map((k) => `field:${k}`)]);
    const rows = lines.slice(1).map((line) => line.split(','));
    assert.deepEqual(rows.map((r) => [r[0], r[1]]), members.map((m) => [m.attributes.uuid, m.attributes.email]));
    for (const [row, m] of rows.map((r, i) => [r, members[i]])) {
      assert.equal(row[2], m.attributes.created_at, m.attributes.email);
      assert.equal(row[3], m.attributes.unsubscribed_at || '', m.attributes.email);
      const fields = m.attributes.fields || {};
      assert.deepEqual(row.slice(4), keys.map((k) => (k in fields ? String(fields[k]) : '')), m.attributes.email);
    }
  });

  test('shows a subscriber with the segments they are in', async (t) => {
    // Someone in several segments, and with events.
    const all = await segments();
    let chosen = null;
    for (const email of DEMO_EMAILS) {
      const inSegments = [];
      for (const s of all) {
        const m = await api('POST', `/fetch/segments/${s.id}/match`, { body: { email } });
        if (m.body.data.matched) inSegments.push(s.id);
      }
      if (inSegments.length >= 2 && inSegments.length < all.length) {
        chosen = { email, inSegments };
        break;
      }
    }
    assert.ok(chosen, 'a demo subscriber in some segments but not all');
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'Subscribers', exact: true }).click();
    await page.getByRole('searchbox', { name: 'Search' }).fill(chosen.email.toUpperCase());
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('link', { name: chosen.email, exact: true }).click();
    await page.getByRole('heading', { name: chosen.email, level: 1 }).waitFor();
    await page.locator('.segment-list').waitFor();
    const listed = await page.$$eval('.segment-list li', (items) => items.map((li) => li.dataset.segmentId));
    assert.deepEqual(listed, chosen.inSegments);
    const subscriber = (await api('GET', '/fetch/subscribers', { params: { email: chosen.email } })).body.data;
    await page.locator(`[data-state="${subscriber.attributes.unsubscribed_at ? 'unsubscribed' : 'subscribed'}"]`).waitFor();
    for (const key of Object.keys(subscriber.attributes.fields)) {
      await page.getByRole('rowheader', { name: key }).waitFor();
    }
    const events = (await api('GET', '/fetch/subscribers/events', { params: { email: chosen.email, limit: 20 } })).body.data;
    assert.equal(await page.locator('table.events tbody tr').count(), events.length);
    const tags = (await api('GET', '/fetch/tags')).body.data;
    for (const id of subscriber.attributes.cached_tag_ids) {
      await page.locator('.chips li', { hasText: tags.find((tag) => tag.id === id).attributes.name }).waitFor();
    }
    await shot(page, 'subscriber');
  });

  test('discards a segment, lists it on the Discarded tab and restores it', async (t) => {
    const created = await api('POST', '/fetch/segments', { body: { segment: { name: 'Short-lived', visitor_event_query: {} } } });
    const id = created.body.data.id;
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.getByRole('button', { name: 'Discard' }).click();
    await page.getByRole('button', { name: 'Discard segment' }).click();
    await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
    assert.equal((await api('GET', `/fetch/segments/${id}`)).status, 404);
    await page.getByRole('link', { name: 'Discarded' }).click();
    await page.getByRole('button', { name: 'Restore Short-lived' }).click();
    await page.getByText('Restored “Short-lived”').waitFor();
    assert.equal((await api('GET', `/fetch/segments/${id}`)).status, 200);
  });

  test('signs in and opens a segment from the keyboard alone', async (t) => {
    const page = await open(t);
    await page.getByLabel('Site UUID').waitFor();
    // The form takes the focus; Tab moves through it in order; Enter submits.
    await page.keyboard.type(SITE);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PK);
    await page.keyboard.press('Tab');
    await page.keyboard.type(SK);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Segments', level: 1 }).waitFor();
    const first = (await segments())[0];
    await page.getByRole('link', { name: first.attributes.name }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: first.attributes.name, level: 1 }).waitFor();
    // The new page's heading takes the focus, for screen readers, once the
    // page has finished drawing (the heading shows before its counts load).
    await page.waitForFunction(() => document.activeElement && document.activeElement.tagName === 'H1');
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');
  });

  test('says when to retry when the API answers 429', async (t) => {
    const page = await open(t);
    await page.route('**/api/v1/fetch/segments/preview*', (route) => route.fulfill({
      status: 429,
      headers: { 'Retry-After': '42', 'Content-Type': 'application/json; charset=utf-8' },
      body: '{"error":"Too Many Requests"}',
    }));
    await signIn(page);
    await page.getByRole('alert').filter({ hasText: 'try again in 42 seconds' }).waitFor();
  });

  test('is readable at a phone\'s width', async (t) => {
    const page = await open(t, { width: 390, height: 844 });
    await signIn(page);
    await listedCounts(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await page.getByRole('link', { name: 'New segment' }).click();
    await page.locator('[data-live-count]').waitFor();
    const editorOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(editorOverflow <= 0, `the editor is ${editorOverflow}px wider than the screen`);
  });

  test('signs out, leaving nothing in sessionStorage', async (t) => {
    const page = await open(t);
    await signIn(page);
    assert.equal(await page.evaluate(() => sessionStorage.length), 1);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.reload();
    await page.getByLabel('Site UUID').waitFor();
  });
});

// ---- a segment's history ------------------------------------------------------

// Three saved definitions: the query, then the name and description, changed.
const FIRST_QUERY = { all: [{ tag: { has: 'newsletter' } }, { subscribed: true }] };
const SECOND_QUERY = { all: [{ tag: { has: 'customer' } }, { subscribed: true }] };

/** A segment created and then edited twice through the API, and its versions as the API lists them. */
async function savedThrice(name) {
  const created = await api('POST', '/fetch/segments', { body: { segment: { name, visitor_event_query: FIRST_QUERY } } });
  assert.equal(created.status, 201);
  const id = created.body.data.id;
  for (const segment of [{ visitor_event_query: SECOND_QUERY }, { name: `${name} (paid)`, description: 'Customers only' }]) {
    const answer = await api('PATCH', `/fetch/segments/${id}`, { body: { segment } });
    assert.equal(answer.status, 200);
  }
  const versions = await versionsOf(id);
  assert.equal(versions.length, 3);
  return { id, versions };
}

async function versionsOf(id) {
  const answer = await api('GET', `/fetch/segments/${id}/versions`);
  assert.equal(answer.status, 200);
  return answer.body.data;
}

/** The History section's versions as shown, top to bottom. */
async function shownVersions(page, count) {
  await page.locator('ol.versions > li').nth(count - 1).waitFor();
  assert.equal(await page.locator('ol.versions > li').count(), count);
  return page.$$eval('ol.versions > li', (items) => items.map((li) => {
    const at = li.querySelector('.version-head time');
    const lines = (field, tag) => [...li.querySelectorAll(`[data-field="${field}"] ${tag}.line`)].map((l) => l.textContent);
    return {
      version: Number(li.dataset.version),
      heading: li.querySelector('h3').textContent,
      datetime: at.getAttribute('datetime'),
      title: at.getAttribute('title'),
      shown: at.textContent,
      savedBy: li.querySelector('.who').dataset.savedBy,
      who: li.querySelector('.who').textContent,
      restore: li.querySelector('button[aria-label^="Restore version"]')?.getAttribute('aria-label') ?? null,
      removed: { name: lines('name', 'del'), description: lines('description', 'del'), query: lines('query', 'del') },
      added: { name: lines('name', 'ins'), description: lines('description', 'ins'), query: lines('query', 'ins') },
      whole: li.querySelector('[data-whole] pre.json')?.textContent ?? null,
    };
  }));
}

describe('a segment\'s history', () => {
  test('lists every version newest first, with who saved it and when, each diffed against the one before', async (t) => {
    const { id, versions } = await savedThrice('History listed');
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.getByRole('heading', { name: 'History', level: 2 }).waitFor();
    const shown = await shownVersions(page, 3);
    assert.deepEqual(shown.map((v) => v.version), versions.map((v) => v.version).reverse(), 'newest first');
    for (const [v, saved] of shown.map((v, i) => [v, versions[versions.length - 1 - i]])) {
      assert.equal(v.heading, `Version ${saved.version}`);
      assert.equal(v.datetime, saved.saved_at);
      assert.equal(v.title, saved.saved_at, 'the exact instant in the title');
      const local = await page.evaluate((iso) => new Date(iso).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' }), saved.saved_at);
      assert.equal(v.shown, local, 'the instant in local time');
      assert.equal(saved.saved_by, PK, 'the API names the key that saved it');
      assert.equal(v.savedBy, PK);
      assert.equal(v.who, `by key ${PK}`);
    }
    const [third, second, first] = shown;
    // Only the older versions can be restored.
    assert.deepEqual(shown.map((v) => v.restore), [null, `Restore version ${second.version}`, `Restore version ${first.version}`]);
    // The first: its whole definition.
    assert.equal(first.whole, JSON.stringify(FIRST_QUERY, null, 2));
    await page.locator(`li[data-version="${first.version}"] .definition-facts`, { hasText: 'History listed' }).waitFor();
    // The second changed one line of the query.
    assert.deepEqual(second.removed, { name: [], description: [], query: ['-         "has": "newsletter"'] });
    assert.deepEqual(second.added, { name: [], description: [], query: ['+         "has": "customer"'] });
    assert.equal(second.whole, null);
    // The third, the name and the description.
    assert.deepEqual(third.removed, { name: ['- History listed'], description: ['- (none)'], query: [] });
    assert.deepEqual(third.added, { name: ['+ History listed (paid)'], description: ['+ Customers only'], query: [] });
    await page.locator(`li[data-version="${third.version}"]`).getByText('Query unchanged.').waitFor();
    await shot(page, 'segment-history');
  });

  test('restores version 1 from the keyboard as a new version, and the page and the builder show it', async (t) => {
    const { id, versions } = await savedThrice('History restored');
    const first = versions[0];
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await shownVersions(page, 3);
    await page.getByRole('button', { name: `Restore version ${first.version}` }).focus();
    await page.keyboard.press('Enter');
    const yes = page.getByRole('button', { name: 'Yes, restore' });
    await yes.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Yes, restore', 'the confirmation takes the focus');
    await page.keyboard.press('Enter');
    const shown = await shownVersions(page, 4);
    const after = await versionsOf(id);
    assert.equal(after.length, 4);
    const restored = after[3];
    assert.deepEqual(shown.map((v) => v.version), after.map((v) => v.version).reverse());
    assert.deepEqual(
      { name: restored.name, description: restored.description, visitor_event_query: restored.visitor_event_query },
      { name: first.name, description: first.description, visitor_event_query: first.visitor_event_query });
    assert.equal(restored.saved_by, PK);
    // The new version undoes the other two, line for line.
    assert.deepEqual(shown[0].removed.query, ['-         "has": "customer"']);
    assert.deepEqual(shown[0].added.query, ['+         "has": "newsletter"']);
    assert.equal(shown[0].restore, null);
    // The page is drawn again from the server: name, query, counts; the focus stays at the History.
    await page.getByRole('heading', { name: first.name, level: 1 }).waitFor();
    assert.equal(await page.locator('.query-json pre.json').textContent(), JSON.stringify(FIRST_QUERY, null, 2));
    const s = await stats(id);
    await page.locator(`[data-count="members"]:text-is("${s.user_count}")`).waitFor();
    await page.waitForFunction(() => document.activeElement?.id === 'history-title');
    // The editor's builder has the restored query.
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.locator(`#builder [data-pointer="/all/0"]`).getByLabel('Value: has').waitFor();
    assert.equal(await page.locator('#builder [data-pointer="/all/0"]').getByLabel('Value: has').inputValue(), 'newsletter');
    assert.deepEqual(JSON.parse(await page.locator('#query-json').inputValue()), FIRST_QUERY);
  });

  test('the line diff keeps both texts in order and a longest common part of them unchanged', async (t) => {
    const page = await open(t);
    await page.getByLabel('Site UUID').waitFor();
    // Random texts over a few distinct lines, so that they share much.
    let seed = 21;
    const random = (n) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const text = () => Array.from({ length: random(12) }, () => ['{', '}', '"a": 1', '"b": 2', '],'][random(5)]);
    const cases = Array.from({ length: 300 }, () => [text(), text()]);
    const diffs = await page.evaluate(async (pairs) => {
      const { lineDiff } = await import('/console/segment-history.js');
      return pairs.map(([a, b]) => lineDiff(a, b));
    }, cases);
    const lcs = (a, b) => {
      const table = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
      for (let i = a.length - 1; i >= 0; i -= 1) {
        for (let j = b.length - 1; j >= 0; j -= 1) {
          table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
        }
      }
      return table[0][0];
    };
    for (const [[a, b], diff] of cases.map((c, i) => [c, diffs[i]])) {
      const why = `${JSON.stringify(a)} → ${JSON.stringify(b)}: ${JSON.stringify(diff)}`;
      assert.deepEqual(diff.filter((l) => l.op !== 'added').map((l) => l.text), a, why);
      assert.deepEqual(diff.filter((l) => l.op !== 'removed').map((l) => l.text), b, why);
      assert.equal(diff.filter((l) => l.op === 'same').length, lcs(a, b), why);
    }
  });

  test('a Restore from a page loaded before another change says so and changes nothing, at a phone\'s width', async (t) => {
    const { id } = await savedThrice('History stale');
    const page = await open(t, { width: 390, height: 844 });
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    const before = await shownVersions(page, 3);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the segment page is ${overflow}px wider than the screen`);
    const theirs = await api('PATCH', `/fetch/segments/${id}`, { body: { segment: { description: 'theirs' } } });
    assert.equal(theirs.status, 200);
    const saved = await versionsOf(id);
    await page.getByRole('button', { name: `Restore version ${before[2].version}` }).click();
    await page.getByRole('button', { name: 'Yes, restore' }).click();
    await page.getByRole('alert').filter({ hasText: 'changed by someone else' }).waitFor();
    assert.deepEqual(await versionsOf(id), saved, 'no version was made');
    assert.equal((await api('GET', `/fetch/segments/${id}`)).body.data.attributes.description, 'theirs');
    // The page was not drawn again: still the three versions it loaded.
    assert.equal(await page.locator('ol.versions > li').count(), 3);
    await page.getByRole('button', { name: 'Load the current version' }).click();
    const shown = await shownVersions(page, 4);
    assert.deepEqual(shown[0].added.description, ['+ theirs']);
  });
});

// ---- membership history: size, changes, a subscriber's moves -------------------

const DAY = 86_400_000;

/** The UTC midnight starting the first of the last `days` days, today included (as the console asks). */
function periodStart(days, now = Date.now()) {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - (days - 1));
}

async function sendCommands(commands) {
  const answer = await api('POST', '/fetch/commands', { body: { command: commands } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.failed, 0, JSON.stringify(answer.body));
}

async function series(id, days) {
  const answer = await api('GET', '/stats/segment/history', { params: { segment_id: id, from: new Date(periodStart(days)).toISOString(), interval: 'day' } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

/** Every change of segment `id` the feed gives, oldest first. */
async function feed(id) {
  const all = [];
  let params = { since: '1970-01-01T00:00:00Z' };
  for (;;) {
    const answer = await api('GET', `/fetch/segments/${id}/changes`, { params: { ...params, limit: 1000 } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    all.push(...answer.body.data);
    if (answer.body.data.length < 1000) return all;
    params = { after: answer.body.meta.next_cursor };
  }
}

/**
 * A new segment of the subscribers tagged with a tag of its own, once its
 * history has begun. The site is read first, so that its audience is in the
 * server's memory and the new segment's baseline is taken as it is created;
 * failing that, the server's sweep takes it shortly, which this waits for.
 */
async function journaledSegment(name) {
  const tag = `${name.toLowerCase().replace(/[^a-z]+/g, '-')}-${Date.now()}`;
  await stats((await segments())[0].id);
  const created = await api('POST', '/fetch/segments', { body: { segment: { name, visitor_event_query: { tag: { has: tag } } } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.data.id;
  for (let tries = 0; !(await series(id, 30)).meta.history_begins_at; tries += 1) {
    assert.ok(tries < 600, 'the segment\'s history has not begun within a minute');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { id, tag };
}

/** The Changes rows as shown, top to bottom. */
async function shownChanges(page) {
  return page.$$eval('table.changes-table tbody tr', (rows) => rows.map((tr) => ({
    eventId: tr.dataset.eventId,
    at: tr.querySelector('time').getAttribute('datetime'),
    title: tr.querySelector('time').getAttribute('title'),
    move: tr.querySelector('.move').dataset.move,
    email: tr.querySelector('th a').textContent,
    href: tr.querySelector('th a').getAttribute('href'),
    reason: tr.querySelector('.reason').dataset.reason,
    why: tr.querySelector('.reason').textContent,
  })));
}

describe('a segment\'s membership history', () => {
  const [ada, grace] = DEMO_EMAILS;

  test('draws the size over the last 30 and 90 days, with today\'s joins and leaves in its summary, table and bars', async (t) => {
    const { id, tag } = await journaledSegment('Size drawn');
    await sendCommands({ command: 'add_tag', email: ada, query: tag });
    await sendCommands({ command: 'add_tag', email: grace, query: tag });
    await sendCommands({ command: 'remove_tag', email: ada, query: tag });
    const month = await series(id, 30);
    const today = month.data[month.data.length - 1];
    assert.deepEqual([today.members, today.added, today.removed], [1, 2, 1], 'the API counts today\'s moves');
    assert.equal((await stats(id)).user_count, 1);

    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    const summary = page.locator('#size-summary[data-days="30"]');
    await summary.waitFor();
    assert.equal(await summary.textContent(), '1 member now, +2 / −1 in the last 30 days.');
    assert.deepEqual(await summary.evaluate((p) => ({ ...p.dataset })), { members: '1', added: '2', removed: '1', days: '30' });
    // The table, newest first: today's figures, every day the API gives.
    const rows = await page.$$eval('.size-table tbody tr', (trs) => trs.map((tr) => [tr.dataset.at,
      ...['members', 'added', 'removed'].map((k) => Number(tr.querySelector(`[data-value="${k}"]`).textContent.replace(/,/g, '')))]));
    assert.deepEqual(rows, month.data.map((p) => [p.at, p.members, p.added, p.removed]).reverse());
    // The chart: a column with its figures per day, one bar up and one down (today's).
    const chart = page.locator('svg.size-chart');
    assert.equal(await chart.getAttribute('role'), 'img');
    assert.equal(await chart.locator('rect.column').count(), month.data.length);
    assert.equal(await chart.locator('rect.added').count(), 1);
    assert.equal(await chart.locator('rect.removed').count(), 1);
    const titles = await chart.locator('rect.column title').allTextContents();
    assert.match(titles[titles.length - 1], /: 1 members, \+2 joined, −1 left$/);
    await shot(page, 'segment-size');
    // 90 days: the same moves, more days.
    const quarter = await series(id, 90);
    await page.getByRole('button', { name: '90 days' }).click();
    const summary90 = page.locator('#size-summary[data-days="90"]');
    await summary90.waitFor();
    assert.equal(await summary90.textContent(), '1 member now, +2 / −1 in the last 90 days.');
    assert.equal(await page.getByRole('button', { name: '90 days' }).getAttribute('aria-pressed'), 'true');
    assert.equal(await page.locator('.size-table tbody tr').count(), quarter.data.length);
    assert.equal(await chart.count(), 1, 'the 30 days\' chart was replaced');
    assert.equal(await chart.locator('rect.column').count(), quarter.data.length);
  });

  test('lists the leave then the joins newest first, with why and a link to the subscriber, whose page lists both moves, at a phone\'s width', async (t) => {
    const { id, tag } = await journaledSegment('Changes listed');
    await sendCommands({ command: 'add_tag', email: ada, query: tag });
    await sendCommands({ command: 'add_tag', email: grace, query: tag });
    await sendCommands({ command: 'remove_tag', email: ada, query: tag });
    const moves = await feed(id);
    assert.equal(moves.length, 3);

    const page = await open(t, { width: 390, height: 844 });
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.locator('table.changes-table tbody tr').nth(2).waitFor();
    const shown = await shownChanges(page);
    assert.deepEqual(shown.map((c) => c.eventId), moves.map((c) => c.event_id).reverse(), 'newest first');
    assert.deepEqual(shown.map((c) => [c.move, c.email]), [['left', ada], ['joined', grace], ['joined', ada]]);
    for (const [c, m] of shown.map((c, i) => [c, moves[moves.length - 1 - i]])) {
      assert.equal(c.at, m.occurred_at);
      assert.equal(c.title, m.occurred_at, 'the exact instant in the title');
      assert.equal(m.reason, 'data');
      assert.equal(c.reason, 'data');
      assert.equal(c.why, 'their data changed');
      assert.equal(c.href, `#/subscriber?email=${encodeURIComponent(c.email)}`);
    }
    await page.locator('.changes-feed [role="status"]', { hasText: 'every change since' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Show older changes' }).isHidden(), true);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the segment page is ${overflow}px wider than the screen`);

    // The leave's email opens Ada's page, whose Segment history has both of her moves here.
    await page.locator('table.changes-table tbody tr').first().getByRole('link', { name: ada }).click();
    await page.getByRole('heading', { name: ada, level: 1 }).waitFor();
    const here = page.locator(`table.segment-history tbody tr[data-segment-id="${id}"]`);
    await here.nth(1).waitFor();
    const listed = await here.evaluateAll((trs) => trs.map((tr) => ({
      eventId: tr.dataset.eventId,
      at: tr.querySelector('time').getAttribute('datetime'),
      move: tr.querySelector('.move').dataset.move,
      segment: tr.querySelector('th a').textContent,
      href: tr.querySelector('th a').getAttribute('href'),
      reason: tr.querySelector('.reason').dataset.reason,
    })));
    const hers = moves.filter((m) => m.subscriber.email === ada).reverse();
    assert.deepEqual(listed, hers.map((m) => ({
      eventId: m.event_id,
      at: m.occurred_at,
      move: m.type === 'segment.member_added' ? 'joined' : 'left',
      segment: 'Changes listed',
      href: `#/segment/${id}`,
      reason: 'data',
    })));
    assert.deepEqual(listed.map((m) => m.move), ['left', 'joined']);
    // The page lists what the API gives, in its order.
    const api20 = (await api('GET', '/fetch/subscribers/history', { params: { email: ada, limit: 100 } })).body.data;
    assert.deepEqual(await page.$$eval('table.segment-history tbody tr', (trs) => trs.map((tr) => tr.dataset.eventId)), api20.map((m) => m.event_id));
    const subscriberOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(subscriberOverflow <= 0, `the subscriber page is ${subscriberOverflow}px wider than the screen`);
    await shot(page, 'subscriber-history');
  });

  test('shows older changes a page at a time, back to the segment\'s creation', async (t) => {
    const { id, tag } = await journaledSegment('Changes paged');
    await sendCommands(DEMO_EMAILS.map((email) => ({ command: 'add_tag', email, query: tag })));
    await sendCommands(DEMO_EMAILS.map((email) => ({ command: 'remove_tag', email, query: tag })));
    const moves = (await feed(id)).reverse();
    assert.equal(moves.length, 2 * DEMO_EMAILS.length);
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.locator('table.changes-table tbody tr').nth(49).waitFor();
    assert.deepEqual((await shownChanges(page)).map((c) => c.eventId), moves.slice(0, 50).map((c) => c.event_id));
    await page.getByRole('button', { name: 'Show older changes' }).click();
    await page.locator('table.changes-table tbody tr').nth(moves.length - 1).waitFor();
    assert.deepEqual((await shownChanges(page)).map((c) => c.eventId), moves.map((c) => c.event_id));
    await page.locator('.changes-feed [role="status"]', { hasText: 'every change since' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Show older changes' }).isHidden(), true);
  });

  test('reads a busy feed back in windows, narrowed until each fits a page and an import\'s instant paged by cursor, without gaps or repeats', async (t) => {
    const created = await api('POST', '/fetch/segments', { body: { segment: { name: 'Busy feed', visitor_event_query: { tag: { has: 'busy' } } } } });
    const id = created.body.data.id;
    // A feed the server could give: 1,500 moves over the last 50 seconds and
    // 1,100 at one instant (an import), in commit order, served as the API does.
    const now = Date.now();
    const moves = [];
    for (let i = 0; i < 1500; i += 1) moves.push(now - 50_000 + Math.floor(i * 33.3));
    for (let i = 0; i < 1100; i += 1) moves.push(now - 20_000);
    moves.sort((a, b) => a - b);
    const changes = moves.map((at, i) => ({
      event_id: `evt_t${i + 1}`,
      type: i % 2 ? 'segment.member_removed' : 'segment.member_added',
      occurred_at: new Date(at).toISOString(),
      reason: 'data',
      segment: { id, name: 'Busy feed' },
      subscriber: { uuid: `u${i}`, email: `busy${i}@example.com` },
    }));
    let requests = 0;
    const page = await open(t);
    await page.route(`**/api/v1/fetch/segments/${id}/changes*`, (route) => {
      requests += 1;
      const q = new URL(route.request().url()).searchParams;
      const limit = Number(q.get('limit'));
      assert.ok(limit >= 1 && limit <= 1000);
      assert.ok(!(q.has('since') && q.has('after')));
      const start = q.has('after')
        ? Number(q.get('after').slice('i:'.length)) + 1
        : changes.findIndex((c) => Date.parse(c.occurred_at) >= Date.parse(q.get('since')));
      const data = start < 0 ? [] : changes.slice(start, start + limit);
      const next = data.length ? `i:${start + data.length - 1}` : null;
      return route.fulfill({ status: 200, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify({ data, meta: { next_cursor: next } }) });
    });
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    const more = page.getByRole('button', { name: 'Show older changes' });
    const rows = page.locator('table.changes-table tbody tr');
    const end = page.locator('.changes-feed [role="status"]', { hasText: 'every change since' });
    await rows.nth(49).waitFor();
    // Older a page at a time, until the console has read back to the segment's creation.
    for (let shown = 50; !(await end.count()); shown = await rows.count()) {
      assert.ok(shown <= changes.length, `${shown} rows for ${changes.length} changes`);
      await more.click();
      await page.waitForFunction((n) => document.querySelectorAll('table.changes-table tbody tr').length > n
        || /every change since/.test(document.querySelector('.changes-feed [role="status"]')?.textContent ?? ''), shown);
    }
    const listed = await page.$$eval('table.changes-table tbody tr', (trs) => trs.map((tr) => tr.dataset.eventId));
    assert.deepEqual(listed, changes.map((c) => c.event_id).reverse(), 'every change once, newest first');
    // Each window read once, bar the few that are narrowed (26 requests when written).
    assert.ok(requests <= 40, `${requests} requests to read ${changes.length} changes`);
  });

  test('says when the history begins rather than drawing an empty chart, and draws it once begun', async (t) => {
    const { id } = await journaledSegment('History not begun');
    const page = await open(t);
    // As the API answers before the server has taken the segment's baseline.
    await page.route('**/api/v1/stats/segment/history*', (route) => route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ data: [], meta: { history_begins_at: null } }),
    }));
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.locator('[data-history="not-begun"]', { hasText: 'history begins when the server takes its baseline' }).waitFor();
    assert.equal(await page.locator('svg.size-chart').count(), 0);
    assert.equal(await page.locator('#size-summary').count(), 0);
    await page.unroute('**/api/v1/stats/segment/history*');
    await page.getByRole('button', { name: 'Check again' }).click();
    const summary = page.locator('#size-summary[data-days="30"]');
    await summary.waitFor();
    assert.equal(await summary.textContent(), '0 members now, +0 / −0 in the last 30 days.');
    await page.locator('svg.size-chart').waitFor();
  });
});

// ---- includes and excludes by hand -------------------------------------------

/** Every subscriber of segment `id`'s `list` (`includes` or `excludes`), as the API lists them. */
async function handList(id, list) {
  const answer = await api('GET', `/fetch/segments/${id}/${list}`, { params: { limit: 1000 } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.data;
}

/** Waits until the segment page's Members figure reads `n`. */
async function membersShown(page, n) {
  await page.locator('.counts [data-count="members"]', { hasText: new RegExp(`^${n.toLocaleString('en')}$`) }).waitFor();
}

/** A list's rows as shown, top to bottom. */
async function shownHandList(page, list) {
  return page.$$eval(`[data-list="${list}"] table.manual-table tbody tr`, (rows) => rows.map((tr) => ({
    uuid: tr.dataset.uuid,
    email: tr.querySelector('th a').textContent,
    href: tr.querySelector('th a').getAttribute('href'),
    at: tr.querySelector('time').getAttribute('datetime'),
  })));
}

/** What the console said of the last edit of `list` (`added` or `removed`), by outcome; fails on an error shown instead. */
async function editReport(page, list, edit) {
  const box = page.locator(`.manual-report [data-list="${list}"][data-edit="${edit}"]`);
  const refused = page.locator(`[data-list="${list}"] .manual-report .error`);
  await box.or(refused).waitFor();
  assert.equal(await refused.count(), 0, `the edit was refused: ${await refused.allTextContents()}`);
  return box.evaluate((el) => Object.fromEntries([...el.querySelectorAll('p[data-outcome]')].map((p) => [p.dataset.outcome, p.textContent])));
}

describe('a segment\'s includes and excludes by hand', () => {
  const [ada, grace, alan] = DEMO_EMAILS;

  test('includes two emails, one no subscriber has, which is reported; the counts, members, changes and segments list follow; Remove takes it back', async (t) => {
    const { id } = await journaledSegment('Included by hand');
    assert.equal((await stats(id)).user_count, 0);
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await membersShown(page, 0);
    await page.getByText('Included subscribers are members whatever the conditions say; excluded ones never are, even if included.').waitFor();
    await page.locator('[data-list="includes"] .empty', { hasText: 'Nobody is included by hand.' }).waitFor();

    await page.getByLabel('Emails to include').fill(`${ada},\n  nobody-at-all@example.com`);
    await page.getByRole('button', { name: 'Include', exact: true }).click();
    assert.deepEqual(await editReport(page, 'includes', 'added'), {
      changed: `Included: ${ada}.`,
      unknown: 'No subscriber has this email, so nothing was done for it: nobody-at-all@example.com.',
    });
    assert.equal(await page.getByLabel('Emails to include').inputValue(), '', 'the text area is emptied once saved');
    // The API holds Ada alone, and the page shows what it holds.
    const held = await handList(id, 'includes');
    assert.deepEqual(held.map((e) => e.email), [ada]);
    await page.locator('[data-list="includes"] table.manual-table').waitFor();
    assert.deepEqual(await shownHandList(page, 'includes'), held.map((e) => ({ uuid: e.uuid, email: e.email, href: `#/subscriber?email=${encodeURIComponent(e.email)}`, at: e.added_at })));
    // The counts, the size, the members and the changes are read again.
    assert.equal((await stats(id)).user_count, 1);
    await membersShown(page, 1);
    assert.equal(await page.locator('#size-summary[data-members="1"]').textContent(), '1 member now, +1 / −0 in the last 30 days.');
    await page.locator('table.members tbody tr th a', { hasText: ada }).waitFor();
    await page.locator('table.changes-table tbody tr', { hasText: ada }).locator('.reason[data-reason="manual"]', { hasText: 'added or removed by hand' }).waitFor();
    await shot(page, 'segment-by-hand');

    // The segments list counts the includes too.
    await page.getByRole('link', { name: 'Segments', exact: true }).first().click();
    const row = (await listedCounts(page)).find((r) => r.id === id);
    assert.deepEqual(row.counts.slice(0, 1), [1]);

    // Remove takes Ada out again.
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await membersShown(page, 1);
    await page.getByRole('button', { name: `Remove ${ada} from included by hand` }).click();
    assert.deepEqual(await editReport(page, 'includes', 'removed'), { changed: `No longer included: ${ada}.` });
    await page.locator('[data-list="includes"] .empty', { hasText: 'Nobody is included by hand.' }).waitFor();
    await membersShown(page, 0);
    assert.deepEqual(await handList(id, 'includes'), []);
    assert.equal((await stats(id)).user_count, 0);
  });

  test('excludes a member, who leaves the count, and Why? says first who is excluded and who included by hand, at a phone\'s width', async (t) => {
    const { id, tag } = await journaledSegment('Excluded by hand');
    await sendCommands([ada, grace].map((email) => ({ command: 'add_tag', email, query: tag })));
    assert.equal((await stats(id)).user_count, 2);
    const page = await open(t, { width: 390, height: 844 });
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await membersShown(page, 2);

    await page.getByLabel('Emails to exclude').fill(ada);
    await page.getByRole('button', { name: 'Exclude', exact: true }).click();
    assert.deepEqual(await editReport(page, 'excludes', 'added'), { changed: `Excluded: ${ada}.` });
    await membersShown(page, 1);
    assert.equal((await stats(id)).user_count, 1);
    assert.deepEqual((await shownHandList(page, 'excludes')).map((r) => r.email), [ada]);
    // Excluding her again changes nothing, and says so.
    await page.getByLabel('Emails to exclude').fill(ada.toUpperCase());
    await page.getByRole('button', { name: 'Exclude', exact: true }).click();
    assert.deepEqual(await editReport(page, 'excludes', 'added'), { unchanged: `Already excluded: ${ada.toUpperCase()}.` });
    // Alan, outside the query, included.
    await page.getByLabel('Emails to include').fill(alan);
    await page.getByRole('button', { name: 'Include', exact: true }).click();
    assert.deepEqual(await editReport(page, 'includes', 'added'), { changed: `Included: ${alan}.` });
    await membersShown(page, 2);

    const why = async (email) => {
      await page.getByLabel('Email', { exact: true }).fill(email);
      await page.getByRole('button', { name: 'Why?' }).click();
      await page.locator('.why-result .verdict', { hasText: email }).waitFor();
      const answer = (await api('POST', `/fetch/segments/${id}/match`, { body: { email } })).body.data;
      const shown = await page.$eval('.why-result', (el) => ({
        first: el.firstElementChild.className,
        manual: el.querySelector('.by-hand')?.dataset.manual ?? null,
        byHand: el.querySelector('.by-hand')?.textContent ?? null,
        matched: el.querySelector('.verdict').dataset.matched,
        root: el.querySelector('.explain > li').dataset.matched,
      }));
      return { answer, shown };
    };
    // Ada holds the query's condition but is excluded: said first, and she is out.
    const excluded = await why(ada);
    assert.equal(excluded.answer.manual, 'excluded by hand');
    assert.deepEqual(excluded.shown, {
      first: 'by-hand no',
      manual: 'excluded by hand',
      byHand: 'Excluded by hand: never a member, whatever the conditions say.',
      matched: 'false',
      root: 'true',
    });
    // Alan does not hold it but is included: said first, and he is in.
    const included = await why(alan);
    assert.equal(included.answer.manual, 'included by hand');
    assert.deepEqual(included.shown, {
      first: 'by-hand yes',
      manual: 'included by hand',
      byHand: 'Included by hand: a member whatever the conditions say.',
      matched: 'true',
      root: 'false',
    });
    // Grace is a member by the query alone: nothing said of lists.
    const plain = await why(grace);
    assert.equal(plain.answer.manual, undefined);
    assert.deepEqual(plain.shown, { first: 'verdict yes', manual: null, byHand: null, matched: 'true', root: 'true' });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the segment page is ${overflow}px wider than the screen`);
  });

  test('takes emails split by commas, spaces and new lines, pages a long list with Show more, removes them all at once, and refuses more than 1,000 or a non-email', async (t) => {
    const created = await api('POST', '/fetch/segments', { body: { segment: { name: 'Many by hand', visitor_event_query: { tag: { has: 'nobody-has-this' } } } } });
    assert.equal(created.status, 201);
    const id = created.body.data.id;
    const emails = DEMO_EMAILS.slice(0, 30);
    const typed = emails.map((e, i) => e + [', ', ' ', '\n', ';'][i % 4]).join('') + `\n${emails[0].toUpperCase()}`;
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await membersShown(page, 0);
    const box = page.getByLabel('Emails to include');
    await box.fill(typed);
    await page.getByRole('button', { name: 'Include', exact: true }).click();
    const added = await editReport(page, 'includes', 'added');
    assert.deepEqual(Object.keys(added), ['changed']);
    assert.match(added.changed, new RegExp(`^Included \\(30\\): ${emails.slice(0, 10).join(', ')} and 20 more\\.$`));
    await membersShown(page, 30);
    // 25 at a time, in the API's order.
    const held = await handList(id, 'includes');
    assert.deepEqual(held.map((e) => e.email).sort(), [...emails].sort());
    const rows = page.locator('[data-list="includes"] table.manual-table tbody tr');
    await rows.nth(24).waitFor();
    assert.equal(await rows.count(), 25);
    const more = page.locator('[data-list="includes"]').getByRole('button', { name: 'Show more' });
    await more.click();
    await rows.nth(29).waitFor();
    assert.deepEqual((await shownHandList(page, 'includes')).map((r) => r.uuid), held.map((e) => e.uuid));
    assert.equal(await more.isHidden(), true);

    // All of them out at once.
    await box.fill(emails.join(' '));
    await page.locator('[data-list="includes"]').getByRole('button', { name: 'Remove these' }).click();
    const removed = await editReport(page, 'includes', 'removed');
    assert.match(removed.changed, /^No longer included \(30\): /);
    await page.locator('[data-list="includes"] .empty').waitFor();
    await membersShown(page, 0);

    // More than 1,000 are refused before anything is sent; so is a non-email, named.
    await box.fill(Array.from({ length: 1001 }, (_, i) => `someone${i}@example.com`).join('\n'));
    await page.getByRole('button', { name: 'Include', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'That is 1,001 emails: at most 1,000 at once.' }).waitFor();
    await box.fill(`${ada}, not-an-email`);
    await page.getByRole('button', { name: 'Include', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: '“not-an-email” is invalid' }).waitFor();
    assert.deepEqual(await handList(id, 'includes'), [], 'nothing of a refused edit is kept');
  });
});

// ---- comparing segments ------------------------------------------------------

/** The overlap of `names`, asked of the API in the list's order (the picker's). */
async function overlapOf(names) {
  const listed = await segments();
  const ids = listed.filter((s) => names.includes(s.attributes.name)).map((s) => s.id);
  assert.equal(ids.length, names.length);
  const answer = await api('POST', '/stats/overlap', { body: { segment_ids: ids } });
  assert.equal(answer.status, 200);
  return answer.body.data;
}

/** The emails of a region from the members API: in every segment of `in`, none of `out`. */
async function regionEmails(region) {
  const sets = async (ids) => Promise.all(ids.map(async (id) => new Set((await allMembers(id)).map((m) => m.attributes.email))));
  const inside = await sets(region.in);
  const outside = await sets(region.out);
  return [...inside[0]].filter((e) => inside.every((s) => s.has(e)) && !outside.some((s) => s.has(e))).sort();
}

async function compare(page, names) {
  await page.getByRole('link', { name: 'Compare', exact: true }).click();
  await page.getByRole('heading', { name: 'Compare segments', level: 1 }).waitFor();
  for (const name of names) await page.getByLabel(name, { exact: true }).check();
  await page.getByRole('button', { name: 'Compare', exact: true }).click();
  await page.locator('table.regions').waitFor();
}

/** A region's members once opened: the count it says and the emails listed. */
async function openedRegion(page) {
  const note = page.locator('.region-members [data-region-count]');
  await note.waitFor();
  return {
    count: Number(await note.getAttribute('data-region-count')),
    emails: (await page.$$eval('.region-members ul.sample a', (as) => as.map((a) => a.textContent))).sort(),
  };
}

describe('comparing segments', () => {
  test('draws three segments as a Venn diagram and a table with the API\'s counts, and opens a region\'s members, again after a reload', async (t) => {
    const page = await open(t);
    await signIn(page);
    const names = ['VIP customers', 'Newsletter subscribers', 'agency leads'];
    const expected = await overlapOf(names);
    await compare(page, names);
    await page.locator('svg.venn').waitFor();
    assert.equal(await page.locator('[data-overlap="union"]').textContent(), String(expected.union));
    assert.equal(await page.locator('[data-overlap="intersection"]').textContent(), String(expected.intersection));
    const want = expected.regions.map((r) => [r.in.join(','), String(r.user_count)]);
    assert.equal(want.length, 7);
    const drawn = await page.$$eval('svg.venn a.venn-region', (as) => as.map((a) => [a.dataset.region, a.querySelector('text').textContent]));
    assert.deepEqual(drawn, want);
    assert.equal(await page.locator('svg.venn circle').count(), 3);
    const tabled = await page.$$eval('table.regions tbody tr', (rows) => rows.map((r) => [r.dataset.region, r.querySelector('td a').textContent]));
    assert.deepEqual(tabled, want);
    await shot(page, 'compare');

    // The fullest region, from the diagram: its members are those the
    // members API gives for the segments it is in and out of.
    const fullest = expected.regions.reduce((a, b) => (b.user_count > a.user_count ? b : a));
    assert.ok(fullest.user_count > 0);
    await page.locator(`svg.venn a.venn-region[data-region="${fullest.in.join(',')}"]`).click();
    const opened = await openedRegion(page);
    assert.equal(opened.count, fullest.user_count);
    assert.deepEqual(opened.emails, await regionEmails(fullest));
    assert.match(page.url(), new RegExp(`#/compare\\?ids=${expected.segment_ids.join(',')}&region=${fullest.in.join(',')}$`));

    await page.reload();
    const again = await openedRegion(page);
    assert.deepEqual(again, opened);
  });

  test('lists four segments\' 15 regions in a table without a diagram, a region opened from it by keyboard', async (t) => {
    const page = await open(t);
    await signIn(page);
    const names = ['VIP customers', 'Newsletter subscribers', 'Dormant trial users', 'agency leads'];
    const expected = await overlapOf(names);
    await compare(page, names);
    assert.equal(await page.locator('svg.venn').count(), 0);
    const tabled = await page.$$eval('table.regions tbody tr', (rows) => rows.map((r) => [r.dataset.region, r.querySelector('td a').textContent]));
    assert.deepEqual(tabled, expected.regions.map((r) => [r.in.join(','), String(r.user_count)]));
    const row = expected.regions.find((r) => r.in.length === 1 && r.user_count > 0) || expected.regions[0];
    const link = page.locator(`table.regions tr[data-region="${row.in.join(',')}"] td a`);
    await link.focus();
    await page.keyboard.press('Enter');
    const opened = await openedRegion(page);
    assert.equal(opened.count, row.user_count);
    assert.deepEqual(opened.emails, await regionEmails(row));
    // Focus moved to the region's heading.
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'region-title');
  });

  test('asks for two to five segments before comparing', async (t) => {
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'Compare', exact: true }).click();
    await page.getByLabel('VIP customers', { exact: true }).check();
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    await page.getByText('Pick 2 to 5 segments (1 picked).').waitFor();
    assert.equal(await page.locator('table.regions').count(), 0);
  });
});

// ---- the builder against the query parser -------------------------------------

// What the parser accepts, written from it by the integration tests
// (tests/api/console.rs): the kinds of condition and, for each place that
// takes operators, which ones.
const VOCABULARY = JSON.parse(await readFile(new URL('vocabulary.json', import.meta.url), 'utf8'));

/** `[path, list]` of every list in the vocabulary: `email`, `event.where`, … */
function vocabularyLists(value, path = []) {
  if (Array.isArray(value)) return [[path.join('.'), value]];
  return Object.entries(value).flatMap(([key, inner]) => vocabularyLists(inner, [...path, key]));
}

// ---- for a marketer: words, money, sentences, inputs ---------------------------

/** A subscriber made through the API with a field, a tag and one purchase of $606.50 ten days ago. */
async function marketerSubscriber(email) {
  const date = new Date(Date.now() - 10 * 86400000).toISOString();
  const answer = await api('POST', '/batch/events', { body: { events: [
    { type: '$subscribe', email, fields: { plan: 'pro', first_name: 'Mia' } },
    { type: '$purchase', email, date, details: { unique: { key: `order-${email}` }, value: { currency: 'USD', amount: 60650 } } },
  ] } });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const tagged = await api('POST', '/fetch/commands', { body: { command: { command: 'add_tag', email, query: 'vip' } } });
  assert.equal(tagged.status, 200, JSON.stringify(tagged.body));
}

async function createSegment(name, query) {
  const created = await api('POST', '/fetch/segments', { body: { segment: { name, visitor_event_query: query } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.data.id;
}

/** Every ```json block of docs/query-language.md. */
async function grammarExamples() {
  const doc = await readFile(new URL('../../docs/query-language.md', import.meta.url), 'utf8');
  return [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]));
}

/** Elements that scroll sideways (or a page wider than the screen): none at a phone's width. */
async function sidewaysScrollers(page) {
  return page.evaluate(() => {
    const found = [];
    const doc = document.documentElement.scrollWidth - document.documentElement.clientWidth;
    if (doc > 0) found.push(`the page, by ${doc}px`);
    for (const el of document.querySelectorAll('body *')) {
      const style = getComputedStyle(el);
      if (!['auto', 'scroll'].includes(style.overflowX) || el.clientWidth === 0) continue;
      if (el.scrollWidth > el.clientWidth + 1) found.push(`${el.tagName.toLowerCase()}.${el.className}, by ${el.scrollWidth - el.clientWidth}px`);
    }
    return found;
  });
}

describe('the console for a marketer', () => {
  test('Why? says each condition in words, with the subscriber\'s value and the threshold, pointers and raw facts under Details', async (t) => {
    const email = 'mia.words@example.com';
    await marketerSubscriber(email);
    const nobody = await createSegment('Nobody tagged never-had', { tag: { has: 'never-had' } });
    const id = await createSegment('Why in words', { all: [
      { event: { type: '$purchase', when: { within_last: { days: 90 } }, sum: { of: 'value.amount', more_than: 25000 } } },
      { tag: { has: 'vip' } },
      { field: { key: 'plan', equals: 'team' } },
      { subscribed: true },
      { segment: { member_of: nobody } },
      { event: { type: '$purchase', count: { at_least: 2 } } },
      { not: { event: { type: '$pageview', when: { within_last: { days: 30 } } } } },
    ] });
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByRole('button', { name: 'Why?' }).click();
    await page.locator('.verdict[data-matched="false"]').waitFor();
    const said = await page.$$eval('.explain li', (items) => items.map((li) => [li.dataset.pointer, li.querySelector(':scope > .node .sentence').textContent]));
    assert.deepEqual(said, [
      ['', 'All of these: no'],
      ['/all/0', 'Spent $606.50 on purchases in the last 90 days; needs more than $250: yes'],
      ['/all/1', 'Tagged vip: yes'],
      ['/all/2', 'Field plan is pro; needs team: no'],
      ['/all/3', 'Has not unsubscribed: yes'],
      ['/all/4', 'Member of Nobody tagged never-had: no'],
      ['/all/5', '1 purchase; needs at least 2: no'],
      ['/all/6', 'Not the following: yes'],
      ['/all/6/not', 'No page views in the last 30 days; needs at least one: no'],
    ]);
    // The pointers and raw facts are there, under Details, for every node of the answer.
    const raw = page.locator('.explain-raw');
    assert.equal(await raw.isVisible(), false, 'Details starts closed');
    await page.getByText('Details: each condition’s place in the query').click();
    const answer = await api('POST', `/fetch/segments/${id}/match`, { body: { email } });
    const walk = (n) => [n, ...(n.children || []).flatMap(walk)];
    for (const n of walk(answer.body.data.explanation)) {
      await raw.locator(`li[data-pointer="${n.at}"][data-matched="${n.matched}"]`).first().waitFor();
    }
    await raw.locator('li[data-pointer="/all/0"] .facts code', { hasText: '60650' }).waitFor();
    await page.locator('.explain-details summary').click();
    await shot(page, 'segment-why', { part: page.locator('section[aria-labelledby="why-title"]') });
    await shot(page, 'segment-query', { part: page.locator('.query-panel') });
  });

  test('states a segment\'s query as a sentence beside its JSON, for every example of the query language, never failing on an odd one', async (t) => {
    const id = await createSegment('Repeat customers', { all: [
      { tag: { has: 'customer' } },
      { event: { type: '$purchase', when: { within_last: { days: 90 } }, count: { at_least: 2 } } },
    ] });
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${id}`);
    const sentence = page.locator('.query-sentence');
    await sentence.waitFor();
    assert.equal(await sentence.textContent(), 'Subscribers who are tagged customer and purchased at least twice in the last 90 days.');
    assert.deepEqual(await sentence.locator('em').allTextContents(), ['customer']);
    assert.ok(await page.locator('.query-json pre.json').isVisible(), 'the JSON is shown beside the sentence');
    // Every example of docs/query-language.md reads as a sentence naming no
    // condition neutrally; odd shapes read neutrally and never throw.
    const examples = await grammarExamples();
    assert.ok(examples.length > 50, `only ${examples.length} examples found`);
    const odd = [null, [], 'text', { tag: 5 }, { event: [] }, { a: 1, b: 2 }, { any: [{ not: {} }] }, { field: { key: 'x', shiny: 1 } },
      { groups: [{ nope: [] }] }, { all: [{ email: 'x' }] }, { sample: {} }, { segment: { member_of: '999' } }];
    const read = await page.evaluate(async ([good, bad]) => {
      const { querySentence } = await import('/console/words.js');
      const text = (q) => {
        const box = document.createElement('p');
        box.append(...querySentence(q).map((c) => (typeof c === 'string' ? c : c)));
        return box.textContent;
      };
      return { good: good.map(text), bad: bad.map(text) };
    }, [examples, odd]);
    read.good.forEach((text, i) => {
      assert.ok(!/cannot put into words|undefined|\[object|NaN/.test(text), `${JSON.stringify(examples[i])} reads “${text}”`);
    });
    read.bad.forEach((text, i) => assert.ok(text.length > 0, `${JSON.stringify(odd[i])} reads nothing`));
    const at = (q) => read.good[examples.findIndex((e) => JSON.stringify(e) === JSON.stringify(q))];
    assert.equal(at({ event: { type: '$purchase', when: { within_last: { months: 12 } }, sum: { of: 'value.amount', more_than: 100000 } } }),
      'Subscribers who spent more than $1,000 on purchases in the last 12 months.');
    assert.equal(at({ not: { event: { type: '$open_email', when: { within_last: { days: 60 } } } } }),
      'Subscribers who never opened an email in the last 60 days.');
    assert.equal(at({ email: { domain: 'gmail.com' } }), 'Subscribers who have an email address with the domain gmail.com.');
    assert.equal(at({ field: { key: 'plan', in: ['team', 'enterprise'] } }), 'Subscribers who have the field plan equal to team or enterprise.');
    assert.equal(at({}), 'Every subscriber of the site.');
  });

  test('money is shown and typed in units with its currency, the saved query keeping cents and staying byte-identical when not edited', async (t) => {
    const usd = { event: { type: '$purchase', when: { within_last: { days: 90 } }, sum: { of: 'value.amount', more_than: 25000 } } };
    const eur = { event: { type: '$purchase', where: { 'value.currency': { equals: 'EUR' }, 'value.amount': { at_least: 1999 } } } };
    const usdId = await createSegment('Money in dollars', usd);
    const eurId = await createSegment('Money in euros', eur);
    const saved = async (id) => JSON.stringify((await api('GET', `/fetch/segments/${id}`)).body.data.attributes.visitor_event_query);
    const before = await saved(usdId);
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/segment/${usdId}/edit`);
    const amount = page.locator('#builder [data-pointer="/event/sum/more_than"] input[data-money]');
    await amount.waitFor();
    assert.equal(await amount.inputValue(), '250');
    assert.equal(await amount.getAttribute('data-money'), 'USD');
    assert.equal(await page.locator('#builder [data-pointer="/event/sum/more_than"] .currency').textContent(), '$');
    await page.locator('[data-live-count]').waitFor();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Money in dollars', level: 1, exact: true }).waitFor();
    assert.equal(await saved(usdId), before, 'saved as it was');
    // 300.5 typed is 30050 cents.
    await page.goto(`${CONSOLE}#/segment/${usdId}/edit`);
    await amount.fill('300.5');
    await page.waitForFunction(() => JSON.parse(document.getElementById('query-json')?.value || '{}').event?.sum.more_than === 30050);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Money in dollars', level: 1, exact: true }).waitFor();
    assert.equal(JSON.parse(await saved(usdId)).event.sum.more_than, 30050);
    assert.equal(await page.locator('.query-sentence').textContent(), 'Subscribers who spent more than $300.50 on purchases in the last 90 days.');
    // A query naming the currency is shown in it.
    await page.goto(`${CONSOLE}#/segment/${eurId}/edit`);
    const euros = page.locator('#builder [data-pointer="/event/where/value.amount/at_least"] input[data-money]');
    await euros.waitFor();
    assert.equal(await euros.inputValue(), '19.99');
    assert.equal(await page.locator('#builder [data-pointer="/event/where/value.amount/at_least"] .currency').textContent(), '€');
    await page.goto(`${CONSOLE}#/segment/${eurId}`);
    assert.equal(await page.locator('.query-sentence').textContent(),
      'Subscribers who purchased with value.currency equal to EUR and value.amount at least €19.99.');
  });

  test('the editor shows a problem only once its field is left or a save is tried, and asks for no count while a new condition is blank', async (t) => {
    const page = await open(t);
    const refused = [];
    page.on('response', (r) => {
      if (r.status() === 422) refused.push(`${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    await signIn(page);
    await page.getByRole('link', { name: 'New segment' }).click();
    await page.locator('[data-live-count]').waitFor();
    const builder = page.locator('#builder');
    await builder.getByRole('button', { name: '+ condition' }).click();
    const has = builder.locator('[data-pointer="/all/0"]').getByLabel('Value: has');
    await has.waitFor();
    await page.locator('[data-waiting]').waitFor();
    assert.equal(await page.locator('.field-error').count(), 0, 'no problem shown before anything was typed');
    assert.deepEqual(refused, [], 'no count asked for with a blank tag');
    // An event condition without a type is any event: valid, counted at once.
    await builder.getByRole('button', { name: '+ condition' }).last().click();
    await builder.locator('[data-pointer="/all/1"]').getByLabel('Condition').first().selectOption('event');
    const type = builder.locator('[data-pointer="/all/1"]').getByLabel('Event type');
    assert.equal(await type.getAttribute('placeholder'), 'blank: any type');
    await builder.locator('[data-pointer="/all/1"]').getByLabel('Condition').first().selectOption('tag');
    // Leaving the blank tag shows its problem, there only.
    await has.focus();
    await page.keyboard.press('Tab');
    const problem = builder.locator('[data-pointer="/all/0/tag/has"] .field-error');
    await problem.waitFor();
    assert.equal(await builder.locator('[data-pointer="/all/1"] .field-error').count(), 0, 'not at the condition not visited');
    assert.deepEqual(refused, ['POST /api/v1/fetch/segments/preview'], 'the count is asked for once the blank was left');
    // Trying to save shows every problem.
    await page.getByLabel('Name').fill('Problems shown on save');
    await page.getByRole('button', { name: 'Create segment' }).click();
    await builder.locator('[data-pointer="/all/1/tag/has"] .field-error').waitFor();
    await has.fill('newsletter');
    await builder.locator('[data-pointer="/all/1"]').getByLabel('Value: has').fill('trial');
    await page.locator('[data-live-count]').waitFor();
    assert.equal(await page.locator('.field-error').count(), 0);
  });

  test('tag, field key and event type boxes suggest what the site has, and a tag nobody has is noted, not refused', async (t) => {
    await createSegment('Purchased ever', { event: { type: '$purchase' } });
    const tags = (await api('GET', '/fetch/tags')).body.data.map((tag) => tag.attributes.name);
    const fields = (await api('GET', '/fetch/fields')).body.data.map((f) => f.attributes.key);
    assert.ok(tags.includes('newsletter') && fields.includes('plan'));
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'New segment' }).click();
    const builder = page.locator('#builder');
    const who = builder.getByLabel('Who is in the segment');
    const options = (id) => page.locator(`datalist#${id} option`).evaluateAll((os) => os.map((o) => o.value));
    await who.selectOption('tag');
    const has = builder.getByLabel('Value: has', { exact: true });
    assert.equal(await has.getAttribute('list'), 'suggest-tags');
    assert.deepEqual(await options('suggest-tags'), tags);
    await has.fill('newsletter');
    assert.equal(await builder.locator('.note-unknown').count(), 0);
    await has.fill('Customer-to-be');
    const note = builder.locator('[data-pointer="/tag/has"] .note-unknown');
    await note.waitFor();
    assert.equal(await note.textContent(), 'No subscriber has this tag yet: “Customer-to-be”.');
    await page.locator('[data-live-count="0"]').waitFor();
    assert.equal(await page.locator('.field-error').count(), 0, 'a note, not an error');
    await has.fill(' NEWSLETTER ');
    await note.waitFor({ state: 'detached' });
    await who.selectOption('field');
    assert.equal(await builder.getByLabel('Field key').getAttribute('list'), 'suggest-fields');
    assert.deepEqual(await options('suggest-fields'), fields);
    await who.selectOption('event');
    assert.equal(await builder.getByLabel('Event type').getAttribute('list'), 'suggest-event-types');
    assert.ok((await options('suggest-event-types')).includes('$purchase'), 'the event types the site\'s segments name');
    const anyEvent = await api('POST', '/fetch/segments/preview', { body: { visitor_event_query: { event: {} } } });
    await page.locator(`[data-live-count="${anyEvent.body.data.user_count}"]`).waitFor();
    await shot(page, 'editor-suggest');
  });

  test('at a phone\'s width (390 px) no page scrolls sideways and no table column is cut off', async (t) => {
    const gone = await createSegment('Discarded for the phone', { tag: { has: 'trial' } });
    assert.equal((await api('DELETE', `/fetch/segments/${gone}`)).status, 200);
    const listed = await segments();
    const withMembers = [];
    for (const s of listed) if ((await stats(s.id)).user_count > 0) withMembers.push(s);
    assert.ok(withMembers.length >= 2);
    const member = (await allMembers(withMembers[0].id))[0].attributes.email;
    const page = await open(t, { width: 390, height: 844 });
    await signIn(page);
    await listedCounts(page);
    const inView = async (selector) => {
      const boxes = await page.locator(selector).evaluateAll((els) => els.map((el) => el.getBoundingClientRect().right));
      assert.ok(boxes.length > 0, `nothing matches ${selector}`);
      for (const right of boxes) assert.ok(right <= 390, `${selector} ends at ${right}px, past the screen`);
    };
    const check = async (what) => assert.deepEqual(await sidewaysScrollers(page), [], `${what} scrolls sideways`);
    await inView('table.segments td[data-count="unsubscribed"]');
    assert.equal(await page.locator('table.segments td[data-count="members"]').first().getAttribute('data-label'), 'Members');
    await check('the segments list');
    await shot(page, 'segments-phone', { fullPage: false });
    await page.goto(`${CONSOLE}#/discarded`);
    await page.getByRole('button', { name: 'Restore Discarded for the phone' }).first().waitFor();
    await inView('table button');
    await check('the discarded segments');
    await page.goto(`${CONSOLE}#/segment/${withMembers[0].id}`);
    await page.locator('table.members tbody tr').first().waitFor();
    await page.locator('.size-summary').waitFor();
    await page.getByLabel('Email', { exact: true }).fill(member);
    await page.getByRole('button', { name: 'Why?' }).click();
    await page.locator('.explain').waitFor();
    await page.locator('.explain-details summary').click();
    await inView('table.members td');
    await check('a segment\'s page');
    await page.goto(`${CONSOLE}#/subscriber?email=${encodeURIComponent(member)}`);
    await page.locator('table.events tbody tr').first().waitFor();
    await inView('table.events td');
    await check('a subscriber\'s page');
    await page.goto(`${CONSOLE}#/subscribers`);
    await page.locator('table.subscribers tbody tr').first().waitFor();
    await inView('table.subscribers td');
    await check('the subscribers');
    await page.goto(`${CONSOLE}#/compare?ids=${withMembers[0].id},${withMembers[1].id}`);
    await page.locator('table.regions tbody tr').first().waitFor();
    await inView('table.regions td');
    await check('the comparison');
    await page.goto(`${CONSOLE}#/segment/${withMembers[0].id}/edit`);
    await page.locator('[data-live-count]').waitFor();
    await check('the editor');
  });

  test('a subscriber\'s event details are readable rows, the amount as money', async (t) => {
    const email = 'mia.details@example.com';
    await marketerSubscriber(email);
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/subscriber?email=${encodeURIComponent(email)}`);
    const purchase = page.locator('table.events tbody tr', { hasText: '$purchase' });
    await purchase.waitFor();
    const rows = await purchase.locator('.detail-rows > div').evaluateAll((divs) => divs.map((d) => [d.querySelector('dt').textContent, d.querySelector('dd').textContent]));
    assert.deepEqual(rows, [['unique.key', `order-${email}`], ['value.currency', 'USD'], ['value.amount', '$606.50']].sort((a, b) => {
      const order = rows.map((r) => r[0]);
      return order.indexOf(a[0]) - order.indexOf(b[0]);
    }));
    assert.equal(await purchase.locator('code.details').count(), 0, 'no raw JSON');
  });
});

// ---- the subscribers page ------------------------------------------------------

/** Every subscriber of the site, as the search lists them with no text. */
async function everySubscriber() {
  const all = [];
  let cursor = '';
  for (;;) {
    const page = await api('GET', '/fetch/subscribers/search', { params: { limit: 100, cursor } });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    all.push(...page.body.data);
    if (!page.body.meta.next_cursor) return all;
    cursor = page.body.meta.next_cursor;
  }
}

/** The emails the results of a search for `q` list, in order, once they have `n` rows. */
async function listedEmails(page, n, q = '') {
  await page.waitForFunction(([want, text]) => {
    const results = document.querySelector('.subscriber-results');
    return results?.dataset.q === text && results.querySelectorAll('table.subscribers tbody tr').length === want;
  }, [n, q]);
  return page.$$eval('table.subscribers tbody th a', (links) => links.map((a) => a.textContent));
}

/** `12 March 2026`, as the console writes a day. */
function day(iso) {
  return new Date(iso).toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric' });
}

describe('the subscribers page', () => {
  test('lists everyone in email order a page at a time, and finds by an email\'s or a name\'s start or a tag\'s name, each linking to their page', async (t) => {
    // Someone found by their names only.
    const named = await api('POST', '/batch/subscribers', { body: { subscribers: [
      { email: 'x.story@example.com', first_name: 'Augusta', last_name: 'Lovelace' },
    ] } });
    assert.equal(named.status, 200, JSON.stringify(named.body));
    const all = await everySubscriber();
    assert.ok(all.length > 25, 'more subscribers than a page');
    const emails = all.map((s) => s.attributes.email);
    assert.deepEqual(emails, [...emails].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)), 'in email order');
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'Subscribers', exact: true }).click();
    await page.getByRole('heading', { name: 'Subscribers', level: 1 }).waitFor();
    // No text: everyone, 25 at a time.
    assert.deepEqual(await listedEmails(page, 25), emails.slice(0, 25));
    while (await page.getByRole('button', { name: 'Show more' }).isVisible()) {
      const before = await page.locator('table.subscribers tbody tr').count();
      await page.getByRole('button', { name: 'Show more' }).click();
      await page.waitForFunction((n) => document.querySelectorAll('table.subscribers tbody tr').length > n, before);
    }
    assert.deepEqual(await listedEmails(page, all.length), emails);

    // Whom each text finds, worked out from every subscriber's record.
    const tags = (await api('GET', '/fetch/tags')).body.data;
    const tagId = (name) => tags.find((tag) => tag.attributes.name.toLowerCase() === name.toLowerCase())?.id;
    const finds = (text) => all.filter((s) => {
      const a = s.attributes;
      const names = ['first_name', 'last_name', 'name'].map((k) => a.fields?.[k]).filter((v) => typeof v === 'string');
      return a.email.toLowerCase().startsWith(text.toLowerCase())
        || names.some((n) => n.toLowerCase().startsWith(text.toLowerCase()))
        || a.cached_tag_ids.includes(tagId(text));
    }).map((s) => s.attributes.email);
    const box = page.getByRole('searchbox', { name: 'Search' });
    for (const [text, why] of [['GRA', 'a first name and emails'], ['augusta', 'a first name'], ['LOVE', 'a last name'],
      ['Ada1', 'emails'], ['vip', 'a tag'], ['Customer', 'a tag, in another case']]) {
      const want = finds(text);
      assert.ok(want.length > 0 && want.length <= 25, `${text} finds ${want.length}`);
      // Typed: the results follow without a click.
      await box.fill(text);
      assert.deepEqual(await listedEmails(page, want.length, text), want, `${text}: ${why}`);
      await page.waitForFunction((q) => location.hash === `#/subscribers?q=${encodeURIComponent(q)}`, text);
      if (text === 'GRA') {
        await page.evaluate(() => window.scrollTo(0, 0));
        await shot(page, 'subscribers', { fullPage: false });
      }
    }
    assert.deepEqual(finds('LOVE'), ['x.story@example.com']);
    // Nobody: said so.
    await box.fill('zz-nobody');
    await page.getByText('No subscriber’s email or name starts with “zz-nobody”, and no tag is named so.').waitFor();
    // A result opens the subscriber's page; Back comes to the same search.
    await box.fill('vip');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const first = finds('vip')[0];
    await page.getByRole('link', { name: first, exact: true }).click();
    await page.getByRole('heading', { name: first, level: 1 }).waitFor();
    await page.goBack();
    assert.equal(await page.getByRole('searchbox', { name: 'Search' }).inputValue(), 'vip');
    assert.deepEqual(await listedEmails(page, finds('vip').length, 'vip'), finds('vip'));
  });

  test('the header names the signed-in site, its UUID in the title', async (t) => {
    const site = (await api('GET', '/fetch/site')).body.data;
    assert.equal(site.uuid, SITE);
    const page = await open(t);
    await signIn(page);
    const shown = page.locator('.bar .site');
    await page.waitForFunction((name) => document.querySelector('.bar .site')?.textContent === `Site ${name}`, site.name);
    assert.equal(await shown.getAttribute('title'), `Site UUID ${SITE}`);
    // Every page keeps it.
    await page.getByRole('link', { name: 'Subscribers', exact: true }).click();
    await page.getByRole('heading', { name: 'Subscribers', level: 1 }).waitFor();
    assert.equal(await shown.textContent(), `Site ${site.name}`);
  });

  test('a subscriber\'s page shows fields as text, when they were added, and the subscription and its history in words', async (t) => {
    const email = 'zoe.story@example.com';
    const now = Date.now();
    const later = (days) => new Date(now + days * 86400000).toISOString();
    const imported = await api('POST', '/batch/subscribers', { body: { subscribers: [
      { email, first_name: 'Zoë', last_name: 'Story', seats: 12, beta: true, plan: 'pro', address: { city: 'Oslo' } },
    ] } });
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    const moved = await api('POST', '/batch/events', { body: { events: [
      { type: '$unsubscribe', email, date: later(3) },
      { type: '$subscribe', email, date: later(5) },
      { type: '$subscribe', email, date: later(6) },
    ] } });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const s = (await api('GET', '/fetch/subscribers', { params: { email } })).body.data.attributes;
    const page = await open(t);
    await signIn(page);
    await page.goto(`${CONSOLE}#/subscribers?q=zoë`);
    await page.getByRole('link', { name: email, exact: true }).click();
    await page.getByRole('heading', { name: email, level: 1 }).waitFor();
    await page.locator('.title .subtitle', { hasText: 'Zoë Story' }).waitFor();
    const state = page.locator('[data-state="subscribed"]');
    await page.waitForFunction((want) => document.querySelector('[data-state]')?.textContent === want, `Subscribed since ${day(later(5))}`);
    assert.equal(await state.textContent(), `Subscribed since ${day(later(5))}`);
    assert.equal(await page.locator('dd[data-created]').textContent(), day(s.created_at));
    assert.deepEqual(await page.$$eval('.subscription-story li', (items) => items.map((li) => li.textContent)), [
      `Added on ${day(s.created_at)}`,
      `Unsubscribed on ${day(later(3))}`,
      `Subscribed again on ${day(later(5))}`,
    ]);
    const value = (key) => page.locator(`table.fields tr[data-key="${key}"] td`).textContent();
    assert.equal(await value('first_name'), 'Zoë', 'text, not JSON');
    assert.equal(await value('seats'), '12');
    assert.equal(await value('beta'), 'yes');
    assert.equal(await value('address'), '{"city":"Oslo"}');

    // Unsubscribed by a command, which leaves no event: the record says when.
    const created = await api('POST', '/fetch/subscribers', { body: { subscriber: { email: 'ken.story@example.com' } } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const unsubscribed = await api('POST', '/fetch/commands', { body: { command: { command: 'unsubscribe', email: 'ken.story@example.com' } } });
    assert.equal(unsubscribed.status, 200, JSON.stringify(unsubscribed.body));
    const ken = (await api('GET', '/fetch/subscribers', { params: { email: 'ken.story@example.com' } })).body.data.attributes;
    assert.ok(ken.unsubscribed_at, JSON.stringify(ken));
    await page.goto(`${CONSOLE}#/subscriber?email=ken.story%40example.com`);
    await page.waitForFunction((want) => document.querySelector('[data-state="unsubscribed"]')?.textContent === want, `Unsubscribed on ${day(ken.unsubscribed_at)}`);
    await page.locator('.subscription-story li', { hasText: `Unsubscribed on ${day(ken.unsubscribed_at)}` }).waitFor();
    assert.equal(await page.locator('table.fields').count(), 0);
    await page.getByText('No fields.').waitFor();
  });
});

describe('the builder and the query parser', () => {
  test('the builder builds every operator the parser accepts, and the server accepts what it builds', async (t) => {
    const page = await open(t);
    await signIn(page);
    await page.getByRole('link', { name: 'New segment' }).click();
    const builder = page.locator('#builder');
    await builder.getByLabel('Who is in the segment').waitFor();
    const built = async () => JSON.parse(await page.locator('#query-json').inputValue());
    const at = (pointer) => builder.locator(`[data-pointer="${pointer}"]`);
    // The choices a select offers; not an operator it shows as unknown (one the
    // query has but the builder does not know).
    const optionsOf = (select) => select.locator('option').evaluateAll((options) => options
      .filter((o) => !o.textContent.endsWith('(unknown)'))
      .map((o) => o.value));

    /** A new condition of `kind` as the whole query, with what the parser needs filled in. */
    async function start(kind) {
      const who = builder.getByLabel('Who is in the segment');
      await who.selectOption('everyone');
      await who.selectOption(kind);
      if (kind === 'tag' || kind === 'not') await builder.getByLabel('Value: has', { exact: true }).fill('newsletter');
      if (kind === 'field') await builder.getByLabel('Field key').fill('plan');
      if (kind === 'event') await builder.getByLabel('Event type').fill('$purchase');
      if (kind === 'sample') await builder.getByLabel('Sample salt').fill('spring-test');
    }

    /** An event test with one part, `key`, added with its button. */
    async function eventWith(key) {
      await start('event');
      await builder.getByRole('button', { name: new RegExp(`^Add ${key}:`) }).click();
      if (key === 'where') {
        const path = builder.getByLabel('Detail path');
        await path.fill('value.amount');
        await path.blur();
        await at('/event/where/value.amount').waitFor();
      }
    }

    const checked = [];
    /** The query built now, which must hold `what`, and which the server must accept. */
    async function accepted(what, holds) {
      const query = await built();
      assert.ok(holds(query), `the builder did not build ${what}: ${JSON.stringify(query)}`);
      const answer = await api('POST', '/fetch/segments/preview', { body: { visitor_event_query: query, sample: 0 } });
      assert.equal(answer.status, 200, `the server refused ${what}, as the builder built it: ${JSON.stringify(query)}: ${JSON.stringify(answer.body)}`);
      checked.push(what);
    }

    /** The builder offers exactly `expected` in `select`, where `place` is in the vocabulary. */
    async function offers(place, select, expected) {
      const offered = (await optionsOf(select)).filter((v) => v !== 'everyone');
      const missing = expected.filter((v) => !offered.includes(v));
      const extra = offered.filter((v) => !expected.includes(v));
      assert.deepEqual({ missing, extra }, { missing: [], extra: [] },
        `${place}: the builder offers ${JSON.stringify(offered)}, the parser accepts ${JSON.stringify(expected)}`);
    }

    /**
     * A place taking operators, at `pointer` in the query: a condition of
     * `kind` (or an event test with that part) is made with one operator
     * there, whose select is then set to each operator in turn; `read` finds
     * the operator object in the query, `operand` fills what a default
     * operand lacks.
     */
    const operatorPlace = (kind, pointer, read, operand = null) => async (place, ops) => {
      if (kind.startsWith('event.')) await eventWith(kind.slice('event.'.length));
      else await start(kind);
      // The one operator row there (each row carries its operator's pointer).
      const row = builder.locator(`.op[data-pointer^="${pointer}/"]`);
      const select = row.getByLabel('Operator', { exact: true });
      await offers(place, select, ops);
      for (const op of ops) {
        await select.selectOption(op);
        if (operand) await at(`${pointer}/${op}`).locator('.op-row input').first().fill(operand(op));
        await accepted(`${place} ${op}`, (q) => Object.hasOwn(read(q) ?? {}, op));
      }
    };

    // How to build each list of the vocabulary; every list must be here.
    const PLACES = {
      conditions: async (place, kinds) => {
        await offers(place, builder.getByLabel('Who is in the segment'), kinds);
        for (const kind of kinds) {
          await start(kind);
          await accepted(`the condition ${kind}`, (q) => Object.keys(q).length === 1 && kind in q);
        }
      },
      email: operatorPlace('email', '/email', (q) => q.email),
      subscribed: async (place, values) => {
        await start('subscribed');
        const state = builder.getByLabel('Subscription state');
        await offers(place, state, values.map(String));
        for (const value of values) {
          await state.selectOption(String(value));
          await accepted(`subscribed ${value}`, (q) => q.subscribed === value);
        }
      },
      created: operatorPlace('created', '/created', (q) => q.created),
      tag: operatorPlace('tag', '/tag', (q) => q.tag,
        (op) => (['any_of', 'all_of', 'none_of'].includes(op) ? 'newsletter, customer' : 'newsletter')),
      field: operatorPlace('field', '/field', (q) => q.field),
      'event.keys': async (place, keys) => {
        await start('event');
        await builder.getByLabel('Event type').waitFor();
        const adders = await builder.getByRole('button', { name: /^Add [a-z_]+:/ })
          .evaluateAll((buttons) => buttons.map((b) => b.getAttribute('aria-label').match(/^Add ([a-z_]+):/)[1]));
        const offered = ['type', ...adders];
        assert.deepEqual({ missing: keys.filter((k) => !offered.includes(k)), extra: offered.filter((k) => !keys.includes(k)) },
          { missing: [], extra: [] }, `${place}: the builder offers ${JSON.stringify(offered)}, the parser accepts ${JSON.stringify(keys)}`);
        await accepted('the event key type', (q) => q.event.type === '$purchase');
        for (const key of keys.filter((k) => k !== 'type')) {
          await eventWith(key);
          await accepted(`the event key ${key}`, (q) => key in q.event);
        }
      },
      'event.when': operatorPlace('event.when', '/event/when', (q) => q.event.when),
      'event.where': operatorPlace('event.where', '/event/where/value.amount', (q) => q.event.where?.['value.amount']),
      'event.count': operatorPlace('event.count', '/event/count', (q) => q.event.count),
      'event.sum': operatorPlace('event.sum', '/event/sum', (q) => q.event.sum),
      'event.first': operatorPlace('event.first', '/event/first', (q) => q.event.first),
      'event.last': operatorPlace('event.last', '/event/last', (q) => q.event.last),
      segment: async (place, ops) => {
        await start('segment');
        const membership = builder.getByLabel('Membership');
        await offers(place, membership, ops);
        for (const op of ops) {
          await membership.selectOption(op);
          await accepted(`segment ${op}`, (q) => Object.hasOwn(q.segment, op) && q.segment[op] !== '');
        }
      },
      sample: async (place, keys) => {
        await start('sample');
        const shown = await builder.locator('[data-pointer^="/sample/"]')
          .evaluateAll((rows) => rows.map((row) => (row instanceof HTMLElement ? row.dataset.pointer : '').slice('/sample/'.length)));
        assert.deepEqual({ missing: keys.filter((k) => !shown.includes(k)), extra: shown.filter((k) => !keys.includes(k)) },
          { missing: [], extra: [] }, `${place}: the builder shows ${JSON.stringify(shown)}, the parser takes ${JSON.stringify(keys)}`);
        /** @type {Record<string, [string, string | number]>} what to type in each box, and what the query then holds */
        const typed = { salt: ['holdout 2027', 'holdout 2027'], from: ['2.5', 2.5], to: ['12.75', 12.75] };
        for (const key of keys) {
          const [text, value] = typed[key];
          await at(`/sample/${key}`).locator('input').fill(text);
          await accepted(`sample ${key}`, (q) => q.sample[key] === value);
        }
        assert.equal(await builder.locator('.sample-share').textContent(),
          'About 10.25% of the subscribers: the same ones on every server and after every restart, for this salt.');
      },
      span_units: async (place, units) => {
        await start('created');
        const unit = builder.getByLabel('Value: within the last: unit');
        await offers(place, unit, units);
        for (const u of units) {
          await unit.selectOption(u);
          await accepted(`a span in ${u}`, (q) => Object.hasOwn(q.created.within_last, u));
        }
      },
    };

    const lists = vocabularyLists(VOCABULARY);
    assert.deepEqual(lists.map(([path]) => path).sort(), Object.keys(PLACES).sort(),
      'vocabulary.json and the places this test builds differ: teach the test (and the builder) the new ones');
    for (const [path, list] of lists) await PLACES[path](path, list);
    assert.equal(checked.length, lists.reduce((n, [, list]) => n + list.length, 0));
  });
});
