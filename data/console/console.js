// SPDX-License-Identifier: MIT
// The operator console (docs/operations.md "The operator console"). No framework: the admin key
// lives in `state.key` (memory only: no storage, no cookie), every request carries it as a
// Bearer header, and the live view comes from one Server-Sent Events stream read with fetch()
// (EventSource cannot send a header): GET /console/stream, one snapshot per second.
'use strict';

const HISTORY = 120;  // points per plot (two minutes at one snapshot per second)
const COLORS = ['#1f6feb', '#d1495b', '#2a9d8f', '#e9c46a', '#8e44ad', '#f4a261', '#264653',
                '#6a994e', '#bc4749', '#457b9d'];

// Everything the page knows, exposed for tests and for the curious (window.rtgwConsole).
const state = {
  key: null,
  signedIn: false,
  snapshots: 0,
  rows: [],
  selected: null,  // the watched call's id
  series: null,    // the watched call's plotted series: {time: [], packets: [[],[]], ...}
  spend: {hour: [], day: []},
  errors: [],
  window: 'hour',
  abort: null,     // the stream's AbortController
  retry: null,
  usageTimer: null,
};
window.rtgwConsole = state;

const $ = (id) => document.getElementById(id);

function headers() { return {Authorization: 'Bearer ' + state.key}; }

function setStatus(text) { $('status').textContent = text; }

function keyMessage(status) {
  if (status === 401) return 'That key is not valid (401).';
  if (status === 403) return 'This key is not an admin key: the console needs an admin key (403).';
  return 'The gateway answered ' + status + '.';
}

async function signIn(event) {
  event.preventDefault();
  const key = $('admin-key').value.trim();
  $('sign-in-error').textContent = '';
  if (!key) return;
  state.key = key;
  // /debug/calls is admin-only: it tells an admin key from any other at once.
  let response;
  try {
    response = await fetch('/debug/calls', {headers: headers(), cache: 'no-store'});
  } catch (e) {
    $('sign-in-error').textContent = 'The gateway does not answer: ' + e;
    state.key = null;
    return;
  }
  if (!response.ok) {
    $('sign-in-error').textContent = keyMessage(response.status);
    state.key = null;
    return;
  }
  $('admin-key').value = '';
  state.signedIn = true;
  $('sign-in-panel').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  openStream();
  loadUsage();
}

function signOut() {
  state.signedIn = false;
  state.key = null;
  if (state.abort) state.abort.abort();
  clearTimeout(state.retry);
  clearTimeout(state.usageTimer);
  state.selected = null;
  state.series = null;
  // Nothing the key read stays behind it.
  state.rows = [];
  state.errors = [];
  state.spend = {hour: [], day: []};
  for (const id of ['live', 'usage']) $(id).querySelector('tbody').replaceChildren();
  $('errors').replaceChildren();
  $('call-panel').hidden = true;
  $('console').hidden = true;
  $('sign-in-panel').hidden = false;
  $('sign-out').hidden = true;
  setStatus('signed out');
}

// --- the stream ---------------------------------------------------------------------------

async function openStream() {
  if (state.abort) state.abort.abort();
  clearTimeout(state.retry);
  if (!state.signedIn) return;
  const abort = new AbortController();
  state.abort = abort;
  const url = '/console/stream' + (state.selected ? '?watch=' + encodeURIComponent(state.selected) : '');
  try {
    const response = await fetch(url, {headers: headers(), signal: abort.signal, cache: 'no-store'});
    if (!response.ok) {
      let detail = '';
      try { detail = (await response.json()).error.message; } catch (e) { /* not JSON */ }
      setStatus('stream refused: ' + response.status + (detail ? ' ' + detail : ''));
      if (response.status === 401 || response.status === 403) {
        signOut();
        $('sign-in-error').textContent = keyMessage(response.status);
        return;
      }
      throw new Error('status ' + response.status);
    }
    setStatus('live');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let first = true;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (data) onSnapshot(JSON.parse(data), first);
        first = false;
      }
    }
    if (state.abort !== abort) return;
    setStatus('stream ended: reconnecting');
  } catch (e) {
    if (abort.signal.aborted) return;
    setStatus('stream lost (' + e.message + '): reconnecting');
  }
  if (state.abort === abort && state.signedIn) state.retry = setTimeout(openStream, 2000);
}

function onSnapshot(snap, firstOfStream) {
  state.snapshots++;
  state.rows = snap.rows || [];
  renderRows(snap);
  if (snap.watch && state.series && snap.watch.id === state.selected) addPoint(snap);
  if (snap.spend) { state.spend = snap.spend; renderSpend(); }
  if (snap.errors && snap.errors.length) addErrors(snap.errors, firstOfStream);
}

// --- live table -----------------------------------------------------------------------------

function fmt(n, digits) { return n == null ? '–' : Number(n).toFixed(digits); }

function age(seconds) {
  const s = Math.floor(seconds);
  return s < 60 ? s + ' s' : Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
}

function renderRows(snap) {
  const body = $('live').querySelector('tbody');
  body.replaceChildren();
  for (const row of state.rows) {
    const tr = document.createElement('tr');
    tr.dataset.id = row.id;
    if (row.id === state.selected) tr.className = 'selected';
    const cells = [row.id, row.transport, row.key, row.model, row.worker, row.state, age(row.age_seconds),
                   row.turns, fmt(row.cost_usd, 6), fmt(row.events_per_second_to_upstream, 1),
                   fmt(row.events_per_second_to_client, 1)];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      if (i === 0) td.className = 'id';
      td.textContent = text;
      tr.appendChild(td);
    });
    const td = document.createElement('td');
    if (row.transport === 'webrtc') {
      const button = document.createElement('button');
      button.className = 'hangup';
      button.type = 'button';
      button.textContent = 'Hang up';
      button.addEventListener('click', (e) => { e.stopPropagation(); hangUp(row.id); });
      td.appendChild(button);
    }
    tr.appendChild(td);
    if (row.transport === 'webrtc') tr.addEventListener('click', () => select(row.id));
    body.appendChild(tr);
  }
  $('live-count').textContent = state.rows.length;
  $('live-empty').hidden = state.rows.length > 0;
  const rates = snap.events_per_second || {};
  $('rate-up').textContent = fmt(rates.client_to_upstream, 1);
  $('rate-down').textContent = fmt(rates.upstream_to_client, 1);
  if (state.selected) {
    const live = state.rows.some((r) => r.id === state.selected);
    $('call-state').textContent = live ? 'live' : 'ended';
  }
}

async function hangUp(id) {
  const response = await fetch('/v1/realtime/calls/' + encodeURIComponent(id) + '/hangup',
                               {method: 'POST', headers: headers()});
  if (!response.ok) setStatus('hang-up refused: ' + response.status);
}

// --- the watched call ------------------------------------------------------------------------

function emptySeries() {
  const pair = () => [[], []];
  return {time: [], packets: pair(), bitrate: pair(), loss: pair(), jitter: pair(), rtt: pair(), events: pair()};
}

function select(id) {
  if (state.selected === id) return;
  state.selected = id;
  state.series = emptySeries();
  $('call-panel').hidden = false;
  $('call-id').textContent = id;
  $('call-details').textContent = '';
  loadCallDetails(id);
  openStream();  // the stream reads the legs only of the call it watches
  for (const tr of $('live').querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.dataset.id === id);
  drawCallCharts();
}

async function loadCallDetails(id) {
  const response = await fetch('/v1/realtime/calls/' + encodeURIComponent(id), {headers: headers()});
  if (!response.ok || state.selected !== id) return;
  const call = await response.json();
  const t = call.timings || {};
  $('call-details').textContent = 'key ' + call.key + ', model ' + call.model + ', worker ' + call.worker +
      ', set-up ' + fmt(t.setup_ms, 0) + ' ms, DTLS client ' + (call.dtls || {}).client +
      ' / upstream ' + (call.dtls || {}).upstream;
}

function addPoint(snap) {
  const s = state.series;
  const legs = snap.watch.legs || {};
  const push = (arr, v) => { arr.push(v == null ? null : v); if (arr.length > HISTORY) arr.shift(); };
  push(s.time, snap.time);
  ['client', 'upstream'].forEach((name, i) => {
    const leg = legs[name] || {};
    push(s.packets[i], leg.packets_per_second);
    push(s.bitrate[i], leg.bitrate_bps == null ? null : leg.bitrate_bps / 1000);
    push(s.loss[i], leg.loss_percent);
    push(s.jitter[i], leg.jitter_ms);
    push(s.rtt[i], leg.round_trip_ms);
  });
  const ev = snap.watch.events_per_second || {};
  push(s.events[0], ev.client_to_upstream);
  push(s.events[1], ev.upstream_to_client);
  s.packetsReceived = [(legs.client || {}).packets_received, (legs.upstream || {}).packets_received];
  drawCallCharts();
}

function drawCallCharts() {
  const s = state.series || emptySeries();
  lineChart($('chart-packets'), s.packets);
  lineChart($('chart-bitrate'), s.bitrate);
  lineChart($('chart-loss'), s.loss);
  lineChart($('chart-jitter'), s.jitter);
  lineChart($('chart-rtt'), s.rtt);
  lineChart($('chart-events'), s.events);
}

// A line chart of one or more series drawn by hand: axes, a max label, one line per series.
function lineChart(canvas, series) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, left = 44, bottom = 16, top = 8;
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const line of series) for (const v of line) if (v != null && v > max) max = v;
  max = max > 0 ? max * 1.1 : 1;
  ctx.strokeStyle = '#ccd';
  ctx.fillStyle = '#556';
  ctx.font = '11px system-ui, sans-serif';
  ctx.beginPath();
  ctx.moveTo(left, top); ctx.lineTo(left, h - bottom); ctx.lineTo(w - 4, h - bottom);
  ctx.stroke();
  ctx.fillText(max >= 100 ? max.toFixed(0) : max.toPrecision(2), 2, top + 10);
  ctx.fillText('0', 2, h - bottom);
  ctx.fillText(HISTORY + ' s', w - 40, h - 3);
  const xStep = (w - left - 6) / (HISTORY - 1);
  series.forEach((line, i) => {
    ctx.strokeStyle = COLORS[i];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    const offset = HISTORY - line.length;
    line.forEach((v, j) => {
      if (v == null) { pen = false; return; }
      const x = left + (offset + j) * xStep;
      const y = h - bottom - (v / max) * (h - bottom - top);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  });
}

// --- spend -----------------------------------------------------------------------------------

function renderSpend() {
  const list = state.spend[state.window] || [];
  const canvas = $('chart-spend');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, left = 60, bottom = 18, top = 8;
  ctx.clearRect(0, 0, w, h);
  $('spend-empty').hidden = list.length > 0;
  const n = list.length ? list[0].buckets.length : (state.window === 'hour' ? 60 : 24);
  const totals = new Array(n).fill(0);
  for (const s of list) s.buckets.forEach((v, i) => { totals[i] += v; });
  const max = Math.max(...totals, 0) * 1.1 || 1;
  ctx.strokeStyle = '#ccd';
  ctx.fillStyle = '#556';
  ctx.font = '11px system-ui, sans-serif';
  ctx.beginPath(); ctx.moveTo(left, top); ctx.lineTo(left, h - bottom); ctx.lineTo(w - 4, h - bottom); ctx.stroke();
  ctx.fillText('$' + max.toPrecision(2), 2, top + 10);
  ctx.fillText('$0', 2, h - bottom);
  ctx.fillText(state.window === 'hour' ? '60 min (per minute)' : '24 h (per hour)', left, h - 3);
  ctx.fillText('now', w - 28, h - 3);
  const barW = (w - left - 8) / n;
  const stack = new Array(n).fill(0);
  list.forEach((s, k) => {
    ctx.fillStyle = COLORS[k % COLORS.length];
    s.buckets.forEach((v, i) => {
      if (!v) return;
      const y0 = h - bottom - (stack[i] / max) * (h - bottom - top);
      const height = (v / max) * (h - bottom - top);
      ctx.fillRect(left + 2 + i * barW, y0 - height, Math.max(1, barW - 2), height);
      stack[i] += v;
    });
  });
  const legend = $('spend-legend');
  legend.replaceChildren();
  list.forEach((s, k) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = COLORS[k % COLORS.length];
    li.appendChild(sw);
    li.appendChild(document.createTextNode(s.key + ' · ' + s.model + ': $' + s.total_usd.toFixed(6)));
    legend.appendChild(li);
  });
}

async function loadUsage() {
  if (!state.signedIn) return;
  try {
    const response = await fetch('/v1/usage', {headers: headers(), cache: 'no-store'});
    if (response.ok) {
      const body = $('usage').querySelector('tbody');
      body.replaceChildren();
      for (const g of (await response.json()).data) {
        const tr = document.createElement('tr');
        for (const text of [g.key, g.model, g.turns, g.total_tokens, fmt(g.cost_usd, 6)]) {
          const td = document.createElement('td');
          td.textContent = text;
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
    }
  } catch (e) { /* the next round tries again */ }
  clearTimeout(state.usageTimer);
  state.usageTimer = setTimeout(loadUsage, 30000);
}

// --- errors ----------------------------------------------------------------------------------

function addErrors(list, firstOfStream) {
  // A new stream (a reconnect, another call watched) sends again all the ring holds: keep each
  // error once, by its number. Numbers that went back mean the gateway restarted.
  const newest = state.errors.length ? state.errors[0].seq : 0;
  if (firstOfStream && list.length && list[list.length - 1].seq < newest) state.errors = [];
  const seen = new Set(state.errors.map((e) => e.seq));
  for (const e of list) if (!seen.has(e.seq)) state.errors.unshift(e);
  state.errors.length = Math.min(state.errors.length, 100);
  const ol = $('errors');
  ol.replaceChildren();
  for (const e of state.errors) {
    const li = document.createElement('li');
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = new Date(e.time * 1000).toLocaleTimeString();
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = e.kind + ' ' + e.code;
    li.append(when, kind, document.createTextNode(' ' + e.message + (e.id ? ' (' + e.id + ')' : '') +
                                                   (e.key ? ' key ' + e.key : '')));
    ol.appendChild(li);
  }
  $('error-count').textContent = state.errors.length;
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  for (const radio of document.querySelectorAll('input[name=window]'))
    radio.addEventListener('change', () => { state.window = radio.value; renderSpend(); });
  drawCallCharts();
});
