// SPDX-License-Identifier: MIT
#include "webrtc/rtp_source_stats.h"

#include "common/ref.h"

namespace rtgw::webrtc {

std::optional<std::vector<RtpSourceStats>> read_rtp_sources(GstElement* webrtcbin) {
  if (!webrtcbin) return std::nullopt;
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
  std::vector<RtpSourceStats> out;
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  auto* array = static_cast<GValueArray*>(g_value_get_boxed(sources));
  for (guint i = 0; array && i < array->n_values; ++i) {
    const GValue* v = &array->values[i];
    if (!GST_VALUE_HOLDS_STRUCTURE(v)) continue;
    const GstStructure* s = gst_value_get_structure(v);
    RtpSourceStats source;
    guint ssrc = 0, jitter = 0, rtt = 0;
    gboolean internal = TRUE, have_rb = FALSE;
    guint64 packets = 0, octets = 0;
    gint lost = 0, rate = 0;
    gst_structure_get_uint(s, "ssrc", &ssrc);
    // A source that does not say is treated as ours: only a remote source's figures count.
    if (gst_structure_get_boolean(s, "internal", &internal)) source.internal = internal;
    gst_structure_get_uint64(s, "packets-received", &packets);
    gst_structure_get_uint64(s, "octets-received", &octets);
    gst_structure_get_int(s, "packets-lost", &lost);
    gst_structure_get_uint(s, "jitter", &jitter);
    if (gst_structure_get_int(s, "clock-rate", &rate) && rate > 0) source.clock_rate = rate;
    if (gst_structure_get_boolean(s, "have-rb", &have_rb) && have_rb) {
      source.have_rb = true;
      gst_structure_get_uint(s, "rb-round-trip", &rtt);
      source.rb_round_trip = rtt;
    }
    source.ssrc = ssrc;
    source.packets_received = packets;
    source.octets_received = octets;
    source.packets_lost = lost;
    source.jitter = jitter;
    out.push_back(source);
  }
  G_GNUC_END_IGNORE_DEPRECATIONS
  return out;
}

}  // namespace rtgw::webrtc
