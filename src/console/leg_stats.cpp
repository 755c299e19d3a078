// SPDX-License-Identifier: MIT
#include "console/leg_stats.h"

#include <algorithm>

#include "webrtc/rtp_source_stats.h"

namespace rtgw::console {

std::optional<LegStats> read_leg_stats(GstElement* webrtcbin) {
  auto sources = webrtc::read_rtp_sources(webrtcbin);
  if (!sources) return std::nullopt;
  LegStats out;
  double jitter_clock = 0;
  int clock_rate = 48000;  // Opus's RTP clock
  for (const auto& s : *sources) {
    // A remote source that sent RTCP with a report block about us carries the round trip
    // (rb-round-trip: seconds in 16.16 fixed point).
    if (s.have_rb && s.rb_round_trip > 0)
      out.round_trip_ms =
          std::max(out.round_trip_ms.value_or(0.0), s.rb_round_trip * 1000.0 / 65536.0);
    if (s.internal) continue;
    if (s.clock_rate > 0) clock_rate = s.clock_rate;
    out.packets_received += s.packets_received;
    out.bytes_received += s.octets_received;
    out.packets_lost += s.packets_lost;
    jitter_clock = std::max(jitter_clock, static_cast<double>(s.jitter));
  }
  out.jitter_ms = jitter_clock * 1000.0 / clock_rate;
  return out;
}

}  // namespace rtgw::console
