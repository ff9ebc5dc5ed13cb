// Live logs: long-polls the log cursor API; level filter; search; follow that pauses
// when the reader scrolls up and resumes at the bottom; a final fetch once the run has
// ended; download. Lines are windowed (only those in view are in the DOM) and always
// rendered as text. Times are the browser's zone (named in the bar; UTC in each line's
// tooltip); a download has them in UTC (RFC 3339).
import { html, useState, useEffect, useRef, useMemo, FINAL, clockTime, timeTitle, browserZone } from './util.js';
import { api, q } from './api.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'];
const ROW = 20;

export function Logs({ runId }) {
  const store = useRef({ lines: [], cursor: '', done: false });
  const [count, setCount] = useState(0);
  const [status, setStatus] = useState('loading');
  const [err, setErr] = useState(null);
  const [level, setLevel] = useState('DEBUG');
  const [search, setSearch] = useState('');
  const [follow, setFollow] = useState(true);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(400);
  const box = useRef(null);
  const followRef = useRef(true);
  const lastTop = useRef(0);
  followRef.current = follow;

  useEffect(() => {
    let stop = false;
    const ctl = new AbortController();
    (async () => {
      let backoff = 500;
      while (!stop) {
        const s = store.current;
        try {
          const r = await api('/flow-runs/' + runId + '/logs' + q({ after: s.cursor, limit: 1000, wait_ms: 20000 }), { signal: ctl.signal });
          if (stop) return;
          if (r.logs.length) { s.lines.push(...r.logs); setCount(s.lines.length); }
          if (r.next_cursor) s.cursor = r.next_cursor;
          setErr(null);
          backoff = 500;
          // A full page (or one cut at the byte bound) may have more behind it: read on at once.
          if (r.more || r.logs.length >= 1000) continue;
          if (FINAL.has(r.flow_run_state)) {
            // One more read after the run ended: the last lines may land after the final state.
            if (s.done) { setStatus('ended'); return; }
            s.done = true;
            continue;
          }
          setStatus('live');
        } catch (e) {
          if (stop || e.name === 'AbortError') return;
          setErr(e);
          if (e.status === 401 || e.status === 403 || e.status === 404) return;
          await new Promise(res => setTimeout(res, backoff));
          backoff = Math.min(backoff * 2, 10000);
        }
      }
    })();
    return () => { stop = true; ctl.abort(); };
  }, [runId]);

  const minLevel = LEVELS.indexOf(level);
  const shown = useMemo(() => {
    const all = store.current.lines;
    const needle = search.toLowerCase();
    if (minLevel <= 0 && !needle) return all;
    return all.filter(l => LEVELS.indexOf(l.level) >= minLevel && (!needle || l.message.toLowerCase().includes(needle)));
  }, [count, minLevel, search]);

  // Follow: stay at the bottom as lines arrive.
  useEffect(() => {
    const el = box.current;
    if (el && followRef.current) { el.scrollTop = el.scrollHeight; lastTop.current = el.scrollTop; }
  }, [shown.length, follow]);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Following stops only when the reader moves up (the position went back from where
  // it was), not when lines arrived between our scroll and its event; it resumes at
  // the bottom.
  const onScroll = (e) => {
    const el = e.currentTarget;
    setTop(el.scrollTop);
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW;
    if (atBottom) { if (!followRef.current) setFollow(true); }
    else if (el.scrollTop < lastTop.current - 1 && followRef.current) setFollow(false);
    lastTop.current = el.scrollTop;
  };
  const download = () => {
    const text = store.current.lines.map(l => `${l.timestamp} ${l.level} ${l.task ? '[' + l.task + (l.map_index >= 0 ? '#' + l.map_index : '') + '] ' : ''}${l.message}`).join('\n') + '\n';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    a.download = 'run-' + runId + '.log';
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };

  const first = Math.max(0, Math.floor(top / ROW) - 20);
  const last = Math.min(shown.length, Math.ceil((top + height) / ROW) + 20);
  const rows = [];
  for (let i = first; i < last; i++) {
    const l = shown[i];
    rows.push(html`<div class=${'logline lv-' + l.level} style=${{ top: (i * ROW) + 'px' }} key=${l.id}>
      <time class="ts" datetime=${l.timestamp} title=${timeTitle(l.timestamp)}>${clockTime(l.timestamp)}</time><span class="lv">${l.level}</span>${l.task && html`<span class="task">${l.task}${l.map_index >= 0 ? '#' + l.map_index : ''}</span>`}<span class="m">${l.message}</span></div>`);
  }
  return html`<section class="card" aria-labelledby="h-logs">
    <h2 id="h-logs">Logs <span class="muted" data-testid="log-count">${count} lines</span>
      <span class=${'badge ' + (status === 'live' ? 'run' : 'muted')} data-testid="log-status">${status === 'live' ? 'live' : status === 'ended' ? 'complete' : 'loading'}</span></h2>
    <div class="logbar">
      <label>Level <select value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>${LEVELS.map(l => html`<option value=${l}>${l} and above</option>`)}</select></label>
      <label>Search <input type="search" value=${search} onInput=${(e) => setSearch(e.currentTarget.value)} /></label>
      ${follow ? html`<span class="badge run" data-testid="follow">following</span>`
        : html`<button onClick=${() => setFollow(true)} data-testid="resume">Resume following</button>`}
      <button onClick=${download}>Download</button>
      <span class="muted" data-testid="log-zone" title="Downloaded logs have their times in UTC">times in ${browserZone}</span>
      ${(search || minLevel > 0) && html`<span class="muted">${shown.length} shown</span>`}
    </div>
    ${err && html`<div class="error" role="alert">${err.message}</div>`}
    <div class="logs" ref=${box} onScroll=${onScroll} tabindex="0" role="log" aria-label="Log lines" data-testid="logs">
      <div class="logspace" style=${{ height: (shown.length * ROW) + 'px' }}>${rows}</div>
      ${shown.length === 0 && html`<p class="empty">${count ? 'No line matches this filter.' : status === 'ended' ? 'This run wrote no log lines.' : 'No log lines yet.'}</p>`}
    </div>
  </section>`;
}
