// SPDX-License-Identifier: MIT
#include "console/leg_stats.h"

#include <algorithm>

#include "common/ref.h"

namespace rtgw::console {

std::optional<LegStats> read_leg_stats(GstElement* webrtcbin) {
  if (!webrtcbin) return std::nullopt;
  // webrtcbin 1.22 names its rtpbin "rtpbin"; with max-bundle everything is RTP session 0.
  auto rtpbin = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(webrtcbin), "rtpbin"));
  if (!rtpbin) return std::nullopt;
  Ref<GObject> session;
  g_signal_emit_by_name(rtpbin.get(), "get-internal-session", 0u, session.out());
  if (!session) return std::nullopt;
  GstStructure* raw = nullptr;
  g_object_get(session.get(), "stats", &raw, nullptr);
  UniqueStructure stats(raw);
  if (!stats) return std::nullopt;
  const GValue* sources = gst_structure_get_value(stats.get(), "source-stats");
  if (!sources || G_VALUE_TYPE(sources) != g_type_from_name("GValueArray")) return std::nullopt;
  LegStats out;
  double jitter_clock = 0;
  int clock_rate = 48000;  // Opus's RTP clock
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  auto* array = static_cast<GValueArray*>(g_value_get_boxed(sources));
  for (guint i = 0; array && i < array->n_values; ++i) {
    const GValue* v = &array->values[i];
    if (!GST_VALUE_HOLDS_STRUCTURE(v)) continue;
    const GstStructure* s = gst_value_get_structure(v);
    // A remote source that sent RTCP with a report block about us carries the round trip
    // (rb-round-trip: seconds in 16.16 fixed point).
    gboolean have_rb = FALSE;
    guint rtt = 0;
    if (gst_structure_get_boolean(s, "have-rb", &have_rb) && have_rb &&
        gst_structure_get_uint(s, "rb-round-trip", &rtt) && rtt > 0)
      out.round_trip_ms = std::max(out.round_trip_ms.value_or(0.0), rtt * 1000.0 / 65536.0);
    gboolean internal = TRUE;
    if (!gst_structure_get_boolean(s, "internal", &internal) || internal) continue;
    guint64 packets = 0, octets = 0;
    gint lost = 0;
    guint jitter = 0;
    gint rate = 0;
    gst_structure_get_uint64(s, "packets-received", &packets);
    gst_structure_get_uint64(s, "octets-received", &octets);
    gst_structure_get_int(s, "packets-lost", &lost);
    gst_structure_get_uint(s, "jitter", &jitter);
    if (gst_structure_get_int(s, "clock-rate", &rate) && rate > 0) clock_rate = rate;
    out.packets_received += packets;
    out.bytes_received += octets;
    out.packets_lost += lost;
    jitter_clock = std::max(jitter_clock, static_cast<double>(jitter));
  }
  G_GNUC_END_IGNORE_DEPRECATIONS
  out.jitter_ms = jitter_clock * 1000.0 / clock_rate;
  return out;
}

}  // namespace rtgw::console
