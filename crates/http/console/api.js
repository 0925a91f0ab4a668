// The API on this origin, and the session: the access token lives in this
// module's memory only; the refresh token in sessionStorage (this tab,
// gone when it closes), so a reload or a provider's redirect does not sign
// the user out. docs/decisions/0009 says why.

const REFRESH_KEY = 'userhub.refresh_token';
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

let access = null;
let me = null;
let timer = null;
let refreshing = null;
const listeners = new Set();

/** An answer other than 2xx, with the API's `detail` made readable. */
export class ApiError extends Error {
  constructor(status, body, headers) {
    super(describe(status, body, headers));
    this.status = status;
    this.body = body ?? {};
    this.headers = headers;
  }
}

function describe(status, body, headers) {
  const detail = body?.detail;
  let text;
  if (typeof detail === 'string') {
    text = detail;
  } else if (Array.isArray(detail)) {
    text = detail.map((issue) => {
      const where = (issue.loc ?? []).slice(1).join('.');
      return where ? `${where}: ${issue.msg}` : issue.msg;
    }).join('; ');
  } else {
    text = `The server answered ${status}`;
  }
  const wait = headers?.get('Retry-After');
  if ((status === 429 || status === 503) && wait) text += ` (try again in ${wait} s)`;
  return text;
}

/** What to tell the user about a failure: the API's detail, or the browser's. */
export function messageOf(err) {
  if (err instanceof ApiError) return err.message;
  if (err?.name === 'NotAllowedError') return 'The passkey request was cancelled or timed out.';
  if (err instanceof TypeError) return 'The server cannot be reached; try again.';
  return `Something went wrong: ${err?.message ?? err}`;
}

/** Calls `onChange` whenever the signed-in user changes (or signs out). */
export function onChange(listener) {
  listeners.add(listener);
}

function changed() {
  for (const listener of listeners) listener(me);
}

/** The signed-in user's `UserResponse`, or null. */
export function currentUser() {
  return me;
}

/**
 * One request. `body` is sent as JSON, `form` as a form; `ifMatch` sets
 * `If-Match`. Resolves to `{status, body, etag}` for 2xx, rejects with
 * an `ApiError` otherwise. A bearer request refused with 401 refreshes the
 * session once and retries; if that fails, the user is signed out.
 */
export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false && access) {
    if (await refresh()) return finish(await send(method, path, options));
    signedOut();
  }
  return finish(response);
}

function send(method, path, { body, form, ifMatch, auth = true }) {
  const headers = { Accept: 'application/json' };
  if (auth && access) headers.Authorization = `Bearer ${access}`;
  if (ifMatch) headers['If-Match'] = ifMatch;
  let payload;
  if (form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    payload = new URLSearchParams(form).toString();
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  return fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
}

async function finish(response) {
  const type = response.headers.get('Content-Type') ?? '';
  const body = type.includes('json') ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, body, response.headers);
  return { status: response.status, body, etag: response.headers.get('ETag') };
}

export const get = (path, options) => call('GET', path, options);
export const post = (path, body, options) => call('POST', path, { ...options, body });
export const patch = (path, body, options) => call('PATCH', path, { ...options, body });
export const del = (path, options) => call('DELETE', path, options);

/** Starts a session from a `TokenResponse`. */
export async function signIn(tokens) {
  store(tokens);
  const { body } = await get('/api/auth/me');
  me = body;
  changed();
}

function store(tokens) {
  access = tokens.access_token;
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  clearTimeout(timer);
  const lifetime = tokens.expires_in * 1000;
  timer = setTimeout(() => refresh(), Math.max(lifetime - REFRESH_MARGIN_MS, lifetime / 2));
}

/** Spends the refresh token for new tokens; false when the session is over. */
export function refresh() {
  // Callers at the same moment share one request: a refresh token is spent once.
  refreshing ??= renew().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function renew() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  try {
    const response = await send('POST', '/api/auth/refresh', { body: { refresh_token: token }, auth: false });
    if (response.ok) {
      store(await response.json());
      return true;
    }
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(REFRESH_KEY);
      return false;
    }
  } catch {
    // The server cannot be reached; the session may still be good.
  }
  // 429 or 503 or no answer: try again soon.
  clearTimeout(timer);
  timer = setTimeout(() => refresh(), 5_000);
  return false;
}

/** Resumes this tab's session after a reload; false when there is none. */
export async function resume() {
  if (!(await refresh())) return false;
  try {
    me = (await get('/api/auth/me')).body;
    changed();
    return true;
  } catch {
    return false;
  }
}

/** Ends this session at the server, then here. */
export async function signOut() {
  try {
    if (access) await send('POST', '/api/auth/logout', {});
  } finally {
    signedOut();
  }
}

/** Forgets the session here (the server already ended it). */
export function signedOut() {
  access = null;
  me = null;
  clearTimeout(timer);
  sessionStorage.removeItem(REFRESH_KEY);
  changed();
}
