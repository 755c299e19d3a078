#!/usr/bin/env node
// N concurrent native libwebrtc callers (@roamhq/wrtc, the package the integration peers use) in
// one node process, driven by load_bench.py over stdin/stdout.
//
// Usage: node load_wrtc.mjs BASE_URL[,BASE_URL...] KEY MODEL N [--gap-ms 50] [--pings 10]
//        [--max-s 600] [--audio-rtt]
// Several base URLs (e.g. several upstream processes for the direct phase): call i goes to the
// (i mod K)-th.
//
// Each call sends a 400 Hz tone (libwebrtc's Opus encoder, 20 ms packets: 50 packets/s) and
// `--pings` {"type":"test.echo","payload":"<call>:<seq>"} per second on the oai-events channel;
// every test.echoed that comes back is timed (send -> echo, in the channel's callback).
// With --audio-rtt the tone stops for 200 ms every 2 s, and each call listens to the audio that
// comes back (an upstream that echoes audio: fake_upstream.py --echo-audio): the time from a gap
// leaving the encoder to the gap's start coming out of the call's decoder is the audio round
// trip. The packet rate stays 50/s (libwebrtc sends no DTX by default).
// Calls are placed one after the other, `--gap-ms` apart (each POST waits for the previous
// answer), so set-up is timed while the earlier calls already carry load.
//
// Output lines (one JSON object after the tag):
//   UP {"up": n, "failed": n, "calls": [{post_ms, setup_ms, error}], ...}  all calls placed
//   WINDOW {"seconds", "rtt_ms": [...], "audio_rtt_ms": [...], "pings_sent", "echoes", "calls": [{rx, lost, jitter_ms,
//          tx}]}   answer to the "stop" command: figures between "start" and "stop"
//   DONE {}   after "quit": every call hung up and closed
// Commands on stdin: start | stop | quit. Everything is bounded: --max-s kills the process.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "integration", "peers", "package.json"));
const wrtc = require("@roamhq/wrtc");
const { RTCPeerConnection, nonstandard } = wrtc;
const { RTCAudioSource, RTCAudioSink } = nonstandard;

const [baseUrl, key, model, nArg, ...rest] = process.argv.slice(2);
const opts = { gapMs: 50, pings: 10, maxS: 600, audioRtt: false };
for (let i = 0; i < rest.length; i += 2) {
  if (rest[i] === "--audio-rtt") { opts.audioRtt = true; i--; continue; }
  if (rest[i] === "--gap-ms") opts.gapMs = Number(rest[i + 1]);
  else if (rest[i] === "--pings") opts.pings = Number(rest[i + 1]);
  else if (rest[i] === "--max-s") opts.maxS = Number(rest[i + 1]);
  else { console.error(`unknown option ${rest[i]}`); process.exit(64); }
}
const N = Number(nArg);
const baseUrls = (baseUrl || "").split(",").filter((u) => u); // call i goes to baseUrls[i % K]
if (!baseUrl || !(N > 0)) {
  console.error("usage: load_wrtc.mjs BASE_URL KEY MODEL N [--gap-ms MS] [--pings P] [--max-s S]");
  process.exit(64);
}
setTimeout(() => { console.error("load_wrtc: watchdog"); process.exit(3); }, opts.maxS * 1000).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (tag, obj) => process.stdout.write(`${tag} ${JSON.stringify(obj)}\n`);

// ------------------------------------------------------------------ audio: one timer for all
const SAMPLE_RATE = 48000;
const FRAME = SAMPLE_RATE / 100; // 10 ms frames, as RTCAudioSource requires
const samples = new Int16Array(FRAME);
const calls = [];
let framesDue = 0;
const audioStart = Date.now();
const GAP_PERIOD = 200; // frames (2 s): with --audio-rtt, the first GAP_FRAMES of each are silent
const GAP_FRAMES = 20;
const gapsSent = []; // performance.now() of each gap's first silent frame, newest last (bounded)
const audioTimer = setInterval(() => {
  const due = Math.floor((Date.now() - audioStart) / 10);
  while (framesDue < due) {
    const silent = opts.audioRtt && framesDue % GAP_PERIOD < GAP_FRAMES;
    if (opts.audioRtt && framesDue % GAP_PERIOD === 0) {
      gapsSent.push(performance.now());
      if (gapsSent.length > 8) gapsSent.shift();
    }
    for (let i = 0; i < FRAME; i++) {
      samples[i] = silent ? 0 : Math.round(0.3 * 32767 * Math.sin(2 * Math.PI * 400 * (framesDue * FRAME + i) / SAMPLE_RATE));
    }
    for (const c of calls) {
      if (c.source) c.source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16,
                                      channelCount: 1, numberOfFrames: FRAME });
    }
    framesDue++;
  }
}, 10);

// ------------------------------------------------------------------ window bookkeeping
let window = null; // {t0, rtt: [], audio: [], sent, echoes}

// The audio that comes back: a gap starts when a quiet 10 ms frame follows >= 300 ms of tone.
function listen(c, track) {
  const sink = new RTCAudioSink(track);
  c.sinks.push(sink);
  let loud = 0;
  sink.ondata = (d) => {
    const now = performance.now();
    const x = d.samples;
    let sum = 0;
    for (let i = 0; i < x.length; i++) sum += Math.abs(x[i]);
    const level = sum / Math.max(1, x.length);
    if (level > 2000) { loud++; return; }
    if (level < 500 && loud >= 30 && window) {
      // the newest gap sent before now; gaps are 2 s apart, so a round trip under ~1.8 s is
      // matched to the right one
      for (let i = gapsSent.length - 1; i >= 0; i--) {
        if (gapsSent[i] <= now) {
          if (gapsSent[i] >= window.t0 && now - gapsSent[i] < 1800) window.audio.push(now - gapsSent[i]);
          break;
        }
      }
    }
    loud = 0;
  };
}

async function inbound(pc) {
  const r = { rx: 0, lost: 0, jitter_ms: 0, tx: 0 };
  try {
    const report = await pc.getStats();
    report.forEach((s) => {
      if ((s.kind || s.mediaType) !== "audio") return;
      if (s.type === "inbound-rtp") {
        r.rx += s.packetsReceived || 0;
        r.lost += s.packetsLost || 0;
        r.jitter_ms = Math.max(r.jitter_ms, 1000 * (s.jitter || 0));
      }
      if (s.type === "outbound-rtp") r.tx += s.packetsSent || 0;
    });
  } catch (e) { r.error = String(e); }
  return r;
}

// ------------------------------------------------------------------ one call
async function placeCall(index) {
  const c = { index, post_ms: null, setup_ms: null, error: null, open: false, location: null,
              pending: new Map(), seq: 0, sinks: [] };
  const t0 = performance.now();
  c.source = new RTCAudioSource();
  c.track = c.source.createTrack();
  c.pc = new RTCPeerConnection({ iceServers: [] });
  c.pc.addTrack(c.track);
  if (opts.audioRtt) c.pc.ontrack = (e) => { if (e.track.kind === "audio") listen(c, e.track); };
  c.dc = c.pc.createDataChannel("oai-events");
  let firstEvent;
  const gotFirst = new Promise((r) => { firstEvent = r; });
  c.dc.onopen = () => { c.open = true; };
  c.dc.onmessage = (m) => {
    const now = performance.now();
    firstEvent();
    let ev;
    try { ev = JSON.parse(typeof m.data === "string" ? m.data : Buffer.from(m.data).toString()); }
    catch { return; }
    if (ev.type !== "test.echoed") return;
    const sent = c.pending.get(ev.payload);
    if (sent === undefined) return;
    c.pending.delete(ev.payload);
    if (window && sent.w === window) { window.rtt.push(now - sent.t); window.echoes++; }
  };
  calls.push(c);
  await c.pc.setLocalDescription(await c.pc.createOffer());
  const deadline = Date.now() + 5000;
  while (c.pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(5);
  const base = baseUrls[index % baseUrls.length];
  const url = new URL(base.replace(/\/$/, "") + "/v1/realtime/calls");
  if (model) url.searchParams.set("model", model);
  const tPost = performance.now();
  try {
    const resp = await fetch(url, { method: "POST", body: c.pc.localDescription.sdp,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/sdp" },
      signal: AbortSignal.timeout(20000) });
    const text = await resp.text();
    c.post_ms = performance.now() - tPost;
    if (resp.status !== 201) throw new Error(`POST ${resp.status}: ${text.slice(0, 200)}`);
    c.location = new URL(resp.headers.get("location"), base).toString();
    await c.pc.setRemoteDescription({ type: "answer", sdp: text });
    const ok = await Promise.race([gotFirst.then(() => true), sleep(20000).then(() => false)]);
    if (!ok) throw new Error("no first event within 20 s");
    c.setup_ms = performance.now() - t0;
  } catch (e) {
    c.error = String(e.message || e);
  }
  if (!c.error) {
    c.pingTimer = setInterval(() => {
      if (!c.open || c.dc.readyState !== "open") return;
      const payload = `${index}:${c.seq++}`;
      c.pending.set(payload, { t: performance.now(), w: window });
      if (c.pending.size > 200) c.pending.delete(c.pending.keys().next().value); // bounded
      if (window) window.sent++;
      try { c.dc.send(JSON.stringify({ type: "test.echo", payload })); } catch { /* closing */ }
    }, 1000 / opts.pings);
  }
  return c;
}

async function snapshot() {
  return Promise.all(calls.filter((c) => !c.error).map((c) => inbound(c.pc)));
}

// ------------------------------------------------------------------ main
const placed = [];
for (let i = 0; i < N; i++) {
  placed.push(await placeCall(i));
  await sleep(opts.gapMs);
}
out("UP", { up: placed.filter((c) => !c.error).length, failed: placed.filter((c) => c.error).length,
            calls: placed.map((c) => ({ post_ms: c.post_ms, setup_ms: c.setup_ms, error: c.error })) });

let startStats = null;
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const cmd = line.trim();
  if (cmd === "start") {
    startStats = await snapshot();
    window = { t0: performance.now(), rtt: [], audio: [], sent: 0, echoes: 0 };
    out("STARTED", {});
  } else if (cmd === "stop") {
    const w = window;
    window = null;
    const endStats = await snapshot();
    const seconds = (performance.now() - w.t0) / 1000;
    out("WINDOW", { seconds, rtt_ms: w.rtt, audio_rtt_ms: w.audio, pings_sent: w.sent, echoes: w.echoes,
                    calls: endStats.map((e, i) => ({ rx: e.rx - startStats[i].rx,
                                                     lost: e.lost - startStats[i].lost,
                                                     tx: e.tx - startStats[i].tx,
                                                     jitter_ms: e.jitter_ms })) });
  } else if (cmd === "quit") {
    break;
  }
}
clearInterval(audioTimer);
await Promise.all(calls.map(async (c) => {
  clearInterval(c.pingTimer);
  if (c.location) {
    try {
      await fetch(c.location + "/hangup", { method: "POST",
        headers: { Authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(5000) });
    } catch { /* best effort */ }
  }
  for (const sink of c.sinks) sink.stop();
  try { c.track.stop(); c.pc.close(); } catch { /* already closed */ }
}));
await sleep(300);
out("DONE", {});
process.exit(0);
