// The shell: sign-in, navigation, routing (every page is a deep link).
import { html, render, useState, useEffect, navigate, ErrorBox } from './util.js';
import { api, signIn, signOut, signedIn, onSignOut } from './api.js';
import { Dashboard } from './dashboard.js';
import { Agents } from './agents.js';
import { Flows, FlowPage } from './flows.js';
import { Runs } from './runs.js';
import { RunPage } from './run.js';

const routes = [
  [/^\/$/, () => Dashboard, 'Dashboard'],
  [/^\/agents\/?$/, () => Agents, 'Agents'],
  [/^\/flows\/?$/, () => Flows, 'Flows'],
  [/^\/flows\/([^/]+)\/?$/, () => FlowPage, 'Flow'],
  [/^\/runs\/?$/, () => Runs, 'Runs'],
  [/^\/runs\/([^/]+)\/?$/, () => RunPage, 'Run'],
];

function SignIn({ reason, onDone }) {
  const [value, setValue] = useState('');
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    const t = value.trim();
    if (!t) { setErr(new Error('Paste a Culvert API token.')); return; }
    setBusy(true);
    signIn(t);
    try {
      const s = await api('/session', { quiet401: true });
      setValue('');
      onDone(s);
    } catch (x) {
      signOut();
      setErr(x.status === 401 ? new Error('This token was refused: ' + x.message) : x);
    } finally { setBusy(false); }
  }
  return html`<main class="signin" id="main">
    <h1>Sign in to Culvert</h1>
    ${reason && html`<div class="error" role="alert">${reason}</div>`}
    <form onSubmit=${submit}>
      <label for="token">API token</label>
      <input id="token" type="password" autocomplete="off" spellcheck="false" value=${value}
        onInput=${e => setValue(e.currentTarget.value)} placeholder="cvt_…" />
      <button type="submit" disabled=${busy}>Sign in</button>
      <${ErrorBox} e=${err} />
    </form>
    <p class="hint">Paste a <code>user</code> or <code>admin</code> token (a <code>runner</code> token gives a read-only view).
    On the server's machine, the token the server saved at its first start is <code>api_token</code> in
    <code>~/.culvert/config.toml</code>; <code>culvert auth create-token --name me --scope user</code> makes another.
    The token is kept in this tab only and forgotten when you sign out or close it.</p>
  </main>`;
}

function useLocation() {
  const [path, setPath] = useState(location.pathname + location.search);
  useEffect(() => {
    const f = () => setPath(location.pathname + location.search);
    addEventListener('popstate', f);
    return () => removeEventListener('popstate', f);
  }, []);
  return path;
}

// Same-origin links navigate inside the app.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || u.pathname.startsWith('/api/')) return;
  e.preventDefault();
  if (u.pathname + u.search !== location.pathname + location.search) navigate(u.pathname + u.search);
});

function App() {
  const path = useLocation();
  const [session, setSession] = useState(null);
  const [reason, setReason] = useState('');
  const [err, setErr] = useState(null);
  useEffect(() => onSignOut((r) => { setSession(null); setReason(r); }), []);
  useEffect(() => {
    if (!signedIn() || session) return;
    api('/session').then(setSession, (x) => { if (x.status !== 401) setErr(x); });
  }, [session]);
  if (!signedIn()) return html`<${SignIn} reason=${reason} onDone=${(s) => { setReason(''); setErr(null); setSession(s); }} />`;
  if (!session) return html`<main class="signin" id="main"><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}
    ${err && html`<button onClick=${() => { setErr(null); setSession(null); api('/session').then(setSession, setErr); }}>Try again</button>`}</main>`;
  const pathname = path.split('?')[0];
  let Page = null, params = [], title = 'Not found';
  for (const [re, get, t] of routes) {
    const m = pathname.match(re);
    if (m) { Page = get(); params = m.slice(1).map(decodeURIComponent); title = t; break; }
  }
  document.title = title + ' · Culvert';
  const canWrite = session.scope === 'user' || session.scope === 'admin';
  const nav = [['/', 'Dashboard'], ['/runs', 'Runs'], ['/flows', 'Flows'], ['/agents', 'Agents']];
  const current = (href) => href === '/' ? pathname === '/' : pathname.startsWith(href);
  return html`<a class="skip" href="#main">Skip to content</a>
  <header class="top">
    <a class="brand" href="/">Culvert</a>
    <nav aria-label="Main">${nav.map(([href, label]) => html`<a href=${href} aria-current=${current(href) ? 'page' : undefined}>${label}</a>`)}</nav>
    <span class="who" title=${'token ' + session.name}>${session.name} · ${session.scope}${!canWrite && html` <span class="badge muted" data-testid="read-only">read-only</span>`}</span>
    <button class="link" onClick=${() => signOut('You signed out.')}>Sign out</button>
  </header>
  <main id="main" tabindex="-1">
    ${Page ? html`<${Page} key=${pathname} params=${params} query=${new URLSearchParams(path.split('?')[1] || '')} canWrite=${canWrite} />`
      : html`<h1>Not found</h1><p>No page at ${pathname}. <a href="/">Go to the dashboard</a>.</p>`}
  </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
