// The explorer's only way to the hub: the public GraphQL API, with the caller's token.
//
// The token (a hub token or a JWT) lives in this tab's sessionStorage and travels only in the
// Authorization header. An answer that says UNAUTHENTICATED (HTTP 401) raises AuthError, which
// the app turns into the sign-in prompt; any other refusal comes back as ApiError with the
// API's message, code and the input field it names (extensions.field).

const TOKEN_KEY = 'capahub.explorer.token';
const ENDPOINT = 'graphql';

export class ApiError extends Error {
  constructor(message, { code = null, field = null, path = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.field = field;
    this.path = path;
  }
}

export class AuthError extends ApiError {
  constructor(message, { hadToken = false } = {}) {
    super(message, { code: 'UNAUTHENTICATED' });
    this.name = 'AuthError';
    this.hadToken = hadToken;
  }
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function errorOf(error) {
  const ext = (error && error.extensions) || {};
  return new ApiError(String((error && error.message) || 'The hub refused the request.'), {
    code: ext.code || null,
    field: ext.field || null,
    path: error && error.path ? error.path : null,
  });
}

// A refusal by the caller's cost budget (HTTP 429, RATE_LIMITED) is asked again after the
// Retry-After the hub names, at most this many times and never waiting longer than this
// (docs/limits.md, "Cost budget"); after that the view shows the refusal.
const RETRIES = 2;
const MAX_WAIT_MS = 10_000;

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(new DOMException('Aborted', 'AbortError'));
        },
        { once: true },
      );
    }
  });
}

/**
 * Run one GraphQL operation. Resolves to {data, errors} where errors are ApiErrors (partial
 * answers keep their data); rejects with AuthError when the hub wants a (valid) token, and
 * with ApiError when the hub cannot be reached or answers something that is not GraphQL.
 */
export async function request(query, variables = {}, { signal } = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const sent = token();
  if (sent) headers.Authorization = `Bearer ${sent}`;
  let response;
  for (let attempt = 0; ; attempt += 1) {
    try {
      response = await fetch(ENDPOINT, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
        signal,
        credentials: 'omit',
      });
    } catch (error) {
      if (error && error.name === 'AbortError') throw error;
      throw new ApiError('The hub did not answer; check that it is running and reload.', {
        code: 'NETWORK',
      });
    }
    const wait = Number(response.headers.get('Retry-After'));
    const again = response.status === 429 && attempt < RETRIES;
    if (!again || !(wait >= 0) || wait * 1000 > MAX_WAIT_MS) break;
    await pause(Math.max(wait, 0.2) * 1000, signal);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const errors = body && Array.isArray(body.errors) ? body.errors.map(errorOf) : [];
  const unauthenticated = errors.find((e) => e.code === 'UNAUTHENTICATED');
  if (response.status === 401 || unauthenticated) {
    const message = unauthenticated ? unauthenticated.message : 'This hub needs a token.';
    throw new AuthError(message, { hadToken: Boolean(sent) });
  }
  if (!body || typeof body !== 'object') {
    throw new ApiError(`The hub answered HTTP ${response.status} without a GraphQL body.`, {
      code: 'HTTP',
    });
  }
  return { data: body.data || null, errors, cost: body.extensions ? body.extensions.cost : null };
}

/** Like request, but an answer with any error rejects with the first one. */
export async function query(text, variables = {}, options = {}) {
  const { data, errors } = await request(text, variables, options);
  if (errors.length) throw errors[0];
  return data;
}
