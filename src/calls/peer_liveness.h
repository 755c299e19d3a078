// SPDX-License-Identifier: MIT
// Peer liveness for a call's two legs (SPEC "Peer liveness").
//
// webrtcbin 1.22 runs libnice without consent freshness (WEBRTCBIN-NOTES), so a peer that dies
// without a DTLS close (kill -9, a cable pulled) is never noticed by webrtcbin. This watches the
// receive path instead: a buffer probe on each `nicesrc` inside a leg's webrtcbin counts every
// packet the peer sends after ICE (DTLS, hence SCTP and its heartbeats; SRTP; SRTCP). STUN is
// consumed inside libnice and never reaches nicesrc, so it does not count. A leg that received
// nothing for `timeout_seconds` is reported once to the listener.
//
// Owns: the probes (removed on stop/destruction), the per-leg packet counters and one main-loop
// timer (1 s). Threads: every method on the main loop; the probes run on nicesrc's streaming
// thread and only bump an atomic counter (no lock, no allocation).
#pragma once

#include <gst/gst.h>

#include <array>
#include <atomic>
#include <cstdint>
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

  // timeout_seconds <= 0: disabled (watch() does nothing).
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

  static const char* name(Leg leg) { return leg == Leg::kClient ? "client" : "upstream"; }

 private:
  struct LegState {
    std::atomic<std::uint64_t> packets{0};  // bumped by the probes
    std::uint64_t seen_packets = 0;         // as of seen_us
    gint64 seen_us = 0;                     // last time the count moved (0: not watched)
    bool reported = false;
    std::vector<std::pair<Ref<GstPad>, gulong>> probes;
  };
  LegState& state(Leg leg) { return legs_[static_cast<std::size_t>(leg)]; }
  const LegState& state(Leg leg) const { return legs_[static_cast<std::size_t>(leg)]; }
  void tick();
  void remove_probes(LegState& leg);

  gint64 timeout_us_;
  Listener* listener_;
  std::array<LegState, 2> legs_;
  SourceGuard timer_;
};

}  // namespace rtgw::calls
