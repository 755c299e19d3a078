// SPDX-License-Identifier: MIT
#include "sdp/session_description.h"

#include <glib.h>

#include <cstring>
#include <set>
#include <sstream>
#include <vector>

#include "common/ref.h"
#include "sdp/dtls_fingerprint.h"

namespace rtgw::sdp {
namespace {

bool is_opus_rtpmap(const char* rtpmap_value, int* pt) {
  // "<pt> opus/48000/2"
  int payload = -1;
  char encoding[64] = {0};
  if (sscanf(rtpmap_value, "%d %63[^/]", &payload, encoding) != 2) return false;
  if (g_ascii_strcasecmp(encoding, "opus") != 0) return false;
  *pt = payload;
  return true;
}

int media_opus_pt(const GstSDPMedia* media) {
  for (guint i = 0; i < gst_sdp_media_attributes_len(media); i++) {
    const GstSDPAttribute* attr = gst_sdp_media_get_attribute(media, i);
    int pt = -1;
    if (g_strcmp0(attr->key, "rtpmap") == 0 && attr->value && is_opus_rtpmap(attr->value, &pt)) {
      // Only count it if the PT is among the m-line's formats.
      for (guint f = 0; f < gst_sdp_media_formats_len(media); f++)
        if (std::to_string(pt) == gst_sdp_media_get_format(media, f)) return pt;
    }
  }
  return -1;
}

bool is_data_channel(const GstSDPMedia* media) {
  if (g_strcmp0(gst_sdp_media_get_media(media), "application") != 0) return false;
  const char* proto = gst_sdp_media_get_proto(media);
  return proto && (g_str_has_suffix(proto, "DTLS/SCTP") || strstr(proto, "SCTP") != nullptr);
}

const char* media_or_session_attr(const GstSDPMessage* msg, const GstSDPMedia* media,
                                  const char* key) {
  const char* v = gst_sdp_media_get_attribute_val(media, key);
  return v ? v : gst_sdp_message_get_attribute_val(msg, key);
}

// aiortc 1.4 bundles m-lines that carry different ice-ufrag values, which webrtcbin 1.22
// rejects. Without the group each m-line gets its own transport, which both sides accept.
bool drop_inconsistent_bundle(GstSDPMessage* msg) {
  for (guint i = 0; i < gst_sdp_message_attributes_len(msg); i++) {
    const GstSDPAttribute* attr = gst_sdp_message_get_attribute(msg, i);
    if (g_strcmp0(attr->key, "group") != 0 || !attr->value ||
        !g_str_has_prefix(attr->value, "BUNDLE"))
      continue;
    UniqueStrv mids(g_strsplit(attr->value + strlen("BUNDLE"), " ", -1));
    std::set<std::string> ufrags;
    for (gchar** mid = mids.get(); *mid; mid++) {
      if (!**mid) continue;
      for (guint m = 0; m < gst_sdp_message_medias_len(msg); m++) {
        const GstSDPMedia* media = gst_sdp_message_get_media(msg, m);
        if (g_strcmp0(gst_sdp_media_get_attribute_val(media, "mid"), *mid) != 0) continue;
        const char* ufrag = media_or_session_attr(msg, media, "ice-ufrag");
        ufrags.insert(ufrag ? ufrag : "");
      }
    }
    if (ufrags.size() > 1) {
      gst_sdp_message_remove_attribute(msg, i);
      return true;
    }
  }
  return false;
}

}  // namespace

SdpMessagePtr parse(const std::string& text) {
  if (text.empty()) throw SdpError("the SDP is empty");
  if (text.rfind("v=0", 0) != 0) throw SdpError("the SDP must start with v=0");
  GstSDPMessage* raw = nullptr;
  if (gst_sdp_message_new_from_text(text.c_str(), &raw) != GST_SDP_OK || !raw)
    throw SdpError("the SDP could not be parsed");
  SdpMessagePtr msg(raw);
  if (gst_sdp_message_medias_len(msg.get()) == 0) throw SdpError("the SDP has no m-lines");
  return msg;
}

int opus_payload_type(const GstSDPMessage* message) {
  for (guint i = 0; i < gst_sdp_message_medias_len(message); i++) {
    const GstSDPMedia* media = gst_sdp_message_get_media(message, i);
    if (g_strcmp0(gst_sdp_media_get_media(media), "audio") != 0) continue;
    int pt = media_opus_pt(media);
    if (pt >= 0) return pt;
  }
  return -1;
}

void check_fingerprints(const GstSDPMessage* message) {
  for (guint i = 0; i < gst_sdp_message_medias_len(message); i++) {
    if (gst_sdp_media_get_port(gst_sdp_message_get_media(message, i)) == 0) continue;
    if (sdp::dtls::media_fingerprints(message, i).empty())
      throw SdpError("m-line " + std::to_string(i) +
                     " has no usable DTLS fingerprint (a=fingerprint with sha-1, sha-256, "
                     "sha-384 or sha-512 and its full digest)");
  }
}

CheckedOffer check_offer(const std::string& text) {
  CheckedOffer out;
  out.message = parse(text);
  GstSDPMessage* msg = out.message.get();
  bool has_audio = false, has_data = false;
  for (guint i = 0; i < gst_sdp_message_medias_len(msg); i++) {
    const GstSDPMedia* media = gst_sdp_message_get_media(msg, i);
    if (g_strcmp0(gst_sdp_media_get_media(media), "audio") == 0) {
      if (gst_sdp_media_get_port(media) == 0) continue;  // rejected m-line
      has_audio = true;
      if (out.opus_payload_type < 0) out.opus_payload_type = media_opus_pt(media);
    } else if (is_data_channel(media)) {
      has_data = true;
    }
    if (!media_or_session_attr(msg, media, "ice-ufrag") ||
        !media_or_session_attr(msg, media, "ice-pwd"))
      throw SdpError("m-line " + std::to_string(i) + " has no ice-ufrag/ice-pwd");
    if (!media_or_session_attr(msg, media, "fingerprint"))
      throw SdpError("m-line " + std::to_string(i) + " has no DTLS fingerprint");
  }
  check_fingerprints(msg);
  if (!has_audio) throw SdpError("the offer has no audio m-line");
  if (out.opus_payload_type < 0) throw SdpError("the offer's audio m-line does not offer Opus");
  if (!has_data) throw SdpError("the offer has no data channel m-line (m=application)");
  out.dropped_bundle = drop_inconsistent_bundle(msg);
  return out;
}

std::string rewrite_candidates(const std::string& sdp_text, const CandidatePolicy& policy) {
  if (policy.nat_1to1_ips.empty() && policy.ipv6 && policy.tcp) return sdp_text;
  std::string out;
  std::set<std::string> seen;
  size_t start = 0;
  while (start < sdp_text.size()) {
    size_t end = sdp_text.find('\n', start);
    std::string line =
        sdp_text.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
    start = end == std::string::npos ? sdp_text.size() : end + 1;
    if (line.rfind("a=candidate:", 0) != 0) {
      out += line;
      continue;
    }
    // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    std::istringstream fields(line.substr(strlen("a=candidate:")));
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.size() < 8 || f[6] != "typ") {
      out += line;
      continue;
    }
    bool is_tcp = g_ascii_strcasecmp(f[2].c_str(), "tcp") == 0;
    bool is_v6 = f[4].find(':') != std::string::npos;
    if ((is_tcp && !policy.tcp) || (is_v6 && !policy.ipv6)) continue;
    if (policy.nat_1to1_ips.empty() || f[7] != "host") {
      out += line;
      continue;
    }
    std::string eol = line.size() >= 2 && line[line.size() - 2] == '\r' ? "\r\n" : "\n";
    for (const auto& nat : policy.nat_1to1_ips) {
      if ((nat.find(':') != std::string::npos) != is_v6) continue;
      std::vector<std::string> g = f;
      g[4] = nat;
      std::string key = g[1] + " " + g[2] + " " + g[4] + " " + g[5];
      if (!seen.insert(key).second) continue;
      std::string rebuilt = "a=candidate:" + g[0];
      for (size_t i = 1; i < g.size(); i++) rebuilt += " " + g[i];
      out += rebuilt + eol;
    }
  }
  return out;
}

std::string to_text(const GstSDPMessage* message) {
  UniqueStr text(gst_sdp_message_as_text(message));
  return text ? std::string(text.get()) : std::string();
}

}  // namespace rtgw::sdp
