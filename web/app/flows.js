// Flows: per project; a flow's versions, labels, run config, schedule with its next
// fire times (in the schedule's zone and the browser's), pause/resume, and Run with a
// form generated from the flow's typed parameters.
import { html, useState, useEffect, Time, Empty, ErrorBox, Labels, absolute, browserZone, navigate } from './util.js';
import { api, q } from './api.js';
import { allFlows } from './runs.js';

export function Flows() {
  const [flows, setFlows] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => { allFlows().then(setFlows, setErr); }, []);
  if (!flows) return html`<h1>Flows</h1><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}`;
  if (!flows.length) return html`<h1>Flows</h1><${Empty}>No flow is registered. Register one with <code>culvert flow register ./my-flow --project demo</code>.</${Empty}>`;
  const byProject = {};
  for (const f of flows) (byProject[f.project] = byProject[f.project] || []).push(f);
  return html`<h1>Flows</h1>${Object.entries(byProject).map(([p, fs]) => html`<section class="card">
    <h2>${p}</h2><table><thead><tr><th>Flow</th><th>Version</th><th>Labels</th><th>Schedule</th><th>Registered</th></tr></thead>
    <tbody>${fs.map(f => html`<tr><td><a href=${'/flows/' + f.id}>${f.name}</a></td><td>${f.version}</td><td><${Labels} l=${f.labels} /></td>
      <td>${scheduleText(f)}</td><td><${Time} t=${f.created} /></td></tr>`)}</tbody></table></section>`)}`;
}

function scheduleText(f) {
  const s = f.schedule;
  if (!s) return html`<span class="muted">none</span>`;
  const what = s.type === 'cron' ? html`<code>${s.cron}</code> (${s.timezone || 'UTC'})` : html`every ${s.interval_seconds} s`;
  return html`${what}${!f.schedule_active && html` <span class="badge muted">paused</span>`}`;
}

// Parses one form field by its declared type; returns [value, error].
export function parseField(p, raw) {
  const t = p.type || 'json';
  if (t === 'bool') return [raw === true, null];
  if (raw === '' || raw === undefined) {
    if (p.required && (p.default === undefined || p.default === null)) return [undefined, 'is required'];
    return [undefined, null];
  }
  if (t === 'int') {
    if (!/^-?\d+$/.test(raw.trim())) return [undefined, 'must be a whole number'];
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) return [undefined, 'is too large'];
    return [n, null];
  }
  if (t === 'float') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) return [undefined, 'must be a number'];
    return [n, null];
  }
  if (t === 'string') return [raw, null];
  try { return [JSON.parse(raw), null]; } catch (e) { return [undefined, 'must be JSON (' + e.message + ')']; }
}

function RunForm({ flow, onCancel }) {
  const params = flow.parameters || [];
  const init = {};
  for (const p of params) {
    const d = p.default;
    init[p.name] = p.type === 'bool' ? d === true : d === undefined || d === null ? '' : p.type === 'json' ? JSON.stringify(d) : String(d);
  }
  const [vals, setVals] = useState(init);
  const [errs, setErrs] = useState({});
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    const body = {}, fe = {};
    for (const p of params) {
      const [v, m] = parseField(p, vals[p.name]);
      if (m) fe[p.name] = m;
      else if (v !== undefined) body[p.name] = v;
    }
    setErrs(fe);
    setErr(null);
    if (Object.keys(fe).length) return;
    setBusy(true);
    try {
      const r = await api('/flow-runs', { method: 'POST', body: { flow_id: flow.id, parameters: body } });
      navigate('/runs/' + r.id);
    } catch (x) {
      // The server names the parameter: show it beside its field.
      const m = /parameter '([^']+)'/.exec(x.message || '');
      if (x.status === 422 && m && params.some(p => p.name === m[1])) setErrs({ [m[1]]: x.message });
      else setErr(x);
    } finally { setBusy(false); }
  }
  return html`<form class="card runform" onSubmit=${submit} noValidate aria-labelledby="h-run">
    <h2 id="h-run">Run ${flow.name}</h2>
    ${params.length === 0 && html`<p class="hint">This flow takes no parameters.</p>`}
    ${params.map(p => {
      const id = 'param-' + p.name, eid = id + '-error';
      const set = (v) => setVals({ ...vals, [p.name]: v });
      const invalid = errs[p.name] ? 'true' : undefined;
      const input = p.type === 'bool'
        ? html`<input id=${id} name=${p.name} type="checkbox" checked=${vals[p.name]} onChange=${(e) => set(e.currentTarget.checked)} />`
        : p.type === 'json'
          ? html`<textarea id=${id} name=${p.name} rows="3" value=${vals[p.name]} aria-invalid=${invalid} aria-describedby=${eid} onInput=${(e) => set(e.currentTarget.value)}></textarea>`
          : html`<input id=${id} name=${p.name} type="text" inputmode=${p.type === 'int' ? 'numeric' : p.type === 'float' ? 'decimal' : undefined}
              value=${vals[p.name]} aria-invalid=${invalid} aria-describedby=${eid} onInput=${(e) => set(e.currentTarget.value)} />`;
      return html`<div class="field">
        <label for=${id}>${p.name} <span class="muted">${p.type || 'json'}${p.required ? ', required' : ''}</span></label>
        ${input}${p.description && html`<span class="hint">${p.description}</span>`}
        <span id=${eid} class="field-error" role=${errs[p.name] ? 'alert' : undefined}>${errs[p.name] ? p.name + ' ' + errs[p.name].replace(/^.*?parameter '[^']+' /, '') : ''}</span>
      </div>`;
    })}
    <${ErrorBox} e=${err} />
    <div class="actions"><button type="submit" disabled=${busy}>Start run</button> <button type="button" class="link" onClick=${onCancel}>Close</button></div>
  </form>`;
}

export function FlowPage({ params: [id], canWrite }) {
  const [flow, setFlow] = useState(null);
  const [versions, setVersions] = useState([]);
  const [fire, setFire] = useState(null);
  const [err, setErr] = useState(null);
  const [running, setRunning] = useState(false);
  const load = async () => {
    try {
      const f = await api('/flows/' + encodeURIComponent(id));
      setFlow(f);
      const v = await api('/flows' + q({ project: f.project, name: f.name, all_versions: 'true', limit: 100 }));
      setVersions(v.flows);
      setFire(await api('/flows/' + encodeURIComponent(id) + '/fire-times?count=5'));
    } catch (x) { setErr(x); }
  };
  useEffect(() => { load(); }, [id]);
  if (!flow) return html`<h1>Flow</h1><${ErrorBox} e=${err} />${!err && html`<p role="status">Loading…</p>`}`;
  const setActive = async (active) => {
    try { await api('/flows/' + flow.id + '/schedule', { method: 'POST', body: { active } }); await load(); } catch (x) { setErr(x); }
  };
  return html`<h1>${flow.project} / ${flow.name} <span class="muted">v${flow.version}</span></h1>
  <${ErrorBox} e=${err} />
  <div class="actions">
    ${canWrite && html`<button onClick=${() => setRunning(true)} disabled=${flow.archived}>Run…</button>`}
    <a href=${'/runs?flow_id=' + flow.id}>Runs of this version</a>
  </div>
  ${running && html`<${RunForm} flow=${flow} onCancel=${() => setRunning(false)} />`}
  <div class="grid">
    <section class="card"><h2>Details</h2><dl>
      <dt>Labels</dt><dd><${Labels} l=${flow.labels} /></dd>
      <dt>Run config</dt><dd>${flow.run_config ? html`<pre>${JSON.stringify(flow.run_config, null, 2)}</pre>` : html`<span class="muted">none</span>`}</dd>
      <dt>Tasks</dt><dd>${(flow.tasks || []).length}</dd>
      <dt>Artifact</dt><dd class="mono wrap">${flow.artifact.uri}</dd>
      <dt>Parameters</dt><dd>${(flow.parameters || []).length ? (flow.parameters || []).map(p => html`<div><code>${p.name}</code> ${p.type || 'json'}${p.required ? ' (required)' : ''}${p.default !== undefined ? ' = ' + JSON.stringify(p.default) : ''}</div>`) : html`<span class="muted">none</span>`}</dd>
    </dl></section>
    <section class="card" aria-labelledby="h-sched"><h2 id="h-sched">Schedule</h2>
      ${!flow.schedule ? html`<${Empty}>This flow has no schedule.</${Empty}>` : html`
      <p>${scheduleText(flow)}</p>
      ${canWrite && html`<button onClick=${() => setActive(!flow.schedule_active)}>${flow.schedule_active ? 'Pause schedule' : 'Resume schedule'}</button>`}
      ${fire && fire.fire_times.length > 0 && html`<table><thead><tr><th>Next fire time (${fire.timezone})</th><th>In your zone (${browserZone})</th></tr></thead>
        <tbody>${fire.fire_times.map(t => html`<tr><td>${absolute(t, fire.timezone)}</td><td>${absolute(t)}</td></tr>`)}</tbody></table>`}`}
    </section>
  </div>
  <section class="card"><h2>Versions</h2><table><thead><tr><th>Version</th><th>Registered</th><th>Artifact SHA-256</th><th></th></tr></thead>
    <tbody>${versions.map(v => html`<tr><td><a href=${'/flows/' + v.id}>v${v.version}</a>${v.id === flow.id && ' (shown)'}</td><td><${Time} t=${v.created} /></td>
      <td class="mono">${v.artifact.sha256.slice(0, 16)}…</td><td>${v.archived ? html`<span class="badge muted">archived</span>` : html`<span class="badge ok">latest</span>`}</td></tr>`)}</tbody></table></section>`;
}
