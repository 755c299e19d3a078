// SPDX-License-Identifier: MIT
#include "calls/peer_liveness.h"

#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <linux/sockios.h>
#include <stun/usages/ice.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>

namespace rtgw::calls {
namespace {

constexpr guint kTickMs = 1000;

GstPadProbeReturn count_packet(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* packets = static_cast<std::atomic<std::uint64_t>*>(data);
  std::uint64_t n = 1;
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
  packets->fetch_add(n, std::memory_order_relaxed);
  return GST_PAD_PROBE_OK;
}

struct IteratorDeleter {
  void operator()(GstIterator* it) const { gst_iterator_free(it); }
};
using UniqueIterator = std::unique_ptr<GstIterator, IteratorDeleter>;

bool is_nicesrc(GstElement* element) {
  GstElementFactory* factory = gst_element_get_factory(element);
  // nicesrc, or the shared ICE agent's rtgwicesrc (webrtc/ice_source.h): same properties.
  return factory && (g_strcmp0(GST_OBJECT_NAME(factory), "nicesrc") == 0 ||
                     g_strcmp0(GST_OBJECT_NAME(factory), "rtgwicesrc") == 0);
}

struct DescriptionDeleter {
  void operator()(GstWebRTCSessionDescription* d) const { gst_webrtc_session_description_free(d); }
};
using UniqueDescription = std::unique_ptr<GstWebRTCSessionDescription, DescriptionDeleter>;

UniqueDescription description_of(GstElement* webrtcbin, const char* which) {
  GstWebRTCSessionDescription* raw = nullptr;
  g_object_get(webrtcbin, which, &raw, nullptr);
  return UniqueDescription(raw);
}

// A media section's ICE credentials, or the session's.
std::pair<const char*, const char*> credentials_of(const GstSDPMessage* sdp, guint media) {
  const GstSDPMedia* m = gst_sdp_message_get_media(sdp, media);
  const char* ufrag = m ? gst_sdp_media_get_attribute_val(m, "ice-ufrag") : nullptr;
  const char* pwd = m ? gst_sdp_media_get_attribute_val(m, "ice-pwd") : nullptr;
  if (!ufrag) ufrag = gst_sdp_message_get_attribute_val(sdp, "ice-ufrag");
  if (!pwd) pwd = gst_sdp_message_get_attribute_val(sdp, "ice-pwd");
  return {ufrag, pwd};
}

// Our ufrag → the peer's ufrag and password, media section by media section (an offer and its
// answer list them in the same order). An unbundled peer (aiortc) has one pair per section.
std::map<std::string, std::pair<std::string, std::string>> ice_credentials(GstElement* webrtcbin) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  UniqueDescription local = description_of(webrtcbin, "local-description");
  UniqueDescription remote = description_of(webrtcbin, "remote-description");
  if (!local || !local->sdp || !remote || !remote->sdp) return out;
  guint medias =
      std::min(gst_sdp_message_medias_len(local->sdp), gst_sdp_message_medias_len(remote->sdp));
  for (guint i = 0; i < medias; ++i) {
    auto [local_ufrag, local_pwd] = credentials_of(local->sdp, i);
    auto [remote_ufrag, remote_pwd] = credentials_of(remote->sdp, i);
    if (local_ufrag && remote_ufrag && remote_pwd)
      out.emplace(local_ufrag, std::make_pair(std::string(remote_ufrag), remote_pwd));
  }
  return out;
}

const uint16_t kStunAttributes[] = {STUN_ATTRIBUTE_USERNAME,
                                    STUN_ATTRIBUTE_MESSAGE_INTEGRITY,
                                    STUN_ATTRIBUTE_ERROR_CODE,
                                    STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS,
                                    STUN_ATTRIBUTE_PRIORITY,
                                    STUN_ATTRIBUTE_USE_CANDIDATE,
                                    STUN_ATTRIBUTE_ICE_CONTROLLED,
                                    STUN_ATTRIBUTE_ICE_CONTROLLING,
                                    0};

// Kernel receive stamp of the last datagram libnice read from `socket` (SIOCGSTAMPNS: "the
// timestamp of the last packet passed to the user"; the first call switches stamping on for the
// socket and never adds control messages to libnice's reads). -1 when there is none.
gint64 receive_stamp_ns(GSocket* socket) {
  struct timespec ts {};
  if (ioctl(g_socket_get_fd(socket), SIOCGSTAMPNS, &ts) != 0) return -1;
  return gint64{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

PeerLiveness::PeerLiveness(int timeout_seconds, Listener* listener)
    : timeout_us_(gint64{std::max(timeout_seconds, 0)} * G_USEC_PER_SEC), listener_(listener) {
  stun_agent_init(&stun_agent_, kStunAttributes, STUN_COMPATIBILITY_RFC5389,
                  static_cast<StunAgentUsageFlags>(STUN_AGENT_USAGE_SHORT_TERM_CREDENTIALS |
                                                   STUN_AGENT_USAGE_USE_FINGERPRINT));
  tie_breaker_ = (guint64{g_random_int()} << 32) | g_random_int();
}

PeerLiveness::~PeerLiveness() { stop(); }

std::size_t PeerLiveness::watch(Leg which, GstElement* webrtcbin) {
  LegState& leg = state(which);
  if (timeout_us_ <= 0 || leg.reported || !webrtcbin) return leg.sources.size();
  UniqueIterator it(gst_bin_iterate_recurse(GST_BIN(webrtcbin)));
  GValue item = G_VALUE_INIT;
  bool done = false;
  while (!done) {
    switch (gst_iterator_next(it.get(), &item)) {
      case GST_ITERATOR_OK: {
        auto* element = GST_ELEMENT(g_value_get_object(&item));
        if (is_nicesrc(element)) {
          auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(element, "src"));
          bool known = std::any_of(leg.sources.begin(), leg.sources.end(),
                                   [&](const Source& s) { return s.pad.get() == pad.get(); });
          if (pad && !known) {
            gulong id =
                gst_pad_add_probe(pad.get(),
                                  static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER |
                                                               GST_PAD_PROBE_TYPE_BUFFER_LIST),
                                  count_packet, &leg.packets, nullptr);
            if (id) {
              Source source;
              source.pad = std::move(pad);
              source.probe = id;
              g_object_get(element, "agent", source.agent.out(), "stream", &source.stream,
                           "component", &source.component, nullptr);
              leg.sources.push_back(std::move(source));
            }
          }
        }
        g_value_reset(&item);
        break;
      }
      case GST_ITERATOR_RESYNC:
        gst_iterator_resync(it.get());
        break;
      case GST_ITERATOR_ERROR:
      case GST_ITERATOR_DONE:
        done = true;
        break;
    }
  }
  g_value_unset(&item);
  // Taken again on each call: a renegotiation (ICE restart) may have changed them.
  leg.credentials = ice_credentials(webrtcbin);
  if (leg.seen_us == 0 && !leg.sources.empty()) {
    leg.seen_packets = leg.packets.load(std::memory_order_relaxed);
    socket_received(leg);  // takes the sockets' current stamps
    leg.seen_us = g_get_monotonic_time();
  }
  if (!timer_ && !leg.sources.empty())
    timer_ = SourceGuard(g_timeout_add(
        kTickMs,
        [](gpointer data) -> gboolean {
          static_cast<PeerLiveness*>(data)->tick();
          return G_SOURCE_CONTINUE;
        },
        this));
  return leg.sources.size();
}

bool PeerLiveness::socket_received(LegState& leg) {
  bool received = false;
  for (Source& source : leg.sources) {
    if (!source.agent || source.stream == 0 || source.component == 0) continue;
    // The selected pair's socket; none for a relayed or TCP pair (the probe still counts it).
    auto socket = Ref<GSocket>::adopt(
        nice_agent_get_selected_socket(source.agent.get(), source.stream, source.component));
    if (!socket) continue;
    gint64 stamp = receive_stamp_ns(socket.get());
    if (stamp < 0) continue;
    if (stamp != source.socket_stamp_ns) {
      received = received || source.socket_stamp_ns >= 0;
      source.socket_stamp_ns = stamp;
    }
  }
  return received;
}

void PeerLiveness::request_sign_of_life(LegState& leg) {
  for (Source& source : leg.sources) {
    if (!source.agent || source.stream == 0 || source.component == 0) continue;
    auto socket = Ref<GSocket>::adopt(
        nice_agent_get_selected_socket(source.agent.get(), source.stream, source.component));
    if (!socket) continue;  // relayed or TCP pair
    NiceCandidate* local = nullptr;
    NiceCandidate* remote = nullptr;
    if (!nice_agent_get_selected_pair(source.agent.get(), source.stream, source.component, &local,
                                      &remote) ||
        !local || !remote)
      continue;
    // Copied at once: the candidates belong to the agent (freed only with the stream or on an
    // ICE restart, which webrtcbin does not do behind our back in a call).
    struct sockaddr_storage to {};
    nice_address_copy_to_sockaddr(&remote->addr, reinterpret_cast<struct sockaddr*>(&to));
    guint32 priority = local->priority;
    gchar* ufrag_raw = nullptr;
    gchar* pwd_raw = nullptr;
    if (!nice_agent_get_local_credentials(source.agent.get(), source.stream, &ufrag_raw, &pwd_raw))
      continue;
    UniqueStr local_ufrag(ufrag_raw), local_pwd(pwd_raw);
    auto peer = leg.credentials.find(local_ufrag.get());
    if (peer == leg.credentials.end()) continue;  // not in the descriptions: not ours to ask
    const auto& [remote_ufrag, remote_pwd] = peer->second;
    gboolean controlling = FALSE;
    g_object_get(source.agent.get(), "controlling-mode", &controlling, nullptr);
    // USERNAME is "<peer's ufrag>:<ours>", the integrity key the peer's password (RFC 8445 7.2.2).
    std::string username = remote_ufrag + ":" + local_ufrag.get();
    uint8_t buffer[STUN_MAX_MESSAGE_SIZE_IPV6];
    StunMessage message;
    size_t length = stun_usage_ice_conncheck_create(
        &stun_agent_, &message, buffer, sizeof buffer,
        reinterpret_cast<const uint8_t*>(username.data()), username.size(),
        reinterpret_cast<const uint8_t*>(remote_pwd.data()), remote_pwd.size(),
        /*cand_use=*/false, controlling, priority, tie_breaker_, nullptr,
        STUN_USAGE_ICE_COMPATIBILITY_RFC5245);
    if (length == 0) continue;
    auto address = Ref<GSocketAddress>::adopt(g_socket_address_new_from_native(&to, sizeof to));
    if (!address) continue;
    // libnice's socket is non-blocking; a request that cannot leave now is simply not sent.
    if (g_socket_send_to(socket.get(), address.get(), reinterpret_cast<const gchar*>(buffer),
                         length, nullptr, nullptr) > 0)
      ++leg.requests;
  }
}

void PeerLiveness::tick() {
  gint64 now = g_get_monotonic_time();
  for (Leg which : {Leg::kClient, Leg::kUpstream}) {
    LegState& leg = state(which);
    if (leg.seen_us == 0 || leg.reported) continue;
    std::uint64_t packets = leg.packets.load(std::memory_order_relaxed);
    bool on_socket = socket_received(leg);
    if (packets != leg.seen_packets || on_socket) {
      leg.seen_packets = packets;
      leg.seen_us = now;
      continue;
    }
    if (now - leg.seen_us < timeout_us_) {
      // Quiet for a quarter of the timeout: ask (again each tick; the answer ends the asking).
      if (now - leg.seen_us >= std::max<gint64>(timeout_us_ / 4, G_USEC_PER_SEC / 2))
        request_sign_of_life(leg);
      continue;
    }
    leg.reported = true;
    remove_probes(leg);
    // The listener may end the call (and destroy this object) from here: nothing after it.
    listener_->OnPeerSilent(which, (now - leg.seen_us) / 1000);
    return;
  }
}

void PeerLiveness::remove_probes(LegState& leg) {
  for (Source& source : leg.sources) gst_pad_remove_probe(source.pad.get(), source.probe);
  leg.sources.clear();
}

void PeerLiveness::stop() {
  timer_.cancel();
  for (LegState& leg : legs_) remove_probes(leg);
}

gint64 PeerLiveness::idle_ms(Leg which) const {
  const LegState& leg = state(which);
  if (leg.seen_us == 0) return -1;
  // The count may have moved since the last tick.
  if (leg.packets.load(std::memory_order_relaxed) != leg.seen_packets) return 0;
  return (g_get_monotonic_time() - leg.seen_us) / 1000;
}

std::uint64_t PeerLiveness::packets(Leg which) const {
  return state(which).packets.load(std::memory_order_relaxed);
}

}  // namespace rtgw::calls
