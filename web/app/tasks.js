// The run's task runs: a windowed table (a mapped task is one row with counts by
// state that expands to its children, loaded in pages as they scroll into view) and
// a Gantt on a canvas that draws only the rows in view.
import { html, useState, useEffect, useRef, State, duration, stateClass } from './util.js';
import { api, q } from './api.js';

const ROW = 30;
const CHUNK = 200;

export async function loadTasks(runId) {
  const out = { task_runs: [], mapped_tasks: [] };
  let cursor = '';
  for (let i = 0; i < 100; i++) {
    const r = await api('/flow-runs/' + runId + '/task-runs' + q({ cursor, limit: 1000 }));
    out.task_runs.push(...r.task_runs);
    out.mapped_tasks.push(...r.mapped_tasks);
    if (!r.next_cursor) break;
    cursor = r.next_cursor;
  }
  return out;
}

function counts(states) {
  return Object.entries(states).map(([s, n]) => html`<span class=${'badge ' + stateClass(s)}>${s} ${n}</span> `);
}

export function TaskTable({ runId, tasks, version }) {
  const [open, setOpen] = useState({});
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(480);
  const [, setTick] = useState(0);
  const chunks = useRef({});  // "task:chunk" -> array | 'loading'
  const box = useRef(null);
  useEffect(() => { chunks.current = {}; setTick(t => t + 1); }, [version]);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // The rows: every task, then a mapped task's children right after it when open.
  const entries = [];
  for (const t of tasks.task_runs) entries.push({ kind: 'task', name: t.task, t });
  for (const m of tasks.mapped_tasks) entries.push({ kind: 'map', name: m.task, m });
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const rows = [];  // [entry, childIndex|-1]
  const segs = [];
  let n = 0;
  for (const e of entries) {
    segs.push({ at: n, e, child: -1 });
    n += 1;
    if (e.kind === 'map' && open[e.name]) { segs.push({ at: n, e, child: 0 }); n += e.m.max_map_index + 1; }
  }
  const total = n;
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(total, Math.ceil((top + height) / ROW) + 10);
  const locate = (i) => {  // binary search the segment holding row i
    let lo = 0, hi = segs.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (segs[mid].at <= i) lo = mid; else hi = mid - 1; }
    const s = segs[lo];
    return s.child < 0 ? [s.e, -1] : [s.e, i - s.at];
  };
  const need = [];
  for (let i = first; i < last; i++) rows.push([i, ...locate(i)]);
  const child = (task, idx) => {
    const c = Math.floor(idx / CHUNK), k = task + ':' + c, got = chunks.current[k];
    if (got === undefined) { need.push([task, c, k]); return null; }
    return got === 'loading' ? null : got.find(x => x.map_index === idx) || null;
  };
  const cells = rows.map(([i, e, ci]) => {
    const style = { top: (i * ROW) + 'px' };
    if (ci >= 0) {
      const t = child(e.name, ci);
      return html`<div role="row" class="trow child" style=${style} key=${'c' + e.name + ci} data-map-index=${ci}>
        <span role="cell" class="c-name">${e.name}[${ci}]</span><span role="cell">${t ? html`<${State} s=${t.state} />` : '…'}</span>
        <span role="cell">${t ? t.attempts : ''}</span><span role="cell">${t ? duration(t.start_time, t.end_time) : ''}</span>
        <span role="cell" class="msg">${t ? t.message : ''}</span></div>`;
    }
    if (e.kind === 'task') {
      const t = e.t;
      return html`<div role="row" class="trow" style=${style} key=${'t' + e.name}>
        <span role="cell" class="c-name">${t.task}</span><span role="cell"><${State} s=${t.state} /></span><span role="cell">${t.attempts}</span>
        <span role="cell">${duration(t.start_time, t.end_time)}</span><span role="cell" class="msg">${t.message}</span></div>`;
    }
    const m = e.m, isOpen = !!open[m.task];
    return html`<div role="row" class="trow map" style=${style} key=${'m' + m.task}>
      <span role="cell" class="c-name"><button class="link" aria-expanded=${isOpen ? 'true' : 'false'} data-testid=${'expand-' + m.task}
        onClick=${() => setOpen({ ...open, [m.task]: !isOpen })}>${isOpen ? '▾' : '▸'} ${m.task}</button> <span class="muted">× ${m.count}</span></span>
      <span role="cell" class="counts">${counts(m.states)}</span><span role="cell"></span>
      <span role="cell">${duration(m.start_time, m.end_time)}</span><span role="cell"></span></div>`;
  });
  useEffect(() => {
    for (const [task, c, k] of need) {
      if (chunks.current[k] !== undefined) continue;
      chunks.current[k] = 'loading';
      const cursor = c === 0 ? "" : String(c * CHUNK);  // the first map index of the page
      api('/flow-runs/' + runId + '/task-runs' + q({ task, cursor, limit: CHUNK }))
        .then(r => { chunks.current[k] = r.task_runs; setTick(t => t + 1); }, () => { delete chunks.current[k]; });
    }
  });
  return html`<div class="ttable" role="table" aria-label="Task runs" aria-rowcount=${total}>
    <div role="rowgroup" class="thead"><div role="row" class="trow head">
      <span role="columnheader">Task</span><span role="columnheader">State</span><span role="columnheader">Attempts</span>
      <span role="columnheader">Duration</span><span role="columnheader">Message</span></div></div>
    <div role="rowgroup" class="tbody" ref=${box} onScroll=${(e) => setTop(e.currentTarget.scrollTop)} tabindex="0" data-testid="task-rows">
      <div class="tspace" style=${{ height: (total * ROW) + 'px' }}>${cells}</div></div>
  </div>`;
}

const COLORS = { ok: '#16a34a', bad: '#dc2626', run: '#2563eb', wait: '#a16207', muted: '#6b7280' };

export function Gantt({ tasks, run }) {
  const canvas = useRef(null);
  const [top, setTop] = useState(0);
  const items = [
    ...tasks.task_runs.map(t => ({ name: t.task, start: t.start_time, end: t.end_time, state: t.state })),
    ...tasks.mapped_tasks.map(m => {
      const states = Object.entries(m.states).sort((a, b) => b[1] - a[1]);
      return { name: m.task + ' × ' + m.count, start: m.start_time, end: m.end_time, state: states.length ? states[0][0] : 'Pending' };
    }),
  ].filter(x => x.start).sort((a, b) => a.start < b.start ? -1 : 1);
  const H = 22, VIEW = Math.min(items.length, 14) * H + 24;
  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const dpr = devicePixelRatio || 1, w = c.clientWidth;
    c.width = w * dpr; c.height = VIEW * dpr;
    const g = c.getContext('2d');
    g.scale(dpr, dpr);
    const css = getComputedStyle(c);
    g.fillStyle = css.color; g.font = '12px system-ui, sans-serif';
    if (!items.length) return;
    const t0 = Math.min(...items.map(x => +new Date(x.start)));
    const t1 = Math.max(...items.map(x => +new Date(x.end || Date.now())), t0 + 1);
    const left = Math.min(220, w * 0.35), span = w - left - 8;
    const first = Math.floor(top / H), lastRow = Math.min(items.length, first + Math.ceil(VIEW / H) + 1);
    for (let i = first; i < lastRow; i++) {
      const x = items[i], y = i * H - top + 4;
      g.fillStyle = css.color;
      g.fillText(x.name.length > 30 ? x.name.slice(0, 29) + '…' : x.name, 4, y + 14);
      const a = left + span * (+new Date(x.start) - t0) / (t1 - t0);
      const b = left + span * (+new Date(x.end || Date.now()) - t0) / (t1 - t0);
      g.fillStyle = COLORS[stateClass(x.state)];
      g.fillRect(a, y + 3, Math.max(2, b - a), H - 8);
    }
  });
  if (!items.length) return html`<p class="empty">No task run has started yet.</p>`;
  return html`<div class="gantt" onScroll=${(e) => setTop(e.currentTarget.scrollTop)} style=${{ height: VIEW + 'px' }}>
    <div style=${{ height: (items.length * H) + 'px' }}><canvas ref=${canvas} class="gantt-canvas" style=${{ height: VIEW + 'px' }}
      role="img" aria-label=${'Gantt chart of ' + items.length + ' tasks of run ' + run.id}></canvas></div></div>`;
}
