// Corral's public API, as the console calls it: HTTP Basic with the site's
// key pair and `site_uuid` in the query string, exactly as any client does.
// The keys live in this tab's sessionStorage only (never in a URL); signing
// out removes them.

const STORAGE_KEY = 'corral.console.credentials';

export function credentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (saved && saved.siteUuid && saved.publishableKey && saved.secretKey) return saved;
  } catch {
    // Unreadable: treated as signed out.
  }
  return null;
}

export function saveCredentials(c) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** A refused or failed request, with what the API said. */
export class ApiError extends Error {
  constructor(status, message, { fieldErrors = [], retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.fieldErrors = fieldErrors;
    this.retryAfter = retryAfter;
  }
}

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

function url(path, params, c) {
  const query = new URLSearchParams({ site_uuid: c.siteUuid });
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, value);
  }
  return `/api/v1${path}?${query}`;
}

/** What to tell a person about an error answer. */
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
    const text = body.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
    return new ApiError(status, text || 'The request was refused.', { fieldErrors: body.errors });
  }
  if (body && typeof body.error === 'string') return new ApiError(status, body.error);
  if (status >= 500) return new ApiError(status, `The server failed to answer (${status}). Try again.`);
  return new ApiError(status, `The request failed (${status}).`);
}

/**
 * Calls the API. Answers `{data, etag, response}` where `data` is the parsed
 * JSON body (or the Blob, with `blob: true`); throws an ApiError otherwise.
 */
export async function api(method, path, { params, body, headers = {}, blob = false, as = null, signal } = {}) {
  const c = as || credentials();
  if (!c) throw new ApiError(401, 'You are signed out.');
  const init = {
    method,
    // The key pair goes in this header only: no cookies, and no browser
    // credential prompt on a 401.
    credentials: 'omit',
    cache: 'no-store',
    headers: { Accept: blob ? 'text/csv' : 'application/json', Authorization: basic(c.publishableKey, c.secretKey), ...headers },
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(url(path, params, c), init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Corral cannot be reached. Check that the server is running, then try again.');
  }
  if (!response.ok) throw await failure(response);
  const data = blob ? await response.blob() : await response.json();
  return { data, etag: response.headers.get('ETag'), response };
}

/** `visitor_event_query/groups/0` → `/groups/0`; other fields → null. */
export function queryPointer(field) {
  if (field === 'visitor_event_query') return '';
  if (field.startsWith('visitor_event_query/')) return field.slice('visitor_event_query'.length);
  return null;
}
