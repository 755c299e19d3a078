// SPDX-License-Identifier: MIT
// A leg's per-source RTP figures, read from webrtcbin's RTP session.
//
// Owns: nothing (a pure reader). `read_rtp_sources` reads RTP session 0 of webrtcbin's rtpbin
// (webrtcbin 1.22 names it "rtpbin"; with max-bundle everything is session 0) synchronously:
// no get-stats promise, no hop to the pc thread. It walks the session's "source-stats" (a
// GValueArray: deprecated in GLib, but what rtpsession 1.22 hands out) once, for every reader
// (WebRtcLeg's RTP statistics, the console's leg figures), each summing what it needs.
//
// Threads: main loop (rtpsession's "stats" property takes the session's own lock).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace rtgw::webrtc {

// One source of the session, as rtpsession reports it; a field it did not report stays zero.
struct RtpSourceStats {
  std::uint32_t ssrc = 0;
  bool internal = true;  // ours (a sender in this leg) rather than the remote peer's
  std::uint64_t packets_received = 0;
  std::uint64_t octets_received = 0;
  std::int64_t packets_lost = 0;
  std::uint32_t jitter = 0;  // interarrival jitter, in clock-rate units
  int clock_rate = 0;        // 0: not known yet
  // The source sent RTCP with a report block about us: its round trip, in seconds as 16.16
  // fixed point (0: none yet).
  bool have_rb = false;
  std::uint32_t rb_round_trip = 0;
};

// Every source of the leg's RTP session; nullopt when the leg has no RTP session yet (or
// `webrtcbin` is null).
std::optional<std::vector<RtpSourceStats>> read_rtp_sources(GstElement* webrtcbin);

}  // namespace rtgw::webrtc
