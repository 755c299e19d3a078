#!/usr/bin/env node
// A werift-based WebRTC caller (werift: the pure TypeScript WebRTC stack, no libwebrtc), talking
// to a gateway exactly as an OpenAI WebRTC client would. Same command line and result line as
// wrtc_client.mjs (both live in node_common.mjs).
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
import { createCall, sleep } from "./node_common.mjs";

const require = createRequire(import.meta.url);
const { RTCPeerConnection, MediaStreamTrack, RtpHeader, RtpPacket } = require("werift");

const FRAME_MS = 20;
const FRAME_SAMPLES = 960; // 20 ms at the 48 kHz Opus RTP clock
// One 20 ms Opus frame of silence (TOC 0xF8: CELT-only fullband 20 ms mono, one frame; payload
// 0xFF 0xFE), the frame WebRTC stacks send during silence. Decoders turn each into 960 samples.
const OPUS_SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);

// werift does not decode audio: received audio is counted in RTP packets, not frames.
const call = createCall("werift", { audio_frames_received: null, audio_packets_received: 0 });
const { result } = call;

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

const dc = call.createChannel(pc);
dc.stateChanged.subscribe((state) => {
  if (state === "open" && !result.channel_opened) call.channelOpened();
  else if (state === "closed") call.channelClosed();
});
dc.onMessage.subscribe((data) => call.messageReceived(data));

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
  if (audioTimer || call.closing) return;
  // setInterval drifts; send however many 20 ms frames are due since the start.
  const audioStart = Date.now();
  audioTimer = setInterval(() => {
    const due = Math.floor((Date.now() - audioStart) / FRAME_MS) + 1;
    while (result.audio_frames_sent < due) sendFrame();
  }, FRAME_MS);
}

async function audioStats() {
  try {
    const report = await transceiver.sender.getStats();
    let sent = 0;
    report.forEach((s) => { if (s.type === "outbound-rtp") sent += s.packetsSent || 0; });
    result.audio_packets_sent = sent;
  } catch (e) { /* stats are best effort */ }
}

call.run(pc, {
  stats: audioStats,
  stopMedia: () => { if (audioTimer) clearInterval(audioTimer); },
  closePeer: async () => {
    try { await Promise.race([pc.close(), sleep(2000)]); } catch (e) { /* best effort */ }
  },
});
