// The API client: every call goes to /api/v1 with the signed-in token as a bearer
// token. The token lives in sessionStorage only (never in a URL, never logged) and is
// forgotten at sign-out.
const KEY = 'culvert.token';
let token = sessionStorage.getItem(KEY) || '';
const listeners = new Set();

export function signedIn() { return token !== ''; }
export function signIn(t) { token = t; sessionStorage.setItem(KEY, t); }
export function signOut(reason) {
  token = '';
  sessionStorage.removeItem(KEY);
  for (const f of listeners) f(reason || '');
}
export function onSignOut(f) { listeners.add(f); return () => listeners.delete(f); }

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// fetch + JSON. Throws ApiError: status 0 when the server cannot be reached.
export async function api(path, { method = 'GET', body, signal, quiet401 = false } = {}) {
  let r;
  try {
    r = await fetch('/api/v1' + path, {
      method, signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      headers: { Authorization: 'Bearer ' + token, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', 'The Culvert server at ' + location.host + ' cannot be reached. It may be stopped or restarting; retrying.');
  }
  let j = null;
  try { j = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    const msg = j && j.error ? j.error.message : r.status + ' ' + r.statusText;
    if (r.status === 401 && !quiet401) signOut('Your token was refused (' + msg + '): it may have expired or been revoked. Sign in again.');
    throw new ApiError(r.status, j && j.error ? j.error.code : 'http', msg);
  }
  return j;
}

export const q = (o) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) {
    if (Array.isArray(v)) v.forEach(x => p.append(k, x));
    else if (v !== undefined && v !== null && v !== '') p.append(k, v);
  }
  const s = p.toString();
  return s ? '?' + s : '';
};
