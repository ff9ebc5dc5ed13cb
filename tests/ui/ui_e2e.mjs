// The web UI end to end: a real `culvert server` (SQLite, port 0, temporary HOME), real
// local agents, runs of ui_flow, and Debian's chromium driven by playwright-core.
// Every wait is for a condition with a deadline, never a fixed sleep. Screenshots (light
// and dark) and the figures measured go to $UI_OUT.
//   CULVERT_BIN, UI_FLOW, UI_OUT, CULVERT_TOOLS (the folder with node_modules)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) { console.error(`ui_e2e: ${k} is not set`); process.exit(2); } return v; };
const CULVERT = env('CULVERT_BIN'), FLOW = env('UI_FLOW'), OUT = env('UI_OUT'), TOOLS = env('CULVERT_TOOLS');
const MAP_FLOW = env('MAP_FLOW');  // tests/e2e/map_flow: a distributed map over child runs
const require = createRequire(join(TOOLS, 'package.json'));
let chromium, AxeBuilder;
try {
  ({ chromium } = require('playwright-core'));
  AxeBuilder = require('@axe-core/playwright').default;
} catch (e) {
  console.error('ui_e2e: playwright-core or @axe-core/playwright is missing in ' + TOOLS + '/node_modules: run scripts/install-deps.sh (' + e.message + ')');
  process.exit(1);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) { console.error('ui_e2e: ' + CHROMIUM + ' is missing: run scripts/install-deps.sh'); process.exit(1); }

mkdirSync(OUT, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), 'culvert-ui-'));
const home = join(dir, 'home');
mkdirSync(home);
const baseEnv = { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', TZ: 'Europe/Berlin' };
const children = [];
const figures = {};
// Whatever happens, the processes started here end with this one.
process.on('exit', () => {
  for (const c of children) if (!c.exited) { try { process.kill(-c.p.pid, 'SIGKILL'); } catch { /* gone */ } }
});
process.on('unhandledRejection', (e) => { console.error('ui_e2e: ' + (e && e.stack || e) + '\nlogs kept in ' + dir); process.exit(1); });

function start(name, args, extra = {}) {
  const log = join(dir, name + '.log');
  const p = spawn(args[0], args.slice(1), { env: { ...baseEnv, ...extra }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let text = '';
  const add = (d) => { text += d; if (text.length > 1 << 20) text = text.slice(-(1 << 19)); };
  p.stdout.on('data', add); p.stderr.on('data', add);
  p.on('exit', () => writeFileSync(log, text));
  const child = { p, name, output: () => text, exited: false };
  p.on('exit', () => { child.exited = true; });
  children.push(child);
  return child;
}
function stop(child, sig = 'SIGTERM') {
  if (!child.exited) { try { process.kill(-child.p.pid, sig); } catch { /* gone */ } }
  return new Promise((res) => child.exited ? res() : child.p.on('exit', res));
}
async function until(what, fn, ms = 60000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error('timed out waiting for ' + what + (last ? ': ' + last.message : ''));
    await new Promise((r) => setTimeout(r, 100));
  }
}
function cli(args, extra = {}) {
  return execFileSync(CULVERT, args, { env: { ...baseEnv, ...extra }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// ---- the server, tokens, agents, flows
const portFile = join(dir, 'port');
const server = start('server', [CULVERT, 'server', 'start', '--db', 'sqlite://' + join(dir, 'culvert.db'), '--listen', '127.0.0.1:0',
  '--port-file', portFile, '--heartbeat-interval', '1s', '--missed-heartbeats', '8', '--liveness-interval', '500ms']);
await until('the server to listen', () => existsSync(portFile) && readFileSync(portFile, 'utf8').trim(), 30000);
const URL_ = 'http://127.0.0.1:' + readFileSync(portFile, 'utf8').trim();
const profile = join(home, '.culvert', 'config.toml');
await until('the profile', () => existsSync(profile) && /api_token/.test(readFileSync(profile, 'utf8')));
const ADMIN = /api_token\s*=\s*"([^"]+)"/.exec(readFileSync(profile, 'utf8'))[1];

async function call(path, { method = 'GET', body, token = ADMIN } = {}) {
  const r = await fetch(URL_ + '/api/v1' + path, { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const j = await r.json().catch(() => null);
  return { status: r.status, body: j };
}
const USER = (await call('/tokens', { method: 'POST', body: { name: 'ui-user', scope: 'user' } })).body.token;
const RUNNER = (await call('/tokens', { method: 'POST', body: { name: 'ui-runner', scope: 'runner' } })).body.token;

const storage = 'file://' + join(dir, 'artifacts');
cli(['flow', 'register', FLOW, '--project', 'ui', '--storage', storage]);
cli(['flow', 'register', FLOW, '--project', 'ui', '--storage', storage], { UI_FLOW_NAME: 'ui-gpu', UI_FLOW_LABELS: 'gpu,a100' });
// A yearly schedule (no run is due while the test runs).
cli(['flow', 'register', FLOW, '--project', 'ui', '--storage', storage], { UI_FLOW_NAME: 'ui-cron', UI_FLOW_CRON: '0 6 1 1 *', UI_FLOW_ZONE: 'Asia/Tokyo' });
// A distributed map: 20 elements in 4 chunks, each a child run (map_flow reads these at start).
const mapEnv = { MAP_FLOW_STORAGE: 'file://' + join(dir, 'maps'), MAP_FLOW_WORKERS: '4', MAP_FLOW_CHUNK: '5' };
cli(['flow', 'register', MAP_FLOW, '--project', 'ui', '--storage', storage], mapEnv);
const flows = (await call('/flows?project=ui')).body.flows;
const flowId = (n) => flows.find((f) => f.name === n).id;

// Runs heartbeat every second too (the server above expects one within 8 s).
const agent = start('agent-local', [CULVERT, 'agent', 'start', '--name', 'local-1', '--heartbeat-seconds', '1', '--max-concurrent', '8',
  '--env', 'CULVERT_HEARTBEAT_SECONDS=1'], mapEnv);
const doomed = start('agent-doomed', [CULVERT, 'agent', 'start', '--name', 'doomed', '--label', 'spare', '--heartbeat-seconds', '1']);
await until('both agents healthy', async () => {
  const a = (await call('/agents')).body.agents;
  return a.filter((x) => x.health === 'healthy').length === 2;
});

async function createRun(flow, parameters = {}) {
  const r = await call('/flow-runs', { method: 'POST', body: { flow_id: flowId(flow), parameters }, token: USER });
  if (r.status !== 201) throw new Error('create run: ' + JSON.stringify(r.body));
  return r.body.id;
}
const runState = async (id) => (await call('/flow-runs/' + id)).body.state;
const waitState = (id, states, ms = 120000) => until(`run ${id} to be ${states}`, async () => states.includes(await runState(id)), ms);

// ---- the browser
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const results = [];
let dialogs = 0;
async function newPage({ width = 1280, height = 800, colorScheme = 'light' } = {}) {
  const ctx = await browser.newContext({ viewport: { width, height }, colorScheme, timezoneId: 'America/New_York' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.on('dialog', (d) => { dialogs++; d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => { page.__errors = (page.__errors || []).concat(String(e)); });
  return page;
}
async function signInPage(token, opts) {
  const page = await newPage(opts);
  await page.goto(URL_ + '/');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  return page;
}
const ONLY = process.env.UI_ONLY ? new RegExp(process.env.UI_ONLY) : null;  // run only the tests it matches
async function test(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  const t0 = Date.now();
  try { await fn(); results.push([name, 'ok', Date.now() - t0]); console.log('ok   ' + name); }
  catch (e) { results.push([name, 'FAIL', Date.now() - t0]); console.log('FAIL ' + name + '\n     ' + (e.stack || e)); }
}
function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); }
const shot = (page, name) => page.screenshot({ path: join(OUT, name + '.png'), fullPage: true });
const axeCheck = async (page, what) => {
  const r = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, what + ': axe found ' + bad.map((v) => v.id + ' (' + v.nodes.length + ': ' + v.nodes[0].target + ')').join(', '));
};

await test('assets are served with strict headers; the API is unaffected', async () => {
  const r = await fetch(URL_ + '/runs/deep/link', { headers: { 'Accept-Encoding': 'gzip' } });
  check(r.status === 200, 'deep link 200');
  const csp = r.headers.get('content-security-policy');
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'") && !csp.includes('unsafe-inline'), 'CSP: ' + csp);
  check(r.headers.get('x-content-type-options') === 'nosniff', 'nosniff');
  const html = await r.text();
  const js = /src="([^"]+main\.js)"/.exec(html)[1];
  const a = await fetch(URL_ + js);
  check(a.status === 200 && a.headers.get('cache-control').includes('immutable'), 'asset cached');
  const again = await fetch(URL_ + js, { headers: { 'If-None-Match': a.headers.get('etag') } });
  check(again.status === 304, '304 on If-None-Match, got ' + again.status);
  const api = await fetch(URL_ + '/api/v1/flow-runs');
  check(api.status === 401 && (await api.json()).error.code === 'unauthenticated', 'API 401 JSON');
  check((await fetch(URL_ + '/assets/nope.js')).status === 404, 'unknown asset 404');
});

await test('sign-in: a bad token is refused, a user token signs in, sign-out forgets it', async () => {
  const page = await newPage();
  await page.goto(URL_ + '/runs');
  await shot(page, 'signin-light');
  await page.getByLabel('API token').fill('cvt_not_a_token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('This token was refused').waitFor();
  await page.getByLabel('API token').fill(USER);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();  // the deep link survives sign-in
  check(!page.url().includes(USER), 'token not in the URL');
  check(await page.evaluate(() => sessionStorage.getItem('culvert.token')) === USER, 'kept in sessionStorage');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('culvert.token')) === null, 'forgotten at sign-out');
  await page.reload();
  await page.getByLabel('API token').waitFor();
  await page.context().close();
  check(!server.output().includes(USER), 'the token is not in the server log');
});

const page = await signInPage(USER);

await test('dashboard: runs by state, agents with health', async () => {
  await page.getByRole('heading', { name: 'Agents' }).waitFor();
  await page.locator('tr[data-agent="local-1"] [data-testid=agent-health]', { hasText: 'healthy' }).waitFor();
  await axeCheck(page, 'dashboard');
});

await test('keyboard: a skip link first, then the navigation, each reachable and usable with Enter', async () => {
  await page.goto(URL_ + '/');
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.textContent) === 'Skip to content', 'first Tab: the skip link');
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(() => document.activeElement.textContent) === 'Runs') break;
  }
  check(await page.evaluate(() => document.activeElement.textContent) === 'Runs', 'the Runs link is reachable by Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
});

await test('agents: max concurrent as each agent registered it, "—" for an agent that did not say', async () => {
  // An older agent registers without max_concurrent; it must still register.
  const older = await call('/agents', { method: 'POST', body: { name: 'older', type: 'local', labels: [] }, token: RUNNER });
  check(older.status === 201 && older.body.max_concurrent === null, 'older agent registered: ' + JSON.stringify(older.body));
  await page.goto(URL_ + '/agents');
  const cell = (name) => page.locator(`[data-testid=agents] tr[data-agent="${name}"] [data-testid=agent-max-concurrent]`);
  await cell('older').waitFor();
  await page.getByRole('columnheader', { name: 'Max concurrent' }).waitFor();
  check(await cell('local-1').textContent() === '8', 'local-1 (--max-concurrent 8): ' + await cell('local-1').textContent());
  check(await cell('doomed').textContent() === '4', 'doomed (the default, 4): ' + await cell('doomed').textContent());
  check(await cell('older').textContent() === '—', 'older: ' + await cell('older').textContent());
  const gone = await call('/agents/' + older.body.id, { method: 'DELETE', token: RUNNER });
  check(gone.status === 200, 'older agent deregistered: ' + gone.status);
});

await test('agents: an agent becomes unhealthy after it is stopped', async () => {
  await page.getByRole('link', { name: 'Agents', exact: true }).click();
  const health = page.locator('[data-testid=agents] tr[data-agent="doomed"] [data-testid=agent-health]');
  await health.filter({ hasText: /^healthy$/ }).waitFor();
  await stop(doomed, 'SIGKILL');  // no deregistration: it just stops heartbeating
  await health.filter({ hasText: 'unhealthy' }).waitFor({ timeout: 60000 });
  await axeCheck(page, 'agents');
});

let formRun;
await test('run form: a bad parameter is shown at its field, a good one starts the run', async () => {
  await page.getByRole('link', { name: 'Flows', exact: true }).click();
  await page.getByRole('link', { name: 'ui', exact: true }).click();
  await page.getByRole('button', { name: 'Run…' }).click();
  await page.getByLabel(/^elements/).fill('twelve');
  await page.getByRole('button', { name: 'Start run' }).click();
  await page.locator('#param-elements-error', { hasText: 'elements must be a whole number' }).waitFor();
  check(await page.getByLabel(/^elements/).getAttribute('aria-invalid') === 'true', 'field marked invalid');
  check((await call('/flow-runs?flow_id=' + flowId('ui'))).body.runs.length === 0, 'no run created by the bad form');
  await axeCheck(page, 'flow page with the run form');
  await page.getByLabel(/^elements/).fill('4');
  await page.getByLabel(/^log_lines/).fill('30');
  await page.getByLabel(/^sleep_ms/).fill('1500');
  await page.getByRole('button', { name: 'Start run' }).click();
  await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
  formRun = page.url().split('/').pop();
});

await test('a run followed live to Success with its logs arriving', async () => {
  const logs = page.getByTestId('logs');
  await page.locator('h1 .badge', { hasText: 'Running' }).or(page.locator('h1 .badge', { hasText: 'Success' })).waitFor({ timeout: 60000 });
  await logs.getByText('line 29 of 30').waitFor({ timeout: 60000 });
  await page.locator('h1 .badge', { hasText: 'Success' }).waitFor({ timeout: 60000 });
  await logs.getByText('write_logs done').waitFor();
  await page.getByTestId('log-status').filter({ hasText: 'complete' }).waitFor();
  // Log times are in the browser's zone (America/New_York here), as the rest of the page,
  // with the zone named and the UTC time in the tooltip.
  await page.getByTestId('log-zone').filter({ hasText: 'times in America/New_York' }).waitFor();
  const stored = (await call('/flow-runs/' + formRun + '/logs?limit=1000')).body.logs.find((l) => l.message === 'line 29 of 30');
  check(stored, 'the line is stored');
  const ts = logs.locator('.logline', { hasText: 'line 29 of 30' }).locator('.ts');
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit',
    second: '2-digit', fractionalSecondDigits: 3, hourCycle: 'h23' }).formatToParts(new Date(stored.timestamp)).map((p) => [p.type, p.value]));
  const inNewYork = `${parts.hour}:${parts.minute}:${parts.second}.${parts.fractionalSecond}`;
  check(await ts.textContent() === inNewYork, `log time ${await ts.textContent()} is ${stored.timestamp} in New York (${inNewYork})`);
  check(inNewYork !== stored.timestamp.slice(11, 23), 'New York is not UTC');
  const title = await ts.getAttribute('title');
  const utc = new Date(stored.timestamp).toISOString().replace('T', ' ').replace('Z', '') + ' UTC';
  check(title.includes('(America/New_York)') && title.includes(utc), 'log time tooltip: ' + title);
  const created = await page.locator('dl time').first().getAttribute('title');
  check(created.includes('(America/New_York)') && created.endsWith(' UTC'), 'the run\'s times: the same zone, UTC in the tooltip: ' + created);
  await page.getByTestId('timeline').getByText('Success').waitFor();
  await page.getByTestId('expand-each').waitFor();
  await axeCheck(page, 'run page');
  await shot(page, 'run-light');
});

await test('a distributed map: the parent shows its workers by state, a child its parent', async () => {
  const id = await createRun('fanout', { n: 20 });
  await waitState(id, ['Success', 'Failed', 'Crashed'], 180000);
  check(await runState(id) === 'Success', 'the fan-out run succeeded');
  await page.goto(URL_ + '/runs/' + id);
  const fan = page.getByTestId('fanout');
  await fan.waitFor();
  await fan.getByText('4 child runs').waitFor();
  check(await fan.getByTestId('child').count() === 4, 'one row per child run');
  await page.getByTestId('fanout-states').getByText('Success').waitFor();
  const children = (await call('/flow-runs/' + id + '/children')).body.children;
  check(children.length === 4 && children.every((c) => c.state === 'Success'), 'the API lists 4 Success children');
  const row = fan.getByTestId('child').filter({ hasText: '15–19' });
  check(await row.count() === 1, 'the last chunk covers elements 15–19');
  await axeCheck(page, 'run page with workers');
  await shot(page, 'run-workers');
  await row.getByRole('link').click();
  await page.getByTestId('child-of').waitFor();
  check((await page.getByTestId('child-of').textContent()).includes('chunk 3, elements 15–19'), 'the child names its chunk');
  await page.getByTestId('child-of').getByRole('link').click();
  await page.getByTestId('fanout').waitFor();
});

await test('cancelling a running run', async () => {
  const id = await createRun('ui', { sleep_ms: 600000 });
  await page.goto(URL_ + '/runs/' + id);
  await page.locator('h1 .badge', { hasText: 'Running' }).waitFor({ timeout: 60000 });
  await page.getByTestId('cancel').click();
  await page.locator('h1 .badge', { hasText: /Cancell(ing|ed)/ }).waitFor();
  await page.locator('h1 .badge', { hasText: 'Cancelled' }).waitFor({ timeout: 60000 });
  await page.getByTestId('retry').waitFor();
  check(await runState(id) === 'Cancelled', 'server says Cancelled');
});

await test('a schedule: next fire times in its zone and the browser\'s, pause and resume', async () => {
  await page.goto(URL_ + '/flows/' + flowId('ui-cron'));
  await page.getByRole('columnheader', { name: 'Next fire time (Asia/Tokyo)' }).waitFor();
  await page.getByRole('columnheader', { name: 'In your zone (America/New_York)' }).waitFor();
  const first = await page.locator('section[aria-labelledby=h-sched] tbody tr').first().locator('td').allTextContents();
  check(first[0].includes('Jan 1') && first[0].includes('6:00:00'), 'fire time in Tokyo: ' + first[0]);
  check(first[1].includes('Dec 31') && first[1].includes('4:00:00'), 'fire time in New York: ' + first[1]);
  await page.getByRole('button', { name: 'Pause schedule' }).click();
  await page.locator('section[aria-labelledby=h-sched] .badge', { hasText: 'paused' }).waitFor();
  check((await call('/flows/' + flowId('ui-cron'))).body.schedule_active === false, 'paused on the server');
  await page.getByRole('button', { name: 'Resume schedule' }).click();
  await page.getByRole('button', { name: 'Pause schedule' }).waitFor();
  check((await call('/flows/' + flowId('ui-cron'))).body.schedule_active === true, 'resumed on the server');
  await shot(page, 'flow-schedule-light');
});

let waiting;
await test('a waiting run says which labels each live agent lacks', async () => {
  waiting = await createRun('ui-gpu');
  await page.goto(URL_ + '/runs/' + waiting);
  const why = page.getByTestId('why');
  await why.getByText('no healthy agent has every label').waitFor();
  const row = why.locator('tr', { hasText: 'local-1' });
  await row.locator('.label.missing', { hasText: 'gpu' }).waitFor();
  await row.locator('.label.missing', { hasText: 'a100' }).waitFor();
  await axeCheck(page, 'waiting run');
  await shot(page, 'run-waiting-light');
});

await test('a log line with markup is shown as text and runs no script', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  const id = await createRun('ui', { note: evil });
  await waitState(id, ['Success']);
  await page.goto(URL_ + '/runs/' + id);
  await page.getByTestId('logs').getByText(evil, { exact: true }).waitFor();
  check(await page.locator('[data-testid=logs] img').count() === 0, 'no img element in the logs');
  check(dialogs === 0, 'no dialog opened');
});

await test('filters: runs by state and label, and a clear message when nothing matches', async () => {
  await page.goto(URL_ + '/runs?state=Cancelled');
  await page.getByTestId('runs').locator('tbody tr').first().waitFor();
  check(await page.getByTestId('runs').locator('tbody tr').count() === 1, 'one cancelled run');
  // Several states at once: ticking a second one keeps both, in the URL too.
  const picker = page.getByTestId('state-filter');
  await picker.locator('summary').click();
  check(await picker.getByLabel('Cancelled', { exact: true }).isChecked(), 'the deep link\'s state is ticked');
  await picker.getByLabel('Success', { exact: true }).check();
  // (in the order of states: Success before Cancelled)
  await until('both states in the URL', async () => new URL(page.url()).searchParams.getAll('state').join(',') === 'Success,Cancelled', 30000);
  const both = (await call('/flow-runs?state=Cancelled&state=Success&limit=50')).body.runs;
  check(both.some((r) => r.state === 'Success') && both.some((r) => r.state === 'Cancelled'), 'runs in both states exist');
  const rowsIn = async () => (await page.getByTestId('runs').locator('tbody tr .badge').allTextContents()).sort().join(',');
  const want = both.map((r) => r.state).sort().join(',');
  await until('the runs of both states', async () => await rowsIn() === want, 30000);
  check((await picker.locator('summary').textContent()) === 'Success, Cancelled', 'the summary names both states');
  await shot(page, 'runs-states-light');
  await page.reload();  // the deep link keeps both
  await until('both states after a reload', async () => await rowsIn() === want, 30000);
  await page.getByTestId('state-filter').locator('summary').click();
  check(await page.getByTestId('state-filter').getByLabel('Success', { exact: true }).isChecked() &&
    await page.getByTestId('state-filter').getByLabel('Cancelled', { exact: true }).isChecked(), 'both ticked after a reload');
  await axeCheck(page, 'runs with the state filter open');
  // Escape closes it, the focus back on it.
  await page.getByTestId('state-filter').getByLabel('Success', { exact: true }).focus();
  await page.keyboard.press('Escape');
  check(!(await page.getByTestId('state-filter').evaluate((d) => d.open)), 'Escape closes the state filter');
  check(await page.evaluate(() => document.activeElement.tagName) === 'SUMMARY', 'the focus is back on the state filter');
  await page.getByTestId('state-filter').locator('summary').click();
  await page.getByTestId('state-filter').getByLabel('Cancelled', { exact: true }).uncheck();
  await until('one state in the URL', async () => new URL(page.url()).search === '?state=Success', 30000);
  await until('the Success runs only', async () => (await rowsIn()) === both.filter((r) => r.state === 'Success').map(() => 'Success').join(','), 30000);
  await page.goto(URL_ + '/runs?label=gpu');
  await page.locator('tr[data-run="' + waiting + '"]').waitFor();
  await page.goto(URL_ + '/runs?label=no-such-label');
  await page.getByText('No runs match these filters.').waitFor();
  await page.goto(URL_ + '/runs');
  await page.getByTestId('runs').waitFor();
  await axeCheck(page, 'runs');
});

await test('a runner token sees a read-only UI and cannot call cancel', async () => {
  const id = await createRun('ui', { sleep_ms: 600000 });
  await waitState(id, ['Running']);
  const rp = await signInPage(RUNNER);
  await rp.getByTestId('read-only').waitFor();
  await rp.goto(URL_ + '/runs/' + id);
  await rp.locator('h1 .badge', { hasText: 'Running' }).waitFor();
  check(await rp.getByTestId('cancel').count() === 0, 'no cancel button');
  const status = await rp.evaluate(async (run) => (await fetch('/api/v1/flow-runs/' + run + '/cancel', { method: 'POST',
    headers: { Authorization: 'Bearer ' + sessionStorage.getItem('culvert.token') } })).status, id);
  check(status === 403, 'cancel with the runner token: ' + status);
  await rp.goto(URL_ + '/flows/' + flowId('ui'));
  await rp.getByRole('heading', { name: /ui \/ ui/ }).waitFor();
  check(await rp.getByRole('button', { name: 'Run…' }).count() === 0, 'no Run button');
  await rp.context().close();
  await call('/flow-runs/' + id + '/cancel', { method: 'POST', token: USER });
});

await test('a 10,000-element map: at most 200 task rows in the DOM, the last child reachable', async () => {
  const id = await createRun('ui', { elements: 10000 });
  await waitState(id, ['Success'], 300000);
  const t0 = Date.now();
  await page.goto(URL_ + '/runs/' + id);
  const expand = page.getByTestId('expand-each');
  await expand.waitFor();
  figures.map_run_page_interactive_ms = Date.now() - t0;
  await expand.click();
  const rows = page.locator('[data-testid=task-rows] [role=row]');
  await page.locator('[data-testid=task-rows] [data-map-index="0"] .badge', { hasText: 'Success' }).waitFor();
  const n = await rows.count();
  check(n <= 200, 'rows in the DOM after expanding: ' + n);
  figures.map_rows_in_dom = n;
  await page.getByTestId('task-rows').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await until('the last rows', async () => (await page.locator('[data-testid=task-rows] [data-map-index]').count()) > 0 &&
    Number(await page.locator('[data-testid=task-rows] [data-map-index]').last().getAttribute('data-map-index')) === 9999, 30000)
    .catch(async (e) => { throw new Error(e.message + '; rows: ' + (await page.locator('[data-testid=task-rows] [role=row]').allTextContents()).slice(-5).join(' | ')); });
  await page.locator('[data-testid=task-rows] [data-map-index="9999"] .badge', { hasText: 'Success' }).waitFor();
  check(await rows.count() <= 200, 'rows in the DOM at the end: ' + await rows.count());
  await shot(page, 'run-map-10000-light');
  await page.getByRole('tab', { name: 'Gantt' }).click();
  await page.locator('canvas.gantt-canvas').waitFor();
  await shot(page, 'run-gantt-light');
  await page.getByRole('tab', { name: 'Graph' }).click();
  await page.locator('.graph svg').getByText(/each ×10000/).waitFor();
  await shot(page, 'run-graph-light');
});

await test('a log of 100,000 lines follows without freezing the page', async () => {
  const id = await createRun('ui', { log_lines: 100000, sleep_ms: 500 });
  await page.goto(URL_ + '/runs/' + id);
  const logs = page.getByTestId('logs');
  await logs.waitFor();
  // While lines arrive the page answers at once: measure the longest round trip.
  let worst = 0;
  const done = page.getByTestId('log-status').filter({ hasText: 'complete' });
  await until('the whole log', async () => {
    const t = Date.now();
    await page.evaluate(() => 1);
    worst = Math.max(worst, Date.now() - t);
    return (await done.count()) > 0;
  }, 300000);
  figures.log_100k_worst_page_roundtrip_ms = worst;
  const count = Number((await page.getByTestId('log-count').textContent()).split(' ')[0]);
  check(count >= 100000, 'lines received: ' + count);
  await logs.getByText('write_logs done').waitFor().catch(async (e) => {  // still following: the last line is in view
    throw new Error(e.message + '; count ' + count + ', follow ' + await page.getByTestId('follow').count() + ', last lines: ' +
      (await logs.locator('.logline').allTextContents()).slice(-3).join(' | '));
  });
  await logs.getByText('line 99999 of 100000').waitFor();
  const dom = await logs.locator('.logline').count();
  check(dom <= 200, 'log lines in the DOM: ' + dom);
  figures.log_lines_in_dom = dom;
  // Scrolling up pauses following; the button resumes it.
  await logs.evaluate((el) => { el.scrollTop = 0; });
  await page.getByTestId('resume').waitFor();
  await logs.getByText('line 0 of 100000', { exact: true }).waitFor();
  await page.getByTestId('resume').click();
  await page.getByTestId('follow').waitFor();
  await page.getByLabel('Search').fill('line 4242 of');
  await logs.getByText('line 4242 of 100000').waitFor();
  check(await logs.locator('.logline').count() === 1, 'search shows one line');
});

await test('an unreachable server is said so, not a blank page', async () => {
  const p = await signInPage(USER);
  await p.route('**/api/v1/**', (r) => r.abort('connectionrefused'));
  await p.goto(URL_ + '/runs');
  await p.getByText('cannot be reached').waitFor();
  await p.context().close();
});

await test('screenshots of every page, light and dark, wide and narrow', async () => {
  for (const scheme of ['light', 'dark']) {
    for (const [w, h, tag] of [[1280, 800, ''], [390, 844, '-narrow']]) {
      const p = await signInPage(USER, { width: w, height: h, colorScheme: scheme });
      const pages = [['dashboard', '/', 'Dashboard'], ['agents', '/agents', 'Agents'], ['flows', '/flows', 'Flows'],
        ['flow', '/flows/' + flowId('ui'), /ui \/ ui/], ['runs', '/runs', 'Runs'], ['run', '/runs/' + formRun, /^ui/],
        ['run-waiting', '/runs/' + waiting, /^ui-gpu/]];
      for (const [name, path, heading] of pages) {
        await p.goto(URL_ + path);
        await p.getByRole('heading', { name: heading }).first().waitFor();
        await p.waitForLoadState('networkidle').catch(() => {});
        await shot(p, `${name}-${scheme}${tag}`);
        if (scheme === 'dark' && !tag) await axeCheck(p, name + ' (dark)');
      }
      await p.context().close();
    }
  }
});

await browser.close();
writeFileSync(join(OUT, 'figures.json'), JSON.stringify(figures, null, 2) + '\n');
console.log('figures: ' + JSON.stringify(figures));
console.log('screenshots: ' + OUT);
for (const c of children) await stop(c);
const failed = results.filter((r) => r[1] !== 'ok');
if (!failed.length) rmSync(dir, { recursive: true, force: true });
else console.log('logs kept in ' + dir);
console.log(`${results.length - failed.length} of ${results.length} passed`);
process.exit(failed.length ? 1 : 0);
