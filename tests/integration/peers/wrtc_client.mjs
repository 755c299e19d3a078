#!/usr/bin/env node
// A libwebrtc-based native WebRTC caller (@roamhq/wrtc, a node-webrtc fork with a prebuilt
// libwebrtc), talking to a gateway exactly as an OpenAI WebRTC client would.
//
// Usage: node wrtc_client.mjs BASE_URL KEY MODEL DURATION_S [options]
//   MODEL may be "" (no ?model=).
//   --session JSON         send multipart sdp + session instead of application/sdp
//   --events JSON_ARRAY    events to send once the channel is open (strings sent verbatim);
//                          default: [{"type":"test.echo","payload":"wrtc-hello"}]
//   --close MODE           close (pc.close) | hangup (POST {location}/hangup, then close) |
//                          leave (exit without closing the peer connection)
//   --http-timeout S       signalling timeout (default 15)
// Prints one JSON line (the fields of peers.common.CallResult) and exits; everything is bounded.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const wrtc = require("@roamhq/wrtc");
const { RTCPeerConnection, nonstandard } = wrtc;
const { RTCAudioSource, RTCAudioSink } = nonstandard;

const SAMPLE_RATE = 48000;
const FRAME_SAMPLES = SAMPLE_RATE / 100; // 10 ms frames, as RTCAudioSource requires
const TONE_HZ = 400;

function parseArgs(argv) {
  const [baseUrl, key, model, duration, ...rest] = argv;
  if (!baseUrl || duration === undefined) {
    console.error("usage: wrtc_client.mjs BASE_URL KEY MODEL DURATION_S [options]");
    process.exit(64);
  }
  const opts = { baseUrl, key, model, duration: Number(duration), session: null,
                 events: [{ type: "test.echo", payload: "wrtc-hello" }], close: "close",
                 httpTimeout: 15 };
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]];
    if (flag === "--session") opts.session = JSON.parse(value);
    else if (flag === "--events") opts.events = JSON.parse(value);
    else if (flag === "--close") opts.close = value;
    else if (flag === "--http-timeout") opts.httpTimeout = Number(value);
    else { console.error(`unknown option ${flag}`); process.exit(64); }
  }
  return opts;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const opts = parseArgs(process.argv.slice(2));
const result = {
  client: "wrtc", status: null, headers: {}, location: null, call_id: null,
  offer_sdp: "", answer_sdp: "", error_body: null, error: null, channel_opened: false,
  raw_events: [], sent_events: [], audio_frames_received: 0, audio_frames_sent: 0,
  audio_packets_received: null, audio_packets_sent: null, connection_states: [],
  remote_closed: false,
  hangup_status: null, elapsed: 0,
};

function finish(code) {
  result.elapsed = (Date.now() - started) / 1000;
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

// Hard bound on the whole run, whatever happens.
setTimeout(() => { result.error = result.error || "watchdog: run took too long"; finish(2); },
           (opts.duration + opts.httpTimeout + 20) * 1000).unref();

// ---------------------------------------------------------------- media: a 400 Hz tone out
const source = new RTCAudioSource();
const track = source.createTrack();
const samples = new Int16Array(FRAME_SAMPLES);
let sampleIndex = 0;
function pushFrame() {
  for (let i = 0; i < FRAME_SAMPLES; i++, sampleIndex++) {
    samples[i] = Math.round(0.3 * 32767 * Math.sin(2 * Math.PI * TONE_HZ * sampleIndex / SAMPLE_RATE));
  }
  source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16, channelCount: 1,
                  numberOfFrames: FRAME_SAMPLES });
  result.audio_frames_sent++;
}
// setInterval drifts; push however many 10 ms frames are due since the start.
const toneStart = Date.now();
const toneTimer = setInterval(() => {
  const due = Math.floor((Date.now() - toneStart) / 10);
  while (result.audio_frames_sent < due) pushFrame();
}, 10);

// ---------------------------------------------------------------- peer connection
const pc = new RTCPeerConnection({ iceServers: [] });
pc.addTrack(track);
const sinks = [];
pc.ontrack = (ev) => {
  if (ev.track.kind !== "audio") return;
  const sink = new RTCAudioSink(ev.track);
  sink.ondata = () => { result.audio_frames_received++; };  // one call per 10 ms of audio
  sinks.push(sink);
};
pc.onconnectionstatechange = () => result.connection_states.push(pc.connectionState);

const dc = pc.createDataChannel("oai-events");
function send(raw) {
  try { dc.send(raw); result.sent_events.push(raw); }
  catch (e) { result.error = result.error || `send failed: ${e.message}`; }
}
dc.onopen = () => {
  result.channel_opened = true;
  for (const ev of opts.events) send(typeof ev === "string" ? ev : JSON.stringify(ev));
};
let closing = false;
dc.onclose = () => { if (!closing) result.remote_closed = true; };
dc.onmessage = (m) => {
  result.raw_events.push(typeof m.data === "string" ? m.data : Buffer.from(m.data).toString());
};

async function waitGathering(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(20);
}

async function audioStats() {
  let received = 0, sent = 0;
  try {
    const report = await pc.getStats();
    report.forEach((s) => {
      if ((s.kind || s.mediaType) !== "audio") return;
      if (s.type === "inbound-rtp") received += s.packetsReceived || 0;
      if (s.type === "outbound-rtp") sent += s.packetsSent || 0;
    });
    result.audio_packets_received = received;
    result.audio_packets_sent = sent;
  } catch (e) { /* stats are best effort */ }
}

function buildBody() {
  if (!opts.session) return { body: pc.localDescription.sdp, type: "application/sdp" };
  const form = new FormData();
  form.append("sdp", pc.localDescription.sdp);
  form.append("session", JSON.stringify(opts.session));
  return { body: form, type: null }; // fetch sets the multipart boundary
}

async function main() {
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(5000);
  result.offer_sdp = pc.localDescription.sdp;

  const url = new URL(opts.baseUrl.replace(/\/$/, "") + "/v1/realtime/calls");
  if (opts.model) url.searchParams.set("model", opts.model);
  const { body, type } = buildBody();
  const headers = {};
  if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
  if (type) headers["Content-Type"] = type;
  try {
    const resp = await fetch(url, { method: "POST", headers, body,
                                    signal: AbortSignal.timeout(opts.httpTimeout * 1000) });
    result.status = resp.status;
    result.headers = Object.fromEntries(resp.headers);
    const text = await resp.text();
    if (resp.status === 201) {
      result.answer_sdp = text;
      result.location = resp.headers.get("location");
      if (result.location) result.call_id = result.location.replace(/\/$/, "").split("/").pop();
    } else {
      result.error_body = text;
    }
  } catch (e) {
    result.error = `POST failed: ${e.message}`;
  }

  if (result.status === 201) {
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: result.answer_sdp });
      await sleep(opts.duration * 1000);
    } catch (e) {
      result.error = `setRemoteDescription failed: ${e.message}`;
    }
  }
  await audioStats();

  if (opts.close === "hangup" && result.location) {
    try {
      const hangupUrl = new URL(result.location + "/hangup", opts.baseUrl);
      const resp = await fetch(hangupUrl, { method: "POST",
        headers: opts.key ? { Authorization: `Bearer ${opts.key}` } : {},
        signal: AbortSignal.timeout(10000) });
      result.hangup_status = resp.status;
    } catch (e) { result.error = result.error || `hangup failed: ${e.message}`; }
  }
  clearInterval(toneTimer);
  closing = true;
  if (opts.close !== "leave") {
    for (const sink of sinks) sink.stop();
    track.stop();
    pc.close();
    await sleep(200); // let close_notify / SCTP abort leave before the process exits
  }
  finish(result.status === 201 && !result.error ? 0 : 1);
}

main().catch((e) => { result.error = `client failed: ${e.stack || e}`; finish(1); });
