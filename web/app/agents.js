// Agents: name, type, labels, health, last heartbeat, runs in flight, max concurrent
// (as the agent said when it registered; "—" for an agent that did not say).
import { html, Time, Empty, ErrorBox, Labels } from './util.js';
import { useDashboard, Health } from './dashboard.js';

export function Agents() {
  const [d, err] = useDashboard();
  if (!d) return html`<h1>Agents</h1><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}`;
  return html`<h1>Agents</h1><${ErrorBox} e=${err} />
  <p class="hint">An agent is unhealthy once ${d.missed_heartbeats} heartbeats (every ${d.heartbeat_interval_seconds} s) were missed.</p>
  ${d.agents.length === 0 ? html`<${Empty}>No agent has registered. Start one with <code>culvert agent start</code>.</${Empty}>` : html`
  <div class="scroll"><table data-testid="agents">
    <thead><tr><th>Name</th><th>Type</th><th>Launches</th><th>Labels</th><th>Health</th><th>Last heartbeat</th><th>Runs in flight</th><th>Max concurrent</th><th>Registered</th></tr></thead>
    <tbody>${d.agents.map(a => html`<tr data-agent=${a.name}>
      <td>${a.name} <span class="mono muted">${a.id.slice(0, 8)}</span></td><td>${a.type}</td><td>${(a.run_config_types || []).join(', ')}</td>
      <td><${Labels} l=${a.labels} /></td><td><${Health} a=${a} /></td><td><${Time} t=${a.last_heartbeat} /></td>
      <td><a href=${'/runs?agent_id=' + a.id}>${a.in_flight}</a></td>
      <td data-testid="agent-max-concurrent">${a.max_concurrent == null ? html`<span class="muted" title="not reported by this agent">—</span>` : a.max_concurrent}</td>
      <td><${Time} t=${a.created} /></td></tr>`)}</tbody>
  </table></div>`}`;
}
