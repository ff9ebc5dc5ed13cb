// Dashboard: runs by state over the last 24 h, recent failures, agents, late runs.
import { html, useState, useEffect, useInterval, State, Time, Empty, ErrorBox, stateClass, shortId, Labels } from './util.js';
import { api } from './api.js';

export function useDashboard() {
  const [d, setD] = useState(null);
  const [err, setErr] = useState(null);
  const load = () => api('/dashboard').then((x) => { setD(x); setErr(null); }, setErr);
  useEffect(() => { load(); }, []);
  useInterval(load, 5000);
  return [d, err];
}

export const Health = ({ a }) => html`<span class=${'badge ' + (a.health === 'healthy' ? 'ok' : a.health === 'stopped' ? 'muted' : 'bad')}
  data-testid="agent-health">${a.health}</span>`;

const RunLink = ({ r }) => html`<a href=${'/runs/' + r.id}>${r.flow_name} <span class="mono muted">${shortId(r.id)}</span></a>`;

export function Dashboard() {
  const [d, err] = useDashboard();
  if (!d) return html`<h1>Dashboard</h1><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}`;
  const counts = Object.entries(d.runs_by_state).filter(([, n]) => n > 0);
  const max = Math.max(1, ...counts.map(([, n]) => n));
  return html`<h1>Dashboard</h1><${ErrorBox} e=${err} />
  <div class="grid">
    <section class="card" aria-labelledby="h-states">
      <h2 id="h-states">Runs in the last 24 h <span class="muted">(${d.runs_total})</span></h2>
      ${counts.length === 0 ? html`<${Empty}>No runs were created in the last 24 hours.</${Empty}>` : html`
      <ul class="bars" data-testid="runs-by-state">${counts.map(([s, n]) => html`<li>
        <a href=${'/runs?state=' + s}><span class="bar-label">${s}</span>
        <span class="bar"><span class=${'fill ' + stateClass(s)} style=${{ width: (100 * n / max) + '%' }}></span></span>
        <span class="bar-n">${n}</span></a></li>`)}</ul>`}
    </section>
    <section class="card" aria-labelledby="h-agents">
      <h2 id="h-agents">Agents</h2>
      ${d.agents.length === 0 ? html`<${Empty}>No agent has registered. Start one with <code>culvert agent start</code>.</${Empty}>` : html`
      <table><thead><tr><th>Name</th><th>Health</th><th>In flight</th><th>Last heartbeat</th></tr></thead>
      <tbody>${d.agents.map(a => html`<tr data-agent=${a.name}><td><a href="/agents">${a.name}</a></td><td><${Health} a=${a} /></td><td>${a.in_flight}</td><td><${Time} t=${a.last_heartbeat} /></td></tr>`)}</tbody></table>`}
    </section>
    <section class="card wide" aria-labelledby="h-fail">
      <h2 id="h-fail">Recent failures and crashes</h2>
      ${d.recent_failures.length === 0 ? html`<${Empty}>No run failed or crashed in the last 24 hours.</${Empty}>` : html`
      <table><thead><tr><th>Run</th><th>State</th><th>Message</th><th>Ended</th></tr></thead>
      <tbody>${d.recent_failures.map(r => html`<tr><td><${RunLink} r=${r} /></td><td><${State} s=${r.state} /></td>
        <td class="msg">${r.state_message}</td><td><${Time} t=${r.end_time || r.state_changed_at} /></td></tr>`)}</tbody></table>`}
    </section>
    <section class="card wide" aria-labelledby="h-late">
      <h2 id="h-late">Late runs <span class="muted">(${d.late.count})</span></h2>
      ${d.late.count === 0 ? html`<${Empty}>No run is waiting past its scheduled time (more than ${d.late.after_seconds} s).</${Empty}>` : html`
      <table><thead><tr><th>Run</th><th>State</th><th>Labels</th><th>Due</th></tr></thead>
      <tbody>${d.late.runs.map(r => html`<tr><td><${RunLink} r=${r} /></td><td><${State} s=${r.state} /></td><td><${Labels} l=${r.labels} /></td>
        <td><${Time} t=${r.scheduled_start_time} /></td></tr>`)}</tbody></table>
      <p class="hint">Open a run to see why it waits.</p>`}
    </section>
  </div>`;
}
