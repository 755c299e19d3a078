// SPDX-License-Identifier: MIT
// One leg's media figures for the operator console: read from its webrtcbin on demand.
//
// Owns: nothing (a pure reader). `read_leg_stats` sums the leg's RTP sources as
// webrtc::read_rtp_sources reads them (the same session WebRtcLeg::poll_rtp_stats reads: no
// get-stats promise, no hop to the pc thread): packets and bytes received from the remote sources,
// their loss and jitter, and the round trip from the RTCP report blocks. It is only called for a
// call a console is watching, at most once per second per console stream, so an unwatched call
// costs nothing.
//
// Threads: main loop (rtpsession's "stats" property takes the session's own lock).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <optional>

namespace rtgw::console {

struct LegStats {
  std::uint64_t packets_received = 0;
  std::uint64_t bytes_received = 0;
  std::int64_t packets_lost = 0;
  double jitter_ms = 0;                 // interarrival jitter of what the leg receives
  std::optional<double> round_trip_ms;  // from RTCP report blocks; none before the first
};

// nullopt when the leg has no RTP session yet (or no webrtcbin any more).
std::optional<LegStats> read_leg_stats(GstElement* webrtcbin);

}  // namespace rtgw::console
