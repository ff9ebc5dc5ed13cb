// The task graph as SVG: tasks in layers by their longest path from a root; a mapped
// task is one node with its count. At most 400 nodes are drawn.
import { html, stateClass } from './util.js';

export function Graph({ flow, tasks }) {
  const defs = (flow && flow.tasks) || [];
  if (!defs.length) return html`<p class="empty">The flow version describes no tasks.</p>`;
  const names = defs.slice(0, 400).map(t => t.name);
  const known = new Set(names);
  const edges = ((flow && flow.edges) || []).filter(e => known.has(e.from) && known.has(e.to));
  const state = {};
  for (const t of tasks.task_runs) state[t.task] = { s: t.state };
  for (const m of tasks.mapped_tasks) {
    const top = Object.entries(m.states).sort((a, b) => b[1] - a[1]);
    state[m.task] = { s: top.length ? top[0][0] : 'Pending', n: m.count };
  }
  const layer = {}, ins = {};
  for (const n of names) { layer[n] = 0; ins[n] = []; }
  for (const e of edges) ins[e.to].push(e.from);
  for (let pass = 0; pass < names.length; pass++) {  // longest path; edges are acyclic
    let changed = false;
    for (const e of edges) if (layer[e.to] < layer[e.from] + 1) { layer[e.to] = layer[e.from] + 1; changed = true; }
    if (!changed) break;
  }
  const cols = [];
  for (const n of names) (cols[layer[n]] = cols[layer[n]] || []).push(n);
  const W = 170, H = 44, GX = 60, GY = 16, pos = {};
  cols.forEach((c, x) => c.forEach((n, y) => { pos[n] = [x * (W + GX) + 10, y * (H + GY) + 10]; }));
  const width = cols.length * (W + GX) + 20, height = Math.max(...cols.map(c => c.length)) * (H + GY) + 20;
  const mapped = new Set(defs.filter(t => t.mapped).map(t => t.name));
  return html`<div class="graph"><svg width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img"
    aria-label=${'Task graph: ' + names.length + ' tasks, ' + edges.length + ' edges'}>
    ${edges.map(e => {
      const [x1, y1] = pos[e.from], [x2, y2] = pos[e.to];
      return html`<path class="edge" d=${`M${x1 + W},${y1 + H / 2} C${x1 + W + GX / 2},${y1 + H / 2} ${x2 - GX / 2},${y2 + H / 2} ${x2},${y2 + H / 2}`} />`;
    })}
    ${names.map(n => {
      const [x, y] = pos[n], st = state[n];
      return html`<g class=${'node ' + (st ? stateClass(st.s) : 'muted')} transform=${`translate(${x},${y})`}>
        <rect width=${W} height=${H} rx="6" /><text x="8" y="18">${n.length > 22 ? n.slice(0, 21) + '…' : n}${mapped.has(n) ? ' ×' + (st && st.n ? st.n : '?') : ''}</text>
        <text x="8" y="35" class="sub">${st ? st.s : 'not started'}</text></g>`;
    })}
  </svg></div>`;
}
