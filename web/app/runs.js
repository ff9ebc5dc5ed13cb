// Runs: filters (flow, states, label, time, agent) in the URL, cursor paging, auto-refresh.
import { html, useState, useEffect, useRef, useInterval, State, Time, Empty, ErrorBox, Labels, STATES, navigate, shortId, duration } from './util.js';
import { api, q } from './api.js';

export async function allFlows() {
  const { projects } = await api('/projects');
  const out = [];
  for (const p of projects) {
    let cursor = '';
    do {
      const r = await api('/flows' + q({ project: p.name, cursor, limit: 1000 }));
      out.push(...r.flows);
      cursor = r.next_cursor || '';
    } while (cursor);
  }
  return out;
}

// The state filter: any number of states at once (each a `state` in the URL). Escape
// closes it and puts the focus back on it.
function StatePicker({ value, onChange }) {
  const box = useRef(null);
  const onKey = (e) => {
    if (e.key !== 'Escape' || !box.current || !box.current.open) return;
    box.current.open = false;
    box.current.querySelector('summary').focus();
  };
  const chosen = new Set(value);
  const toggle = (s, on) => onChange(STATES.filter((x) => (x === s ? on : chosen.has(x))));
  const text = value.length ? value.join(', ') : 'any';
  return html`<div class="statepick"><span id="state-filter">State</span>
    <details data-testid="state-filter" ref=${box} onKeyDown=${onKey}>
      <summary aria-label=${'State: ' + text} title=${text}>${text}</summary>
      <fieldset aria-labelledby="state-filter">
        ${STATES.map((s) => html`<label class="inline"><input type="checkbox" name="state" value=${s} checked=${chosen.has(s)}
          onChange=${(e) => toggle(s, e.currentTarget.checked)} /> ${s}</label>`)}
        ${value.length > 0 && html`<button type="button" class="link" onClick=${() => onChange([])}>Any state</button>`}
      </fieldset>
    </details></div>`;
}

const localInput = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

export function Runs({ query }) {
  const f = {
    flow_id: query.get('flow_id') || '', state: query.getAll('state'), label: query.get('label') || '',
    created_after: query.get('created_after') || '', created_before: query.get('created_before') || '',
    agent_id: query.get('agent_id') || '',
  };
  const cursors = (query.get('cursors') || '').split(',').filter(Boolean);  // the pages before this one
  const cursor = cursors.length ? cursors[cursors.length - 1] : '';
  const [flows, setFlows] = useState([]);
  const [page, setPage] = useState(null);
  const [err, setErr] = useState(null);
  const [auto, setAuto] = useState(true);
  const key = query.toString();
  const load = () => api('/flow-runs' + q({ ...f, cursor, limit: 50 })).then((p) => { setPage(p); setErr(null); }, setErr);
  useEffect(() => { setPage(null); load(); }, [key]);
  useEffect(() => { allFlows().then(setFlows, () => {}); }, []);
  useInterval(load, auto && !cursor ? 3000 : 0, [key]);

  const go = (changes) => {
    const n = { ...f, ...changes };
    navigate('/runs' + q({ flow_id: n.flow_id, state: n.state, label: n.label, created_after: n.created_after,
      created_before: n.created_before, agent_id: n.agent_id, cursors: changes.cursors !== undefined ? changes.cursors : undefined }));
  };
  const toIso = (v) => v ? new Date(v).toISOString() : '';
  const filtered = f.flow_id || f.state.length || f.label || f.created_after || f.created_before || f.agent_id;
  return html`<h1>Runs</h1>
  <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="Filters">
    <label>Flow <select value=${f.flow_id} onChange=${(e) => go({ flow_id: e.currentTarget.value })}>
      <option value="">any</option>${flows.map(x => html`<option value=${x.id}>${x.project} / ${x.name} v${x.version}</option>`)}</select></label>
    <${StatePicker} value=${f.state} onChange=${(state) => go({ state })} />
    <label>Label <input value=${f.label} onChange=${(e) => go({ label: e.currentTarget.value.trim() })} placeholder="gpu" /></label>
    <label>Created after <input type="datetime-local" value=${localInput(f.created_after)} onChange=${(e) => go({ created_after: toIso(e.currentTarget.value) })} /></label>
    <label>Created before <input type="datetime-local" value=${localInput(f.created_before)} onChange=${(e) => go({ created_before: toIso(e.currentTarget.value) })} /></label>
    ${filtered && html`<button type="button" class="link" onClick=${() => navigate('/runs')}>Clear filters</button>`}
    <label class="inline"><input type="checkbox" checked=${auto} onChange=${(e) => setAuto(e.currentTarget.checked)} /> Auto-refresh</label>
  </form>
  <${ErrorBox} e=${err} />
  ${!page ? (!err && html`<p role="status">Loading…</p>`) : page.runs.length === 0
    ? html`<${Empty}>${filtered ? 'No runs match these filters.' : 'No runs yet.'}</${Empty}>` : html`
  <div class="scroll"><table data-testid="runs">
    <thead><tr><th>Run</th><th>State</th><th>Labels</th><th>Created</th><th>Duration</th><th>Message</th></tr></thead>
    <tbody>${page.runs.map(r => html`<tr data-run=${r.id}>
      <td><a href=${'/runs/' + r.id}>${r.flow_name} <span class="mono muted">${shortId(r.id)}</span></a></td>
      <td><${State} s=${r.state} /></td><td><${Labels} l=${r.labels} /></td><td><${Time} t=${r.created} /></td>
      <td>${duration(r.start_time, r.end_time)}</td><td class="msg">${r.state_message}</td></tr>`)}</tbody>
  </table></div>`}
  <nav class="pager" aria-label="Pages">
    <button disabled=${!cursors.length} onClick=${() => go({ cursors: '' })}>Newest</button>
    <button disabled=${!cursors.length} onClick=${() => go({ cursors: cursors.slice(0, -1).join(',') })}>Previous page</button>
    <button disabled=${!page || !page.next_cursor} onClick=${() => go({ cursors: [...cursors, page.next_cursor].join(',') })}>Next page</button>
  </nav>`;
}
