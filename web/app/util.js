// Shared pieces: Preact + htm, times, states, small components.
import { h, render } from '../vendor/preact.mjs';
import { useState, useEffect, useRef, useMemo, useCallback } from '../vendor/hooks.mjs';
import htm from '../vendor/htm.mjs';

export const html = htm.bind(h);
export { h, render, useState, useEffect, useRef, useMemo, useCallback };

export const FINAL = new Set(['Success', 'Cached', 'Skipped', 'Failed', 'TimedOut', 'TriggerFailed', 'Crashed', 'Cancelled']);
export const WAITING = new Set(['Scheduled', 'Pending', 'Retrying']);
export const STATES = ['Scheduled', 'Pending', 'Submitted', 'Running', 'Retrying', 'Cancelling', 'Success', 'Cached',
  'Skipped', 'Failed', 'TimedOut', 'TriggerFailed', 'Crashed', 'Cancelled'];

export function stateClass(s) {
  if (s === 'Success' || s === 'Cached') return 'ok';
  if (s === 'Failed' || s === 'Crashed' || s === 'TimedOut' || s === 'TriggerFailed') return 'bad';
  if (s === 'Running' || s === 'Submitted' || s === 'Cancelling') return 'run';
  if (s === 'Cancelled' || s === 'Skipped') return 'muted';
  return 'wait';
}

export const State = ({ s }) => html`<span class=${'badge ' + stateClass(s)}>${s}</span>`;

const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
export const browserZone = zone;
const abs = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function relative(t, now = Date.now()) {
  const d = (t - now) / 1000, a = Math.abs(d);
  if (a < 45) return rel.format(Math.round(d), 'second');
  if (a < 2700) return rel.format(Math.round(d / 60), 'minute');
  if (a < 64800) return rel.format(Math.round(d / 3600), 'hour');
  return rel.format(Math.round(d / 86400), 'day');
}

export function absolute(iso, timeZone) {
  const d = new Date(iso);
  return timeZone ? new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long', timeZone }).format(d)
    : abs.format(d);
}

// The tooltip of every time shown: in the browser's zone (named), then in UTC.
export function timeTitle(iso) {
  const d = new Date(iso);
  return abs.format(d) + ' (' + zone + ')\n' + d.toISOString().replace('T', ' ').replace('Z', '') + ' UTC';
}

// A time of day in the browser's zone, 24-hour, with milliseconds: "14:05:09.042".
const clockParts = new Intl.DateTimeFormat('en-US', { hour: '2-digit', minute: '2-digit', second: '2-digit',
  fractionalSecondDigits: 3, hourCycle: 'h23' });
export function clockTime(iso) {
  const p = {};
  for (const { type, value } of clockParts.formatToParts(new Date(iso))) p[type] = value;
  return `${p.hour}:${p.minute}:${p.second}.${p.fractionalSecond}`;
}

// A time as "3 minutes ago", with the absolute time (browser's zone) beside it on wide screens.
export const Time = ({ t }) => {
  if (!t) return html`<span class="muted">–</span>`;
  const d = new Date(t);
  return html`<time datetime=${t} title=${timeTitle(t)}>${relative(d.getTime())}<span class="abs"> · ${abs.format(d)}</span></time>`;
};

export function duration(a, b) {
  if (!a) return '';
  const ms = (b ? new Date(b) : new Date()) - new Date(a);
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}

export const Labels = ({ l }) => (l && l.length) ? html`<span class="labels">${l.map(x => html`<span class="label">${x}</span>`)}</span>`
  : html`<span class="muted">none</span>`;

export const Empty = ({ children }) => html`<p class="empty" role="status">${children}</p>`;

export const ErrorBox = ({ e }) => e ? html`<div class="error" role="alert">${e.message || String(e)}</div>` : null;

// Calls `fn` now and every `ms` while the component is shown (and the tab is visible).
export function useInterval(fn, ms, deps) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!ms) return undefined;
    const id = setInterval(() => { if (!document.hidden) saved.current(); }, ms);
    return () => clearInterval(id);
  }, [ms, ...(deps || [])]);
}

export function shortId(id) { return id ? id.slice(0, 8) : ''; }

export function navigate(to) {
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
}
