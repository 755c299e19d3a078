// SPDX-License-Identifier: MIT
// Peer liveness for a call's two legs (SPEC "Peer liveness").
//
// webrtcbin 1.22 runs libnice without consent freshness (WEBRTCBIN-NOTES), so a peer that dies
// without a DTLS close (kill -9, a cable pulled) is never noticed by webrtcbin. This watches what
// each leg receives, and asks a quiet peer for a sign of life:
//   - a buffer probe on each `nicesrc` inside the leg's webrtcbin counts every packet the peer
//     sends after ICE that libnice hands on (DTLS, hence SCTP and its heartbeats; SRTP; SRTCP);
//   - STUN is consumed inside libnice and never reaches nicesrc, so the kernel's receive stamp of
//     the selected pair's socket (SIOCGSTAMPNS: the last datagram libnice read) is compared on
//     every tick: a peer's ICE consent checks and keepalives count too;
//   - a leg quiet for a quarter of the timeout is sent an ICE binding request on its selected pair
//     (an RFC 7675 consent check, built with the peer's ICE credentials from its description,
//     matched to ours media section by media section),
//     once a tick while it stays quiet. Any live ICE peer answers it within a round trip, whatever
//     its media does; the answer lands on the socket (libnice drops it as an unmatched response).
//     Two webrtcbin peers with no RTP either way send each other nothing else for 25 s.
// A leg that received nothing for `timeout_seconds` is reported once to the listener. A relayed
// (TURN) or ICE-TCP selected pair has no socket of its own to read or send on: there only what
// reaches nicesrc counts.
//
// Owns: the probes (removed on stop/destruction), the per-leg packet counters, the legs' ICE
// credentials, a STUN agent for the requests and one main-loop timer (1 s). Threads: every method
// on the main loop; the probes run on nicesrc's streaming thread and only bump an atomic counter
// (no lock, no allocation). libnice's socket is only read by ioctl and written by sendto from here.
#pragma once

#include <gst/gst.h>
#include <nice/agent.h>
#include <stun/stunagent.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/ref.h"

namespace rtgw::calls {

class PeerLiveness {
 public:
  enum class Leg { kClient = 0, kUpstream = 1 };

  class Listener {
   public:
    virtual ~Listener() = default;
    // `leg` received nothing for `silent_ms`. Reported once per leg; watching stops.
    virtual void OnPeerSilent(Leg leg, gint64 silent_ms) = 0;
  };

  // timeout_seconds <= 0: disabled (watch() does nothing, no request is ever sent).
  PeerLiveness(int timeout_seconds, Listener* listener);
  ~PeerLiveness();
  PeerLiveness(const PeerLiveness&) = delete;
  PeerLiveness& operator=(const PeerLiveness&) = delete;

  // Probes every nicesrc inside `webrtcbin` not probed yet and starts the leg's clock (call it
  // once the leg is connected: its transports exist by then). Returns how many nicesrc elements
  // the leg has probed in all. Idempotent.
  std::size_t watch(Leg leg, GstElement* webrtcbin);
  // Removes the probes and the timer (the call is ending).
  void stop();

  // Milliseconds since the leg last received a packet; -1 when the leg is not watched.
  gint64 idle_ms(Leg leg) const;
  std::uint64_t packets(Leg leg) const;
  // Binding requests sent to the leg's peer so far.
  std::uint64_t requests(Leg leg) const { return state(leg).requests; }

  static const char* name(Leg leg) { return leg == Leg::kClient ? "client" : "upstream"; }

 private:
  // One nicesrc of a leg: its probe, and the ICE component it reads.
  struct Source {
    Ref<GstPad> pad;
    gulong probe = 0;
    Ref<NiceAgent> agent;
    guint stream = 0;
    guint component = 0;
    gint64 socket_stamp_ns = -1;  // last receive stamp seen on the selected socket (-1: none)
  };
  struct LegState {
    std::atomic<std::uint64_t> packets{0};  // bumped by the probes
    std::uint64_t seen_packets = 0;         // as of seen_us
    gint64 seen_us = 0;                     // last time the leg showed life (0: not watched)
    bool reported = false;
    std::vector<Source> sources;
    // our ICE ufrag → the peer's ufrag and password (from the leg's descriptions)
    std::map<std::string, std::pair<std::string, std::string>> credentials;
    std::uint64_t requests = 0;
  };
  LegState& state(Leg leg) { return legs_[static_cast<std::size_t>(leg)]; }
  const LegState& state(Leg leg) const { return legs_[static_cast<std::size_t>(leg)]; }
  void tick();
  void remove_probes(LegState& leg);
  // Whether a selected socket of the leg read a datagram since the last call (takes the stamps).
  static bool socket_received(LegState& leg);
  // Sends one binding request on each of the leg's selected UDP pairs it has credentials for.
  void request_sign_of_life(LegState& leg);

  gint64 timeout_us_;
  Listener* listener_;
  std::array<LegState, 2> legs_;
  StunAgent stun_agent_{};
  guint64 tie_breaker_ = 0;
  SourceGuard timer_;
};

}  // namespace rtgw::calls
