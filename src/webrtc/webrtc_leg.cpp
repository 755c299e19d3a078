// SPDX-License-Identifier: MIT
#include "webrtc/webrtc_leg.h"

#include <gst/webrtc/nice/nice.h>
#include <nice/agent.h>
#include <nice/interfaces.h>

#include <memory>

#include "common/main_thread.h"
#include "common/pipeline.h"
#include "webrtc/dtls_certificate.h"
#include "webrtc/rtp_source_stats.h"

namespace rtgw::webrtc {
namespace {

// The host's non-loopback IPv4 addresses (libnice's own list without the IPv6 ones) as the agent's
// local addresses. Adds nothing when there is none.
void add_ipv4_local_addresses(NiceAgent* agent) {
  auto free_ips = [](GList* list) { g_list_free_full(list, g_free); };
  std::unique_ptr<GList, decltype(free_ips)> ips(nice_interfaces_get_local_ips(FALSE), free_ips);
  for (GList* item = ips.get(); item; item = item->next) {
    NiceAddress address;
    nice_address_init(&address);
    if (nice_address_set_from_string(&address, static_cast<const char*>(item->data)) &&
        nice_address_ip_version(&address) == 4)
      nice_agent_add_local_address(agent, &address);
  }
}

}  // namespace

struct WebRtcLeg::Pending {
  DescriptionDone done;
};

namespace {

std::string promise_error(const GstStructure* reply) {
  if (!reply) return {};
  if (gst_structure_has_field(reply, "error")) {
    GError* err = nullptr;
    gst_structure_get(reply, "error", G_TYPE_ERROR, &err, nullptr);
    UniqueError owned(err);
    return owned ? owned->message : "webrtcbin reported an error";
  }
  return {};
}

}  // namespace

WebRtcLeg::WebRtcLeg(std::string name, Ref<GstElement> webrtcbin,
                     const config::WebRtcConfig& config, Listener* listener)
    : name_(std::move(name)),
      webrtcbin_(std::move(webrtcbin)),
      config_(config),
      listener_(listener) {
  g_object_set(webrtcbin_.get(), "latency", static_cast<guint>(config_.jitterbuffer_latency_ms),
               nullptr);
  // webrtc.dtls_certificate: "ecdsa" gives each DTLS transport webrtcbin makes the ECDSA
  // certificate while the element is still NULL (webrtc/dtls_certificate.h).
  if (auto kind = dtls_certificate::parse(config_.dtls_certificate);
      kind != dtls_certificate::Kind::kRsa)
    connect_signal_for_lifetime<void(GstBin*, GstBin*, GstElement*)>(
        webrtcbin_.get(), "deep-element-added",
        [kind](GstBin*, GstBin*, GstElement* added) { dtls_certificate::apply(added, kind); });
  if (!config_.stun_server.empty() && config_.stun_server != "none") {
    std::string stun = config_.stun_server;
    if (stun.rfind("stun://", 0) != 0 && stun.rfind("stun:", 0) == 0)
      stun = "stun://" + stun.substr(5);
    g_object_set(webrtcbin_.get(), "stun-server", stun.c_str(), nullptr);
  }

  if (config_.ice_transport_policy == "relay")
    g_object_set(webrtcbin_.get(), "ice-transport-policy", GST_WEBRTC_ICE_TRANSPORT_POLICY_RELAY,
                 nullptr);
  for (const auto& turn : config_.turn_servers) {
    gboolean added = FALSE;
    g_signal_emit_by_name(webrtcbin_.get(), "add-turn-server", turn.c_str(), &added);
    if (!added) g_warning("[%s] TURN server refused by webrtcbin", name_.c_str());
  }

  Ref<GstWebRTCICE> ice;
  g_object_get(webrtcbin_.get(), "ice-agent", ice.out(), nullptr);
  if (ice) {
    if (GST_IS_WEBRTC_NICE(ice.get())) {
      if (!config_.ice_tcp) g_object_set(ice.get(), "ice-tcp", FALSE, nullptr);
      Ref<GObject> agent;
      g_object_get(ice.get(), "agent", agent.out(), nullptr);
      if (agent) {
        // Debian's libnice waits 200 ms for UPnP on every gathering unless told not to.
        g_object_set(agent.get(), "upnp", FALSE, nullptr);
        // Gather only on the configured interfaces' addresses (resolved at start-up).
        for (const auto& ip : config_.ice_addresses) {
          NiceAddress address;
          nice_address_init(&address);
          if (nice_address_set_from_string(&address, ip.c_str()))
            nice_agent_add_local_address(NICE_AGENT(agent.get()), &address);
        }
        // ice_ipv6 false: IPv6 candidates are never advertised (sdp::rewrite_candidates drops
        // them), so do not open their sockets either: each one costs the shared ICE thread a
        // polled fd per wake-up (issue 28). The host's own IPv4 addresses, as libnice would list
        // them, so gathering always completes; none (an IPv6-only host): libnice's default.
        if (config_.ice_addresses.empty() && !config_.ice_ipv6)
          add_ipv4_local_addresses(NICE_AGENT(agent.get()));
      }
    }
    if (config_.udp_port_min > 0)
      g_object_set(ice.get(), "min-rtp-port", static_cast<guint>(config_.udp_port_min),
                   "max-rtp-port", static_cast<guint>(config_.udp_port_max), nullptr);
  }

  // Signals run on webrtcbin's threads: post to the main loop guarded by the liveness token.
  Liveness alive = lifetime_.watch();
  signals_.push_back(connect_signal<void(GstElement*, GParamSpec*)>(
      webrtcbin_.get(), "notify::ice-gathering-state", [alive, this](GstElement*, GParamSpec*) {
        post_if_alive(alive, [this] { on_gathering_state_changed(); });
      }));
  signals_.push_back(connect_signal<void(GstElement*, GParamSpec*)>(
      webrtcbin_.get(), "notify::connection-state", [alive, this](GstElement* bin, GParamSpec*) {
        GstWebRTCPeerConnectionState state;
        g_object_get(bin, "connection-state", &state, nullptr);
        post_if_alive(alive, [this, state] {
          reported_state_ = state;
          if (listener_) listener_->OnLegConnectionState(*this, state);
        });
      }));
}

WebRtcLeg::~WebRtcLeg() = default;

void WebRtcLeg::detach() {
  lifetime_.end();
  signals_.clear();
  gathering_timeout_.cancel();
  gathering_.reset();
  listener_ = nullptr;
  webrtcbin_.reset();
}

GstWebRTCPeerConnectionState WebRtcLeg::connection_state() const {
  GstWebRTCPeerConnectionState state;
  g_object_get(webrtcbin_.get(), "connection-state", &state, nullptr);
  return state;
}

void WebRtcLeg::set_remote_description(GstWebRTCSDPType type, sdp::SdpMessagePtr message,
                                       Done done) {
  // webrtcbin takes ownership of the GstSDPMessage inside the description.
  sdp::SessionDescriptionPtr desc(gst_webrtc_session_description_new(type, message.release()));
  auto promise =
      make_promise([alive = lifetime_.watch(), done = std::move(done)](const GstStructure* reply) {
        std::string error = promise_error(reply);
        post_if_alive(alive, [done, error] { done(error); });
      });
  g_signal_emit_by_name(webrtcbin_.get(), "set-remote-description", desc.get(), promise.get());
}

void WebRtcLeg::create_local_description(bool offer, DescriptionDone done) {
  Liveness alive = lifetime_.watch();
  const char* field = offer ? "offer" : "answer";
  auto promise =
      make_promise([alive, this, field, done = std::move(done)](const GstStructure* reply) mutable {
        // On the pc thread: read the reply only, and hand the description to the main loop.
        std::string error = promise_error(reply);
        GstWebRTCSessionDescription* desc = nullptr;
        if (error.empty() && reply)
          gst_structure_get(reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, nullptr);
        if (error.empty() && !desc) error = std::string("webrtcbin created no ") + field;
        std::shared_ptr<GstWebRTCSessionDescription> owned(desc, sdp::SessionDescriptionDeleter());
        post_if_alive(alive, [this, owned, error, done = std::move(done)]() mutable {
          if (!error.empty()) {
            done(error, {});
            return;
          }
          set_local_description(owned.get(), std::move(done));
        });
      });
  g_signal_emit_by_name(webrtcbin_.get(), offer ? "create-offer" : "create-answer", nullptr,
                        promise.get());
}

void WebRtcLeg::set_local_description(GstWebRTCSessionDescription* desc, DescriptionDone done) {
  gathering_ = std::make_unique<Pending>(Pending{std::move(done)});
  gathering_timeout_ = run_after_ms(static_cast<guint>(config_.ice_gathering_timeout_ms),
                                    [this] { finish_gathering(true); });
  auto promise = make_promise([alive = lifetime_.watch(), this](const GstStructure* reply) {
    std::string error = promise_error(reply);
    post_if_alive(alive, [this, error] {
      if (!error.empty() && gathering_) {
        auto pending = std::move(gathering_);
        gathering_timeout_.cancel();
        pending->done("set-local-description failed: " + error, {});
        return;
      }
      on_gathering_state_changed();
    });
  });
  g_signal_emit_by_name(webrtcbin_.get(), "set-local-description", desc, promise.get());
}

void WebRtcLeg::on_gathering_state_changed() {
  if (!gathering_) return;
  GstWebRTCICEGatheringState state;
  g_object_get(webrtcbin_.get(), "ice-gathering-state", &state, nullptr);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE) finish_gathering(false);
}

void WebRtcLeg::finish_gathering(bool timed_out) {
  if (!gathering_) return;
  auto pending = std::move(gathering_);
  gathering_timeout_.cancel();
  GstWebRTCSessionDescription* raw = nullptr;
  g_object_get(webrtcbin_.get(), "local-description", &raw, nullptr);
  sdp::SessionDescriptionPtr local(raw);
  if (!local) {
    pending->done("no local description after ICE gathering", {});
    return;
  }
  std::string text = sdp::to_text(local->sdp);
  if (timed_out && text.find("a=candidate:") == std::string::npos) {
    pending->done("ICE gathering produced no candidate within " +
                      std::to_string(config_.ice_gathering_timeout_ms) + " ms",
                  {});
    return;
  }
  try {  // the ECDSA certificate's true fingerprint (webrtcbin 1.22 hashes its key too)
    text = dtls_certificate::with_own_fingerprint(
        std::move(text), dtls_certificate::parse(config_.dtls_certificate));
  } catch (const std::exception& e) {
    pending->done(e.what(), {});
    return;
  }
  pending->done({}, text);
}

void WebRtcLeg::poll_rtp_stats() {
  auto sources = read_rtp_sources(webrtcbin_.get());
  if (!sources) return;
  RtpStats totals;
  for (const auto& s : *sources) {
    if (s.internal) continue;
    totals.packets_received += s.packets_received;
    totals.packets_lost += s.packets_lost;
  }
  rtp_stats_ = totals;
}

Ref<GstPad> WebRtcLeg::request_audio_sink(GstCaps* codec_preferences) {
  auto pad = Ref<GstPad>::adopt(gst_element_request_pad_simple(webrtcbin_.get(), "sink_%u"));
  if (!pad) return {};
  Ref<GstWebRTCRTPTransceiver> transceiver;
  g_object_get(pad.get(), "transceiver", transceiver.out(), nullptr);
  if (transceiver)
    g_object_set(transceiver.get(), "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV,
                 "codec-preferences", codec_preferences, nullptr);
  audio_transceiver_ = std::move(transceiver);
  return pad;
}

void WebRtcLeg::set_audio_payload_type(int pt) {
  if (!audio_transceiver_) return;
  Ref<GstCaps> prefs;
  g_object_get(audio_transceiver_.get(), "codec-preferences", prefs.out(), nullptr);
  if (!prefs) return;
  auto caps = Ref<GstCaps>::adopt(gst_caps_copy(prefs.get()));
  for (guint i = 0; i < gst_caps_get_size(caps.get()); ++i)
    gst_structure_set(gst_caps_get_structure(caps.get(), i), "payload", G_TYPE_INT, pt, nullptr);
  g_object_set(audio_transceiver_.get(), "codec-preferences", caps.get(), nullptr);
}

}  // namespace rtgw::webrtc
