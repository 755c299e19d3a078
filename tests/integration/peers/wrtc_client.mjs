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
// The command line, signalling and result line live in node_common.mjs.
import { createRequire } from "node:module";
import { createCall } from "./node_common.mjs";

const require = createRequire(import.meta.url);
const wrtc = require("@roamhq/wrtc");
const { RTCPeerConnection, nonstandard } = wrtc;
const { RTCAudioSource, RTCAudioSink } = nonstandard;

const SAMPLE_RATE = 48000;
const FRAME_SAMPLES = SAMPLE_RATE / 100; // 10 ms frames, as RTCAudioSource requires
const TONE_HZ = 400;

// RTCAudioSink counts 10 ms frames; packets come from getStats.
const call = createCall("wrtc", { audio_frames_received: 0, audio_packets_received: null });
const { result } = call;

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

const dc = call.createChannel(pc);
dc.onopen = () => call.channelOpened();
dc.onclose = () => call.channelClosed();
dc.onmessage = (m) => call.messageReceived(m.data);

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

call.run(pc, {
  stats: audioStats,
  stopMedia: () => clearInterval(toneTimer),
  closePeer: async () => {
    for (const sink of sinks) sink.stop();
    track.stop();
    pc.close();
  },
});
