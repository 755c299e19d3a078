#!/usr/bin/env node
// A werift-based WebRTC caller (werift: the pure TypeScript WebRTC stack, no libwebrtc), talking
// to a gateway exactly as an OpenAI WebRTC client would. Same command line and result line as
// wrtc_client.mjs.
//
// Usage: node werift_client.mjs BASE_URL KEY MODEL DURATION_S [options]
//   MODEL may be "" (no ?model=).
//   --session JSON         send multipart sdp + session instead of application/sdp
//   --events JSON_ARRAY    events to send once the channel is open (strings sent verbatim);
//                          default: [{"type":"test.echo","payload":"werift-hello"}]
//   --close MODE           close (pc.close) | hangup (POST {location}/hangup, then close) |
//                          leave (exit without closing the peer connection)
//   --http-timeout S       signalling timeout (default 15)
// Prints one JSON line (the fields of peers.common.CallResult) and exits; everything is bounded.
//
// werift has no audio encoder: the client builds the RTP packets itself. Every 20 ms (once the
// peer connection is connected) it writes one Opus silence frame to its track (track.writeRtp)
// with RTP timestamps advancing by 960 (48 kHz clock) and consecutive sequence numbers;
// werift's RTCRtpSender stamps its SSRC and the negotiated payload type.
// Received audio is counted per RTP packet on the remote track (track.onReceiveRtp).
//
// The peer connection uses werift's defaults (codecs OPUS/48000/2 + PCMU, bundlePolicy
// max-compat) except iceServers: [] (werift's default would ask a public STUN server).
// RTGW_PEERS_ICE_ADDRESSES (comma list, e.g. 127.0.0.1) replaces the host candidates werift
// gathers, as it does for the aiortc peers.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { RTCPeerConnection, MediaStreamTrack, RtpHeader, RtpPacket } = require("werift");

const FRAME_MS = 20;
const FRAME_SAMPLES = 960; // 20 ms at the 48 kHz Opus RTP clock
// One 20 ms Opus frame of silence (TOC 0xF8: CELT-only fullband 20 ms mono, one frame; payload
// 0xFF 0xFE), the frame WebRTC stacks send during silence. Decoders turn each into 960 samples.
const OPUS_SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);

function parseArgs(argv) {
  const [baseUrl, key, model, duration, ...rest] = argv;
  if (!baseUrl || duration === undefined) {
    console.error("usage: werift_client.mjs BASE_URL KEY MODEL DURATION_S [options]");
    process.exit(64);
  }
  const opts = { baseUrl, key, model, duration: Number(duration), session: null,
                 events: [{ type: "test.echo", payload: "werift-hello" }], close: "close",
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
  client: "werift", status: null, headers: {}, location: null, call_id: null,
  offer_sdp: "", answer_sdp: "", error_body: null, error: null, channel_opened: false,
  raw_events: [], sent_events: [], audio_frames_received: null, audio_frames_sent: 0,
  audio_packets_received: 0, audio_packets_sent: null, connection_states: [],
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

// ---------------------------------------------------------------- peer connection
function peerConfig() {
  const config = { iceServers: [] };
  const addrs = (process.env.RTGW_PEERS_ICE_ADDRESSES || "").split(",").map((a) => a.trim())
    .filter(Boolean);
  if (addrs.length) {
    config.iceUseIpv4 = false; // no interface scan: only the given host addresses
    config.iceUseIpv6 = false;
    config.iceAdditionalHostAddresses = addrs;
  }
  return config;
}

const pc = new RTCPeerConnection(peerConfig());
const track = new MediaStreamTrack({ kind: "audio" });
const transceiver = pc.addTransceiver(track, { direction: "sendrecv" });
pc.onTrack.subscribe((remote) => {
  if (remote.kind !== "audio") return;
  remote.onReceiveRtp.subscribe(() => { result.audio_packets_received++; });
});
pc.connectionStateChange.subscribe((state) => {
  result.connection_states.push(state);
  if (state === "connected") startAudio();
});

const dc = pc.createDataChannel("oai-events");
function send(raw) {
  try { dc.send(raw); result.sent_events.push(raw); }
  catch (e) { result.error = result.error || `send failed: ${e.message}`; }
}
let closing = false;
dc.stateChanged.subscribe((state) => {
  if (state === "open" && !result.channel_opened) {
    result.channel_opened = true;
    for (const ev of opts.events) send(typeof ev === "string" ? ev : JSON.stringify(ev));
  } else if (state === "closed" && !closing) {
    result.remote_closed = true;
  }
});
dc.onMessage.subscribe((data) => {
  result.raw_events.push(typeof data === "string" ? data : Buffer.from(data).toString());
});

// ---------------------------------------------------------------- media: Opus RTP out
let audioTimer = null;
let sequenceNumber = Math.floor(Math.random() * 0x10000);
let timestamp = Math.floor(Math.random() * 0x100000000);
function sendFrame() {
  const header = new RtpHeader({
    sequenceNumber, timestamp, marker: result.audio_frames_sent === 0,
    payloadType: 111, // replaced by the sender with the negotiated payload type
  });
  track.writeRtp(new RtpPacket(header, OPUS_SILENCE));
  sequenceNumber = (sequenceNumber + 1) & 0xffff;
  timestamp = (timestamp + FRAME_SAMPLES) >>> 0;
  result.audio_frames_sent++;
}
function startAudio() {
  if (audioTimer || closing) return;
  // setInterval drifts; send however many 20 ms frames are due since the start.
  const audioStart = Date.now();
  audioTimer = setInterval(() => {
    const due = Math.floor((Date.now() - audioStart) / FRAME_MS) + 1;
    while (result.audio_frames_sent < due) sendFrame();
  }, FRAME_MS);
}

async function waitGathering(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (pc.iceGatheringState !== "complete" && Date.now() < deadline) await sleep(20);
}

async function audioStats() {
  try {
    const report = await transceiver.sender.getStats();
    let sent = 0;
    report.forEach((s) => { if (s.type === "outbound-rtp") sent += s.packetsSent || 0; });
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
  closing = true;
  if (audioTimer) clearInterval(audioTimer);
  if (opts.close !== "leave") {
    try { await Promise.race([pc.close(), sleep(2000)]); } catch (e) { /* best effort */ }
    await sleep(200); // let close_notify / SCTP abort leave before the process exits
  }
  finish(result.status === 201 && !result.error ? 0 : 1);
}

main().catch((e) => { result.error = `client failed: ${e.stack || e}`; finish(1); });
