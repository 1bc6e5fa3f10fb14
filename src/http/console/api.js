// @ts-check
// Corral's public API, as the console calls it: HTTP Basic with the site's
// key pair and `site_uuid` in the query string, exactly as any client does.
// The keys live in this tab's sessionStorage only (never in a URL); signing
// out removes them.

const STORAGE_KEY = 'corral.console.credentials';

/**
 * A site's UUID and key pair.
 * @typedef {object} Credentials
 * @property {string} siteUuid
 * @property {string} publishableKey
 * @property {string} secretKey
 */

/**
 * One problem with a field of a request, as the API words it.
 * @typedef {object} FieldError
 * @property {string} field such as `name` or `visitor_event_query/groups/0`
 * @property {string} message
 */

/**
 * How to call the API.
 * @typedef {object} CallOptions
 * @property {Record<string, string | number | null | undefined>} [params] added to the query string, unless empty
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string>} [headers]
 * @property {boolean} [blob] the answer as a Blob (CSV), not JSON
 * @property {Credentials | null} [as] these keys, not the saved ones
 * @property {AbortSignal} [signal]
 */

/**
 * A successful answer: its body (parsed JSON, whose shape the API
 * documents, or the Blob), its ETag, and the response.
 * @typedef {object} Answer
 * @property {any} data
 * @property {string | null} etag
 * @property {Response} response
 */

// What the console reads of the API's answers (the OpenAPI document has
// them all).

/**
 * A segment, as `/fetch/segments` lists it.
 * @typedef {object} Segment
 * @property {string} id
 * @property {{ name: string, description: string | null, visitor_event_query: any, created_at: string,
 *   updated_at: string, discarded_at?: string | null }} attributes
 */

/**
 * One saved definition of a segment, as `/fetch/segments/{id}/versions` lists it.
 * @typedef {object} SegmentVersion
 * @property {number} version the segment's version once saved (the number in its ETag)
 * @property {string} name
 * @property {string | null} description
 * @property {any} visitor_event_query
 * @property {string} saved_at
 * @property {string | null} saved_by the publishable key, `cli`, or null for a definition saved before history was kept
 */

/**
 * A subscriber.
 * @typedef {object} Subscriber
 * @property {{ uuid: string, email: string, unsubscribed_at: string | null, fields: Record<string, unknown> | null,
 *   cached_tag_ids: string[], created_at: string }} attributes
 */

/**
 * The signed-in site, as `/fetch/site` answers it.
 * @typedef {object} Site
 * @property {string} uuid
 * @property {string} name
 * @property {string} created_at
 */

/**
 * One of a subscriber's events.
 * @typedef {object} SubscriberEvent
 * @property {{ occurred_at: string, type: string, details: unknown }} attributes
 */

/**
 * A tag.
 * @typedef {object} Tag
 * @property {string} id
 * @property {{ name: string }} attributes
 */

/**
 * The counts of a segment's members (stats, or a preview with its sample).
 * @typedef {object} Counts
 * @property {number} user_count
 * @property {number} subscriber_count
 * @property {number} unsubscriber_count
 * @property {Subscriber[]} [sample]
 */

/**
 * The keys this tab signed in with, if any.
 * @returns {Credentials | null}
 */
export function credentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (saved && saved.siteUuid && saved.publishableKey && saved.secretKey) return saved;
  } catch {
    // Unreadable: treated as signed out.
  }
  return null;
}

/** @param {Credentials} c */
export function saveCredentials(c) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** A refused or failed request, with what the API said. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status; 0 when the server could not be reached
   * @param {string} message
   * @param {{ fieldErrors?: FieldError[], retryAfter?: number | null }} [details]
   */
  constructor(status, message, { fieldErrors = [], retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.fieldErrors = fieldErrors;
    this.retryAfter = retryAfter;
  }
}

/**
 * Whether `error` is the abort of a request whose signal was aborted.
 * @param {unknown} error
 * @returns {boolean}
 */
export function isAbort(error) {
  return typeof error === 'object' && error !== null && 'name' in error && error.name === 'AbortError';
}

/**
 * The status of an ApiError; null for anything else thrown.
 * @param {unknown} error
 * @returns {number | null}
 */
export function statusOf(error) {
  return error instanceof ApiError ? error.status : null;
}

/**
 * @param {string} user
 * @param {string} password
 * @returns {string}
 */
function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

/**
 * @param {string} path
 * @param {CallOptions['params']} params
 * @param {Credentials} c
 * @returns {string}
 */
function url(path, params, c) {
  const query = new URLSearchParams({ site_uuid: c.siteUuid });
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  return `/api/v1${path}?${query}`;
}

/**
 * What to tell a person about an error answer.
 * @param {Response} response
 * @returns {Promise<ApiError>}
 */
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const status = response.status;
  if (status === 429) {
    const seconds = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    const wait = Number.isFinite(seconds) ? `in ${seconds} second${seconds === 1 ? '' : 's'}` : 'shortly';
    return new ApiError(status, `Too many requests for these keys: try again ${wait}.`, {
      retryAfter: Number.isFinite(seconds) ? seconds : null,
    });
  }
  if (status === 401) {
    return new ApiError(status, 'These keys were not accepted: check the site UUID, publishable key and secret key.');
  }
  if (status === 412) {
    return new ApiError(status, 'This segment was changed by someone else since you opened it, so your changes were not saved.');
  }
  if (body && Array.isArray(body.errors)) {
    const text = body.errors.map((/** @type {FieldError} */ e) => `${e.field}: ${e.message}`).join('; ');
    return new ApiError(status, text || 'The request was refused.', { fieldErrors: body.errors });
  }
  if (body && typeof body.error === 'string') return new ApiError(status, body.error);
  if (status >= 500) return new ApiError(status, `The server failed to answer (${status}). Try again.`);
  return new ApiError(status, `The request failed (${status}).`);
}

/**
 * Calls the API. Answers `{data, etag, response}` where `data` is the parsed
 * JSON body (or the Blob, with `blob: true`); throws an ApiError otherwise.
 * @param {string} method
 * @param {string} path under `/api/v1`
 * @param {CallOptions} [options]
 * @returns {Promise<Answer>}
 */
export async function api(method, path, { params, body, headers = {}, blob = false, as = null, signal } = {}) {
  const c = as || credentials();
  if (!c) throw new ApiError(401, 'You are signed out.');
  /** @type {Record<string, string>} */
  const sent = { Accept: blob ? 'text/csv' : 'application/json', Authorization: basic(c.publishableKey, c.secretKey), ...headers };
  /** @type {RequestInit} */
  const init = {
    method,
    // The key pair goes in this header only: no cookies, and no browser
    // credential prompt on a 401.
    credentials: 'omit',
    cache: 'no-store',
    headers: sent,
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    sent['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(url(path, params, c), init);
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new ApiError(0, 'Corral cannot be reached. Check that the server is running, then try again.');
  }
  if (!response.ok) throw await failure(response);
  const data = blob ? await response.blob() : await response.json();
  return { data, etag: response.headers.get('ETag'), response };
}

/**
 * `visitor_event_query/groups/0` → `/groups/0`; other fields → null.
 * @param {string} field
 * @returns {string | null}
 */
export function queryPointer(field) {
  if (field === 'visitor_event_query') return '';
  if (field.startsWith('visitor_event_query/')) return field.slice('visitor_event_query'.length);
  return null;
}
