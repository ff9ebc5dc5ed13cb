// A run: parameters, labels, agent, infrastructure, state timeline, why it waits,
// task runs (windowed), Gantt, graph, live logs, cancel and retry.
import { html, useState, useEffect, useInterval, State, Time, ErrorBox, Labels, FINAL, WAITING, duration } from './util.js';
import { api, q } from './api.js';
import { TaskTable, Gantt, loadTasks } from './tasks.js';
import { Graph } from './graph.js';
import { Logs } from './logs.js';

async function allHistory(id) {
  const out = [];
  let after = '';
  for (let i = 0; i < 20; i++) {
    const r = await api('/flow-runs/' + id + '/history' + q({ after, limit: 1000 }));
    out.push(...r.history);
    if (!r.next_cursor) break;
    after = r.next_cursor;
  }
  return out;
}

function Why({ d }) {
  if (!d) return null;
  const lacking = d.agents.filter(a => a.health === 'healthy' && a.missing_labels.length);
  return html`<section class="card why" aria-labelledby="h-why" data-testid="why">
    <h2 id="h-why">Why this run waits</h2>
    <p>${d.reason}</p>
    ${d.agents.length > 0 && html`<table><thead><tr><th>Agent</th><th>Health</th><th>Labels it lacks</th><th>Launches</th><th>Can take it</th></tr></thead>
      <tbody>${d.agents.map(a => html`<tr><td>${a.name}</td><td>${a.health}</td>
        <td>${a.missing_labels.length ? a.missing_labels.map(l => html`<span class="label missing">${l}</span>`) : html`<span class="muted">none</span>`}</td>
        <td>${a.type_mismatch || (a.run_config_types || []).join(', ')}</td><td>${a.can_take ? 'yes' : 'no'}</td></tr>`)}</tbody></table>`}
    ${lacking.length > 0 && html`<p class="hint">Start an agent with the labels, e.g. <code>culvert agent start ${d.labels.map((l) => '--label ' + l).join(' ')}</code>.</p>`}
  </section>`;
}

// A parent run's fan-out: its distributed maps' child runs, by state, then each child.
function FanOut({ runId, version }) {
  const [d, setD] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    api('/flow-runs/' + encodeURIComponent(runId) + '/children').then(r => { setD(r); setErr(null); }, setErr);
  }, [runId, version]);
  if (err) return html`<section class="card"><h2>Workers</h2><${ErrorBox} e=${err} /></section>`;
  if (!d) return null;
  const shown = d.children.slice(0, 200);
  const counts = Object.entries(d.by_state || {}).filter(([, n]) => n > 0);
  return html`<section class="card" aria-labelledby="h-fanout" data-testid="fanout">
    <h2 id="h-fanout">Workers <span class="muted">${d.children.length} child runs</span></h2>
    <p data-testid="fanout-states">${counts.map(([st, n]) => html`<span class="count"><${State} s=${st} /> ${n}</span> `)}</p>
    <table><thead><tr><th>Task</th><th>Chunk</th><th>Elements</th><th>State</th><th>Attempt</th><th>Runs on</th><th>Run</th></tr></thead>
      <tbody>${shown.map(c => html`<tr data-testid="child">
        <td>${c.task}</td><td>${c.chunk}</td><td class="mono">${c.start}–${c.end - 1}</td><td><${State} s=${c.state} /></td>
        <td>${c.run_count}</td>
        <td>${c.infrastructure ? html`${c.infrastructure.kind} <span class="mono wrap">${c.infrastructure.id}</span>` : html`<span class="muted">–</span>`}</td>
        <td><a class="mono" href=${'/runs/' + c.id}>${c.id.slice(0, 8)}</a></td></tr>`)}</tbody></table>
    ${d.children.length > shown.length && html`<p class="muted">… and ${d.children.length - shown.length} more (GET /api/v1/flow-runs/${runId}/children lists them all)</p>`}
  </section>`;
}

function Timeline({ history }) {
  return html`<ol class="timeline" data-testid="timeline">${history.map(h => html`<li>
    <${State} s=${h.state} /> <${Time} t=${h.timestamp} />${h.forced && html` <span class="muted">(forced)</span>`}
    ${h.message && html`<div class="msg">${h.message}</div>`}</li>`)}</ol>`;
}

export function RunPage({ params: [id], canWrite }) {
  const [run, setRun] = useState(null);
  const [flow, setFlow] = useState(null);
  const [history, setHistory] = useState([]);
  const [tasks, setTasks] = useState({ task_runs: [], mapped_tasks: [] });
  const [tv, setTv] = useState(0);
  const [why, setWhy] = useState(null);
  const [err, setErr] = useState(null);
  const [actErr, setActErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const [tab, setTab] = useState('tasks');

  const load = async () => {
    try {
      const r = await api('/flow-runs/' + encodeURIComponent(id));
      setRun(r);
      setErr(null);
      const [h, t] = await Promise.all([allHistory(id), loadTasks(id)]);
      setHistory(h);
      setTasks(t);
      setTv(v => v + 1);
      setWhy(WAITING.has(r.state) ? await api('/flow-runs/' + id + '/diagnosis') : null);
      return r;
    } catch (x) { setErr(x); return null; }
  };
  useEffect(() => { setRun(null); load().then(r => { if (r) api('/flows/' + r.flow_id).then(setFlow, () => {}); }); }, [id]);
  useInterval(() => { if (run && !FINAL.has(run.state)) load(); }, 2000, [id, run && run.state]);

  if (!run) return html`<h1>Run</h1><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}`;
  const final = FINAL.has(run.state);
  const act = async (what) => {
    setBusy(true); setActErr(null);
    try { setRun(await api('/flow-runs/' + id + '/' + what, { method: 'POST', body: {} })); await load(); } catch (x) { setActErr(x); }
    finally { setBusy(false); }
  };
  const tabs = [['tasks', 'Task runs'], ['gantt', 'Gantt'], ['graph', 'Graph']];
  return html`<h1>${run.flow_name} <span class="muted">v${run.flow_version}</span> <${State} s=${run.state} /></h1>
  <p class="mono muted">${run.id}</p>
  <${ErrorBox} e=${err} />
  ${canWrite && html`<div class="actions">
    ${!final && html`<button class="danger" disabled=${busy || run.state === 'Cancelling'} onClick=${() => act('cancel')} data-testid="cancel">Cancel run</button>`}
    ${final && html`<button disabled=${busy} onClick=${() => act('retry')} data-testid="retry">Retry run</button>`}
  </div>`}
  <${ErrorBox} e=${actErr} />
  ${run.state_message && html`<p class="msg" data-testid="state-message">${run.state_message}</p>`}
  ${WAITING.has(run.state) && html`<${Why} d=${why} />`}
  <div class="grid">
    <section class="card"><h2>Details</h2><dl>
      <dt>Flow</dt><dd><a href=${'/flows/' + run.flow_id}>${run.flow_name} v${run.flow_version}</a></dd>
      <dt>Parameters</dt><dd><pre>${JSON.stringify(run.parameters, null, 2)}</pre></dd>
      <dt>Labels</dt><dd><${Labels} l=${run.labels} /></dd>
      <dt>Agent</dt><dd>${run.agent_id ? html`<a href="/agents">${run.agent_id.slice(0, 8)}</a>` : html`<span class="muted">none yet</span>`}</dd>
      <dt>Runs on</dt><dd>${run.infrastructure ? html`${run.infrastructure.kind} <span class="mono wrap" data-testid="infra">${run.infrastructure.id}</span>` : html`<span class="muted">not reported</span>`}</dd>
      <dt>Scheduled</dt><dd><${Time} t=${run.scheduled_start_time} /></dd>
      <dt>Started</dt><dd><${Time} t=${run.start_time} /></dd>
      <dt>Duration</dt><dd>${duration(run.start_time, run.end_time) || html`<span class="muted">–</span>`}</dd>
      <dt>Attempt</dt><dd>${run.run_count}</dd>
      ${run.child && html`<dt>Child of</dt><dd data-testid="child-of"><a class="mono" href=${'/runs/' + run.child.parent_run_id}>${run.child.parent_run_id.slice(0, 8)}</a>:
        task ${run.child.task}, chunk ${run.child.chunk}, elements ${run.child.start}–${run.child.end - 1}</dd>`}
    </dl></section>
    <section class="card" aria-labelledby="h-tl"><h2 id="h-tl">State history</h2><${Timeline} history=${history} /></section>
  </div>
  ${run.children && run.children.count > 0 && html`<${FanOut} runId=${id} version=${tv} />`}
  <section class="card">
    <div role="tablist" aria-label="Task views" class="tabs">${tabs.map(([k, label]) => html`<button role="tab" id=${'tab-' + k}
      aria-selected=${tab === k ? 'true' : 'false'} aria-controls="tabpanel" tabindex=${tab === k ? 0 : -1} onClick=${() => setTab(k)}>${label}</button>`)}</div>
    <div role="tabpanel" id="tabpanel" aria-labelledby=${'tab-' + tab}>
      ${tab === 'tasks' && (tasks.task_runs.length + tasks.mapped_tasks.length === 0 ? html`<p class="empty">No task run reported yet.</p>`
        : html`<${TaskTable} runId=${id} tasks=${tasks} version=${tv} />`)}
      ${tab === 'gantt' && html`<${Gantt} tasks=${tasks} run=${run} />`}
      ${tab === 'graph' && html`<${Graph} flow=${flow} tasks=${tasks} />`}
    </div>
  </section>
  <${Logs} runId=${id} />`;
}
