// SPDX-License-Identifier: MIT
#include "calls/call.h"

#include <stdexcept>

#include "common/log_text.h"
#include "common/main_thread.h"
#include "common/pipeline.h"
#include "common/pipeline_reaper.h"
#include "events/beta_dialect.h"
#include "events/event_path.h"
#include "webrtc/ice_agent.h"
#include "webrtc/sctp_ids.h"

namespace rtgw::calls {
namespace {

// Names the pipeline description must provide (see pipelines/call.pipeline).
constexpr const char* kClientBin = "client";
constexpr const char* kUpstreamBin = "upstream";
constexpr const char* kClientAudioIn = "client_audio_in";        // gets the client's RTP
constexpr const char* kUpstreamAudioOut = "upstream_audio_out";  // pays for the upstream leg
constexpr const char* kUpstreamAudioIn = "upstream_audio_in";
constexpr const char* kClientAudioOut = "client_audio_out";
using namespace events;  // client_events_in ... upstream_events_meter (events/event_path.h)

const char* state_name(GstWebRTCPeerConnectionState s) {
  switch (s) {
    case GST_WEBRTC_PEER_CONNECTION_STATE_NEW:
      return "new";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTING:
      return "connecting";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED:
      return "connected";
    case GST_WEBRTC_PEER_CONNECTION_STATE_DISCONNECTED:
      return "disconnected";
    case GST_WEBRTC_PEER_CONNECTION_STATE_FAILED:
      return "failed";
    case GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED:
      return "closed";
  }
  return "unknown";
}

// Links a webrtcbin src pad to the head of its relay chain; extra audio streams (the relay
// carries one each way) go to a fakesink so they never stall the leg with not-linked. Runs on a
// streaming thread: it touches only what it was given.
void link_received_pad(GstPad* pad, GstElement* pipeline, GstElement* chain_head,
                       const std::string& call_id) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  auto sink = Ref<GstPad>::adopt(gst_element_get_static_pad(chain_head, "sink"));
  if (sink && !gst_pad_is_linked(sink.get())) {
    if (gst_pad_link(pad, sink.get()) != GST_PAD_LINK_OK)
      g_warning("[%s] could not link %s", call_id.c_str(), GST_PAD_NAME(pad));
    return;
  }
  GstElement* fakesink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(fakesink, "sync", FALSE, "async", FALSE, nullptr);
  gst_bin_add(GST_BIN(pipeline), fakesink);
  gst_element_sync_state_with_parent(fakesink);
  auto fsink = Ref<GstPad>::adopt(gst_element_get_static_pad(fakesink, "sink"));
  gst_pad_link(pad, fsink.get());
}

Ref<GstElement> build_call_pipeline(const std::string& description) {
  return build_pipeline(
      description, "call",
      {kClientBin, kUpstreamBin, kClientAudioIn, kUpstreamAudioOut, kUpstreamAudioIn,
       kClientAudioOut, kClientEventsIn, kUpstreamEventsOut, kUpstreamEventsIn, kClientEventsOut,
       kClientEventsFilter, kUpstreamEventsMeter});
}

}  // namespace

void check_call_description(const std::string& description) {
  events::check_sources(build_call_pipeline(description).get());
}

Call::Call(CallIdentity identity, CallSettings settings, workers::WorkerLease lease,
           CallListener* listener)
    : identity_(std::move(identity)),
      settings_(std::move(settings)),
      lease_(std::move(lease)),
      listener_(listener) {
  created_us_ = g_get_monotonic_time();
  // With the shared ICE agent, RFC 7675 consent freshness ends a call whose peer stops answering
  // within libnice's consent timeout, on every pair type (OnLegConnectionState). The packet clock
  // only stays for what consent cannot do: a shorter peer timeout.
  liveness_seconds_ = settings_.webrtc.peer_timeout_seconds;
  if (webrtc::shared_ice_agent_installed() && liveness_seconds_ >= webrtc::kConsentTimeoutSeconds)
    liveness_seconds_ = 0;
  liveness_ = std::make_unique<PeerLiveness>(liveness_seconds_, this);
}

Call::~Call() {
  hang_up("destroyed");
  recorder_.reset();  // no wait for the recording's last pages: the pipeline goes to the reaper now
  finish_teardown();
}

Ref<GstElement> Call::element(const char* name) const {
  auto e = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), name));
  if (!e)
    throw std::runtime_error(std::string("the call pipeline has no element named '") + name + "'");
  return e;
}

void Call::build_pipeline() {
  pipeline_ = build_call_pipeline(settings_.pipeline_description);
  gst_object_set_name(GST_OBJECT(pipeline_.get()), identity_.call_id.c_str());
  // webrtcbin puts a clocksync (sync=true) in front of each send path, so every packet waits on
  // the clock for its running time plus the pipeline's latency: one more sleep and wake-up per
  // packet in the thread that sends it. A relay's packets arrive paced by their sender (or leave
  // the receiving jitterbuffer paced, with webrtc.jitterbuffer), so they go on at once (measured:
  // tests/bench/README.md, "The cuts").
  connect_signal_for_lifetime<void(GstBin*, GstBin*, GstElement*)>(
      pipeline_.get(), "deep-element-added", [](GstBin*, GstBin*, GstElement* added) {
        GstElementFactory* factory = gst_element_get_factory(added);
        if (factory && g_strcmp0(GST_OBJECT_NAME(factory), "clocksync") == 0)
          g_object_set(added, "sync", FALSE, nullptr);
        // The SCTP association id this webrtcbin was given (webrtc/sctp_ids.h), set while the
        // sctpenc/sctpdec is still NULL: never one that is live in the process (issue 22).
        webrtc::sctp_ids::apply(added);
      });
  for (const char* name : {kClientBin, kUpstreamBin})
    if (!webrtc::sctp_ids::assign(element(name).get()))
      g_warning("[%s] no free SCTP association id: the %s leg keeps webrtcbin's random one",
                identity_.call_id.c_str(), name);

  // A relay forwards packets as they arrive, like an SFU: the browser or worker behind each leg
  // has its own jitterbuffer. rtpbin's request-jitterbuffer (asked once per received SSRC) gets
  // rtpforward (plugins/rtevents) instead of rtpjitterbuffer, which would cost two threads per
  // leg and a sleep/wake-up per packet (tests/bench/README.md, "The cuts"). RTCP, rtpbin's
  // session statistics and get-stats are unchanged. webrtc.jitterbuffer=true keeps webrtcbin's.
  if (!settings_.webrtc.jitterbuffer) {
    for (const char* name : {kClientBin, kUpstreamBin}) {
      auto rtpbin =
          Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(element(name).get()), "rtpbin"));
      if (!rtpbin) throw std::runtime_error(std::string("webrtcbin '") + name + "' has no rtpbin");
      // Returning null lets rtpbin's default handler make an rtpjitterbuffer.
      connect_signal_for_lifetime<GstElement*(GstElement*, guint)>(
          rtpbin.get(), "request-jitterbuffer",
          [](GstElement*, guint) { return gst_element_factory_make("rtpforward", nullptr); });
    }
  }

  client_leg_ = std::make_unique<WebRtcLeg>("client", element(kClientBin), settings_.webrtc, this);
  upstream_leg_ =
      std::make_unique<WebRtcLeg>("upstream", element(kUpstreamBin), settings_.webrtc, this);
  if (settings_.trace_steps)  // telemetry: each leg's ICE connection time, for its span
    for (int i = 0; i < 2; i++)
      signals_.push_back(connect_signal<void(GstElement*, GParamSpec*)>(
          (i == 0 ? client_leg_ : upstream_leg_)->element(), "notify::ice-connection-state",
          [alive = lifetime_.watch(), this, i](GstElement* bin, GParamSpec*) {
            GstWebRTCICEConnectionState state;
            g_object_get(bin, "ice-connection-state", &state, nullptr);
            if (state != GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED &&
                state != GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED)
              return;
            gint64 now = g_get_monotonic_time();  // taken here, on webrtcbin's thread
            post_if_alive(alive, [this, i, now] {
              if (!leg_times_[i].ice_connected_us) leg_times_[i].ice_connected_us = now;
            });
          }));
  // Media trust (SPEC): nothing a leg sends reaches the other until both peers' certificates
  // match their SDP fingerprints. Audio is dropped after the packet counters (they measure what
  // arrived, for the media watchdog), events are held before the event path.
  client_trust_ = std::make_unique<webrtc::DtlsVerifier>("client", element(kClientBin), this);
  upstream_trust_ = std::make_unique<webrtc::DtlsVerifier>("upstream", element(kUpstreamBin), this);
  gate_ = std::make_shared<MediaGate>(settings_.max_pending_event_bytes);
  for (const char* head : {kClientAudioIn, kUpstreamAudioIn}) {
    auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(element(head).get(), "src"));
    if (!src) throw std::runtime_error(std::string("'") + head + "' has no src pad");
    MediaGate::gate_audio(gate_, src.get());
  }
  // After the gate's probes: only verified audio is recorded.
  if (settings_.recording)
    recorder_ = std::make_unique<recording::CallRecorder>(
        pipeline_.get(), *settings_.recording,
        std::vector<recording::CallRecorder::Direction>{{"client", kClientAudioIn},
                                                        {"upstream", kUpstreamAudioIn}});
  path_ = std::make_unique<EventPath>(
      pipeline_.get(),
      EventPath::Policy{settings_.policy_json, identity_.key_name, identity_.model,
                        settings_.budget_exceeded, settings_.allowed_models},
      this);
  relay_.set_response_gate(settings_.response_gate, identity_.key_name, identity_.model);
  if (settings_.response_content) relay_.set_response_content(settings_.response_content);
  relay_.set_transcript_capture(settings_.transcript);
  client_events_ = std::make_unique<EventChannel>("client", settings_.max_event_bytes,
                                                  settings_.max_pending_event_bytes,
                                                  settings_.max_outgoing_event_bytes, this);
  upstream_events_ = std::make_unique<EventChannel>("upstream", settings_.max_event_bytes,
                                                    settings_.max_pending_event_bytes,
                                                    settings_.max_outgoing_event_bytes, this);
  if (settings_.webrtc.send_events_from_stream_thread) {
    // Sent from the event path's streaming thread (calls/channel_sender.h) unless the main loop
    // must see the event first: a possible response.create (the budget's reservation), a
    // worker's event that is not a JSON object (an error event goes in its place). Both steps
    // below are pure.
    path_->set_direct(true, upstream_events_->direct([](const std::string& text) {
      return events::may_be_create(text) ? std::nullopt : std::optional<std::string>(text);
    }));
    path_->set_direct(
        false, client_events_->direct([beta = settings_.beta_client](const std::string& text) {
          if (!events::is_json_object(text)) return std::optional<std::string>();
          if (beta)
            if (auto converted = events::beta::server_event_to_beta(text)) return converted;
          return std::optional<std::string>(text);
        }));
  }

  // Received audio → the head of the other direction's chain. The handlers run on streaming
  // threads and read no Call state: what they need is copied into them here.
  auto connect_pad_added = [&](GstElement* bin, const char* head) {
    signals_.push_back(connect_signal<void(GstElement*, GstPad*)>(
        bin, "pad-added",
        [pipeline = pipeline_, head = element(head), call_id = identity_.call_id](GstElement*,
                                                                                  GstPad* pad) {
          link_received_pad(pad, pipeline.get(), head.get(), call_id);
        }));
  };
  connect_pad_added(client_leg_->element(), kClientAudioIn);
  connect_pad_added(upstream_leg_->element(), kUpstreamAudioIn);
  count_audio(kClientAudioIn, audio_from_client_.get());
  count_audio(kUpstreamAudioIn, audio_from_upstream_.get());

  // The client's data channel: wire its messages on the pc thread (with values copied here), the
  // rest on the main loop behind the liveness check.
  signals_.push_back(connect_signal<void(GstElement*, GstWebRTCDataChannel*)>(
      client_leg_->element(), "on-data-channel",
      [alive = lifetime_.watch(), this, call_id = identity_.call_id, source = path_->client_in(),
       transform = settings_.beta_client ? &events::beta::client_event_to_ga : nullptr,
       max_event_bytes = static_cast<std::size_t>(settings_.max_event_bytes),
       gate = gate_](GstElement*, GstWebRTCDataChannel* channel) {
        gchar* label_raw = nullptr;
        g_object_get(channel, "label", &label_raw, nullptr);
        UniqueStr label(label_raw);
        if (g_strcmp0(label.get(), EventChannel::kLabel) != 0) {
          g_message("[%s] ignoring data channel %s (only '%s' is relayed)", call_id.c_str(),
                    log_quote(label ? label.get() : "").c_str(), EventChannel::kLabel);
          return;
        }
        EventChannel::wire_inbound(channel, source, transform, max_event_bytes, gate);
        post_if_alive(alive, [this, ref = Ref<GstWebRTCDataChannel>::retain(channel)] {
          if (state_ != State::kEnded) client_events_->attach(ref, true);
        });
      }));

  bus_watch_ = watch_bus(pipeline_.get(), [this](GstMessage* m) { on_bus_message(m); });
}

void Call::count_audio(const char* element_name, AudioCounters* counters) {
  auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(element(element_name).get(), "sink"));
  gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo* info, gpointer data) -> GstPadProbeReturn {
        auto* c = static_cast<AudioCounters*>(data);
        c->packets.fetch_add(1, std::memory_order_relaxed);
        c->bytes.fetch_add(gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info)),
                           std::memory_order_relaxed);
        return GST_PAD_PROBE_OK;
      },
      counters, nullptr);
}

void Call::start(sdp::CheckedOffer offer, std::optional<std::string> session_json) {
  build_pipeline();
  WebRtcSetupMedia::Parts parts{
      client_leg_.get(), upstream_leg_.get(), element(kClientAudioOut), element(kUpstreamAudioOut),
      [this](Ref<GstWebRTCDataChannel> channel) {
        EventChannel::wire_inbound(channel.get(), element(kUpstreamEventsIn), nullptr,
                                   EventChannel::kMaxMessageBytes, gate_);
        upstream_events_->attach(std::move(channel), false);
      }};
  auto media = std::make_unique<WebRtcSetupMedia>(std::move(parts), settings_.webrtc,
                                                  offer.opus_payload_type);
  setup_ = std::make_unique<CallSetup>(
      identity_.call_id, std::move(media), lease_, settings_.failover, identity_.upstream_model,
      [this](SetupResult result) { on_setup_done(std::move(result)); });
  if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    throw std::runtime_error("the call pipeline failed to start");
  if (recorder_) recorder_->start(pipeline_.get());  // its own start: a bad disk fails only it
  setup_->start(std::move(offer), std::move(session_json));
}

void Call::on_setup_done(SetupResult result) {
  if (lease_) identity_.worker_name = lease_->name();  // failover may have moved it
  if (auto* failure = std::get_if<SetupFailure>(&result)) {
    if (state_ == State::kSettingUp) {
      g_message("[%s] set-up failed: %s", id().c_str(), failure->message.c_str());
      hang_up("set-up failed: " + failure->message);
    }
    listener_->OnCallSetupFailed(*this, *failure);
    return;
  }
  auto& answer = std::get<CallAnswer>(result);
  if (state_ != State::kSettingUp) return;  // an ended call's set-up fails instead
  upstream_answer_ms_ = answer.upstream_answer_ms;
  upstream_call_id_ = answer.upstream_call_id;
  state_ = State::kActive;
  answered_us_ = g_get_monotonic_time();
  setup_steps_ = answer.steps;
  // Each step's end, in ms since the call was created (the request's arrival): where set-up
  // time goes (tests/bench/README.md).
  auto at = [this](gint64 t) { return t ? (t - created_us_) / 1000.0 : -1.0; };
  const SetupSteps& s = setup_steps_;
  g_message(
      "[%s] answered in %.1f ms (upstream answer %.1f ms; steps at: pipeline %.1f, client offer "
      "accepted %.1f, upstream offer sent %.1f, worker answered %.1f, upstream ready %.1f, client "
      "answer %.1f)",
      id().c_str(), at(answered_us_), upstream_answer_ms_, at(s.started_us),
      at(s.client_offer_accepted_us), at(s.upstream_offer_us), at(s.worker_answered_us),
      at(s.upstream_ready_us), at(s.client_answer_us));
  connect_timeout_ =
      run_after_seconds(static_cast<guint>(settings_.webrtc.ice_connect_timeout_seconds), [this] {
        outcome_ = "ice_timeout";
        hang_up("ICE connect timeout");
      });
  dump_graph("answered");
  // Both descriptions are set on both legs: every DTLS transport exists now.
  client_trust_->scan();
  upstream_trust_->scan();
  listener_->OnCallAnswered(*this, answer.answer_sdp);
}

void Call::cancel_setup(const std::string& reason) {
  if (state_ == State::kSettingUp && setup_)
    setup_->fail({SetupFailure::Kind::kCancelled, 0, {}, reason});
  else
    hang_up(reason);
}

void Call::OnLegConnectionState(WebRtcLeg& leg, GstWebRTCPeerConnectionState state) {
  if (state_ == State::kEnded) return;
  bool is_client = &leg == client_leg_.get();
  g_message("[%s] %s leg %s", id().c_str(), leg.name().c_str(), state_name(state));
  auto which = is_client ? PeerLiveness::Leg::kClient : PeerLiveness::Leg::kUpstream;
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED) {
    leg_connected_[static_cast<int>(which)] = true;
    if (!leg_times_[is_client ? 0 : 1].connected_us)
      leg_times_[is_client ? 0 : 1].connected_us = g_get_monotonic_time();
  }
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED && leg_connected_[static_cast<int>(which)] &&
      webrtc::shared_ice_agent_installed()) {
    // A connected leg fails when libnice's consent for its selected pair expired: the peer
    // stopped answering consent checks (or DTLS failed: then ICE is still connected).
    if (end_if_consent_lost(leg, which)) return;
    // The connection state can fail a moment before the ICE state says why (a send on the
    // expired pair fails DTLS first, seen behind TURN): give ICE a bounded moment to say whether
    // consent was lost, so the end reason names it; else the failure ends the call as below.
    if (!failure_settle_)
      failure_settle_ = run_after_ms(kFailureSettleMs, [this, &leg, which, is_client] {
        if (state_ == State::kEnded || end_if_consent_lost(leg, which)) return;
        std::string reason = leg.name() + " connection failed";
        if (is_client)
          on_client_gone(reason);
        else
          hang_up(reason);
      });
    return;
  }
  // A transport may appear or connect with any state change: the verifier adds what is new.
  (is_client ? client_trust_ : upstream_trust_)->scan();
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED &&
      liveness_->watch(which, leg.element()) == 0 && liveness_seconds_ > 0)
    g_warning("[%s] %s leg: no nicesrc found, its peer's liveness is not watched", id().c_str(),
              leg.name().c_str());
  if (client_leg_->reported_state() == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED &&
      upstream_leg_->reported_state() == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED &&
      !connected_us_) {
    connected_us_ = g_get_monotonic_time();
    connect_timeout_.cancel();
    start_media_watchdog();
    stats_timer_ = run_every_seconds(2, [this] {
      poll_rtp_stats();
      return true;
    });
    dump_graph("connected");
  }
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED ||
      state == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED) {
    std::string reason = leg.name() + " connection " + state_name(state);
    if (is_client)
      on_client_gone(reason);
    else
      hang_up(reason);
  }
}

bool Call::end_if_consent_lost(WebRtcLeg& leg, PeerLiveness::Leg which) {
  GstWebRTCICEConnectionState ice = GST_WEBRTC_ICE_CONNECTION_STATE_NEW;
  g_object_get(leg.element(), "ice-connection-state", &ice, nullptr);
  const auto& trust = &leg == client_leg_.get() ? client_trust_ : upstream_trust_;
  if (ice != GST_WEBRTC_ICE_CONNECTION_STATE_FAILED && !(trust && trust->any_ice_failed()))
    return false;
  end_for_dead_peer(which, std::string(PeerLiveness::name(which)) +
                               " peer stopped answering ICE consent checks (consent lost, "
                               "RFC 7675; timeout " +
                               std::to_string(webrtc::kConsentTimeoutSeconds) + " s)");
  return true;
}

void Call::on_client_gone(const std::string& reason) {
  if (state_ != State::kActive) {
    hang_up(reason);
    return;
  }
  if (relay_.waiting_for_usage()) return;
  guint open_turns = path_ ? path_->open_turns() : 0;
  if (!relay_.begin_late_usage_wait(reason, open_turns)) {
    hang_up(reason);
    return;
  }
  // What comes for the client now is dropped on the main loop (OnPathEvent).
  if (client_events_) client_events_->stop_direct();
  g_message("[%s] client gone with %u open response(s): cancelling and waiting for usage",
            id().c_str(), open_turns);
}

bool Call::send_cancel_upstream(const std::string& event) {
  if (!upstream_events_ || !upstream_events_->open()) return false;
  upstream_events_->send(event);
  return true;
}

void Call::poll_rtp_stats() {
  // webrtcbin's own counters (loss as its RTP session saw it), read synchronously by each leg
  // every 2 s and once more at the end: no get-stats promise.
  for (WebRtcLeg* leg : {client_leg_.get(), upstream_leg_.get()})
    if (leg) leg->poll_rtp_stats();
}

void Call::start_media_watchdog() {
  int timeout_s = settings_.webrtc.client_media_timeout_seconds;
  if (timeout_s <= 0) return;
  media_seen_packets_ = audio_from_client_->packets.load();
  media_seen_us_ = g_get_monotonic_time();
  media_watchdog_ = run_every_seconds(1, [this] {
    std::uint64_t packets = audio_from_client_->packets.load();
    gint64 now = g_get_monotonic_time();
    if (packets != media_seen_packets_) {
      media_seen_packets_ = packets;
      media_seen_us_ = now;
      return true;
    }
    int limit = settings_.webrtc.client_media_timeout_seconds;
    if (now - media_seen_us_ < gint64{limit} * G_USEC_PER_SEC) return true;
    on_client_gone("no audio from the client for " + std::to_string(limit) + " s");
    return false;
  });
}

void Call::OnPeerSilent(PeerLiveness::Leg leg, gint64 silent_ms) {
  if (state_ == State::kEnded) return;
  char seconds[32];
  g_snprintf(seconds, sizeof seconds, "%.1f", silent_ms / 1000.0);
  end_for_dead_peer(leg, std::string(PeerLiveness::name(leg)) + " peer sent nothing for " +
                             seconds + " s (peer timeout " +
                             std::to_string(settings_.webrtc.peer_timeout_seconds) + " s)");
}

void Call::end_for_dead_peer(PeerLiveness::Leg leg, const std::string& reason) {
  if (state_ == State::kEnded) return;
  outcome_ = "peer_timeout";
  timed_out_leg_ = PeerLiveness::name(leg);
  // As if that peer hung up: the other side is told at once (hang_up closes its data channel and
  // hangs the upstream call up).
  if (leg == PeerLiveness::Leg::kClient)
    on_client_gone(reason);
  else
    hang_up(reason);
}

void Call::set_budget_exceeded(bool exceeded) {
  if (path_) path_->set_budget_exceeded(exceeded);
}

void Call::OnEventChannelOpen(EventChannel& channel) {
  g_message("[%s] %s events channel open", id().c_str(), channel.side().c_str());
}

void Call::OnEventChannelClosed(EventChannel& channel, const std::string& why) {
  if (state_ != State::kEnded) {
    if (&channel == client_events_.get())
      on_client_gone("client " + why);
    else
      hang_up("upstream " + why);
    return;
  }
  // Ending: once no channel is still closing, give the last SCTP packets (our answer to the
  // peer's stream reset, without which the peer never sees its channel close) a moment to leave
  // before stopping media. Stopping at once made clients miss the end under load (two test runs).
  bool waiting = (client_events_ && client_events_->closing()) ||
                 (upstream_events_ && upstream_events_->closing());
  if (!waiting) schedule_teardown(kFlushWaitMs);
}

void Call::OnPathEvent(bool to_upstream, std::string text, std::int64_t relay_ns) {
  if (state_ == State::kEnded) return;
  if (relay_ns >= 0) relay_.record_relay_time(to_upstream, relay_ns);
  if (!to_upstream)
    for (CallTap* tap : std::vector<CallTap*>(taps_)) tap->OnCallServerEvent(text);
  // The client is gone; the meter has seen the event.
  if (relay_.waiting_for_usage() && !to_upstream) return;
  if (to_upstream)
    relay_.count_from_client();
  else
    relay_.count_from_upstream();
  // A response.create the budget has no room for stops here (the client was told).
  if (to_upstream && !relay_.admit_to_upstream(text)) return;
  if (!to_upstream) relay_.note_from_upstream(text);
  if (!to_upstream) {
    // A worker's event that is not a strict JSON object would break the client's parser (or be
    // read differently by it): the client gets an error event in its place (a client's own event
    // that is not strict JSON never got this far: the filter refused it, invalid_json).
    if (!events::is_json_object(text)) {
      relay_.count_refused();
      g_message("[%s] upstream event of %zu bytes is not a JSON object: not relayed", id().c_str(),
                text.size());
      send_to_client(make_error_event("server_error", "invalid_upstream_event",
                                      "the worker sent an event that is not a JSON object (" +
                                          std::to_string(text.size()) + " bytes); not relayed"));
      return;
    }
  }
  EventChannel& target = to_upstream ? *upstream_events_ : *client_events_;
  if (!to_upstream && settings_.beta_client)
    if (auto beta = events::beta::server_event_to_beta(text)) text = std::move(*beta);
  const EventChannel::SendResult sent = target.send(text);
  if (to_upstream && sent != EventChannel::SendResult::kSent &&
      sent != EventChannel::SendResult::kQueued)
    relay_.not_relayed_upstream(text);  // its budget reservation, if any, goes back
  switch (sent) {
    case EventChannel::SendResult::kSent:
    case EventChannel::SendResult::kQueued:
      return;
    case EventChannel::SendResult::kTooLarge:
      relay_.count_refused();
      // The client is told either way: its own event was refused, or a server event it will not
      // receive was.
      send_error_event("event_too_large",
                       std::string(to_upstream ? "client" : "server") + " event of " +
                           std::to_string(text.size()) + " bytes exceeds the limit of " +
                           std::to_string(target.max_message_bytes()) + " bytes; not relayed");
      return;
    case EventChannel::SendResult::kQueueFull:
      relay_.count_refused();
      send_error_event("event_queue_full",
                       std::string("the ") + (to_upstream ? "upstream" : "client") +
                           " channel is not open yet and its queue is full; event not relayed");
      return;
    case EventChannel::SendResult::kBackpressure: {
      relay_.count_refused();
      std::string what =
          std::string("the ") + (to_upstream ? "worker" : "client") +
          " does not read its data channel: " + std::to_string(target.buffered_amount()) +
          " bytes wait (limit " + std::to_string(target.max_outgoing_bytes()) + ")";
      g_warning("[%s] %s", id().c_str(), what.c_str());
      if (to_upstream) {
        // The worker is stuck: the client is told its event was not relayed, and may retry.
        send_error_event("upstream_backpressure", what + "; event not relayed");
        return;
      }
      // The client cannot be told on the channel it does not read: the call ends.
      hang_up("slow consumer: " + what);
      return;
    }
    case EventChannel::SendResult::kFailed:
      relay_.count_refused();
      g_warning("[%s] event to %s not delivered: channel closed", id().c_str(),
                target.side().c_str());
      return;
  }
}

void Call::OnPathEventSent(bool to_upstream, std::string text, std::int64_t relay_ns) {
  // The event is on its way (calls/channel_sender.h): what OnPathEvent does besides sending.
  if (state_ == State::kEnded) return;
  if (relay_ns >= 0) relay_.record_relay_time(to_upstream, relay_ns);
  if (to_upstream) {
    relay_.count_from_client();
    return;
  }
  for (CallTap* tap : std::vector<CallTap*>(taps_)) tap->OnCallServerEvent(text);
  relay_.count_from_upstream();
  relay_.note_from_upstream(text);
}

void Call::send_to_client(const std::string& text) {
  if (client_events_) client_events_->send(text);
  for (CallTap* tap : std::vector<CallTap*>(taps_)) tap->OnCallServerEvent(text);
}

bool Call::inject_client_event(const std::string& text) {
  if (state_ == State::kEnded || !path_) return false;
  // Through the media gate like the client's own events: until both legs' peers are verified a
  // sideband's event is held (it must not reach a worker whose certificate is unchecked).
  if (gate_)
    gate_->push_event(element(kClientEventsIn).get(), text.data(), text.size());
  else
    path_->push_from_client(text);
  return true;
}

void Call::add_tap(CallTap* tap) { taps_.push_back(tap); }

void Call::remove_tap(CallTap* tap) { std::erase(taps_, tap); }

void Call::send_error_to_client(const std::string& event) { send_to_client(event); }

void Call::send_error_event(const std::string& code, const std::string& message,
                            const std::string& client_event_id) {
  send_to_client(make_error_event("invalid_request_error", code, message, client_event_id));
}

void Call::end_over_budget(const std::string& message) {
  if (state_ == State::kEnded) return;
  send_to_client(events::make_quota_error_event(message));
  outcome_ = "budget_exceeded";
  OnRelayPolicyEnd("budget_exceeded: " + message);
}

void Call::end_key_revoked(const std::string& code, const std::string& message) {
  if (state_ == State::kEnded) return;
  send_to_client(make_error_event("invalid_request_error", code, message, ""));
  outcome_ = "key_revoked";
  OnRelayPolicyEnd("key_revoked: " + message);
}

void Call::on_bus_message(GstMessage* message) {
  switch (GST_MESSAGE_TYPE(message)) {
    case GST_MESSAGE_ERROR: {
      // A recording branch's error (a full disk) stops that recording, never the call.
      if (recorder_ && recorder_->handle_error(message)) return;
      GError* raw = nullptr;
      gchar* debug = nullptr;
      gst_message_parse_error(message, &raw, &debug);
      UniqueError err(raw);
      UniqueStr dbg(debug);
      GstObject* src = GST_MESSAGE_SRC(message);
      bool from_client = client_leg_ && client_leg_->element() &&
                         (src == GST_OBJECT(client_leg_->element()) ||
                          gst_object_has_as_ancestor(src, GST_OBJECT(client_leg_->element())));
      g_message("[%s] %s leg error from %s: %s", id().c_str(), from_client ? "client" : "pipeline",
                GST_OBJECT_NAME(src), err ? err->message : "?");
      // An SCTP/DTLS error inside the client's webrtcbin is how a client that closed shows up.
      if (from_client)
        on_client_gone(std::string("client left (") + (err ? err->message : "?") + ")");
      else
        hang_up(std::string("pipeline error: ") + (err ? err->message : "?"));
      return;
    }
    case GST_MESSAGE_ELEMENT:
      on_element_message(message);
      return;
    case GST_MESSAGE_WARNING: {
      GError* raw = nullptr;
      gst_message_parse_warning(message, &raw, nullptr);
      UniqueError err(raw);
      g_message("[%s] pipeline warning: %s", id().c_str(), err ? err->message : "?");
      return;
    }
    case GST_MESSAGE_LATENCY:
      gst_bin_recalculate_latency(GST_BIN(pipeline_.get()));
      return;
    default:
      return;
  }
}

void Call::on_element_message(GstMessage* message) {
  if (path_ && path_->handle_message(message)) return;
  // Elements an operator added to pipelines/ (e.g. `level`): visible with G_MESSAGES_DEBUG=all.
  if (const GstStructure* s = gst_message_get_structure(message)) {
    UniqueStr text(gst_structure_to_string(s));
    g_debug("[%s] %s: %s", id().c_str(), GST_OBJECT_NAME(GST_MESSAGE_SRC(message)), text.get());
  }
}

void Call::OnPathDecision(const events::PolicyDecision& decision) { relay_.on_decision(decision); }

void Call::OnRelayPolicyEnd(const std::string& reason) {
  if (state_ == State::kEnded || policy_hangup_) return;
  // The error event was just queued on the same stream as the close that hang_up() starts: give
  // it a moment to leave first, or a fast peer may see the close alone.
  policy_hangup_ = run_after_ms(kFlushWaitMs, [this, reason] { hang_up(reason); });
}

void Call::OnPathTurn(usage::UsageRecord record) {
  relay_.on_turn(std::move(record), {identity_.call_id, "webrtc", identity_.key_name,
                                     identity_.model, identity_.worker_name});
}

void Call::OnRelayWaitOver(const std::string& reason) { hang_up(reason); }

void Call::OnDtlsVerified(webrtc::DtlsVerifier& verifier) {
  if (state_ == State::kEnded) return;
  if (gint64& t = leg_times_[verifier.leg() == "client" ? 0 : 1].dtls_verified_us; !t)
    t = g_get_monotonic_time();
  g_message("[%s] %s leg: peer certificate matches its SDP fingerprint (%zu DTLS transport(s))",
            id().c_str(), verifier.leg().c_str(), verifier.transports());
  if (client_trust_->state() != webrtc::DtlsVerifier::State::kVerified ||
      upstream_trust_->state() != webrtc::DtlsVerifier::State::kVerified)
    return;
  std::uint64_t held = gate_->events_held(), dropped = gate_->audio_dropped();
  gate_->open_gate();
  g_message("[%s] both legs verified: relaying (%" G_GUINT64_FORMAT
            " event(s) held until now go on; %" G_GUINT64_FORMAT
            " audio packet(s) arrived before and were dropped)",
            id().c_str(), held, dropped);
}

void Call::OnDtlsFailed(webrtc::DtlsVerifier& verifier,
                        const webrtc::DtlsVerifier::Failure& failure) {
  gate_->shut();  // first: nothing more passes, whatever the call's state
  if (state_ == State::kEnded) return;
  dtls_failed_leg_ = verifier.leg();
  dtls_failure_reason_ = failure.reason;
  outcome_ = failure.reason;
  g_warning("[%s] %s on the %s leg: %s; ending the call", id().c_str(), failure.reason.c_str(),
            verifier.leg().c_str(), failure.detail.c_str());
  std::string reason = failure.reason + " (" + verifier.leg() + " leg)";
  // During set-up a worker that is not who its answer says is the worker's failure (502), as an
  // unreachable one; a client's is refused as the call's own failure.
  if (state_ == State::kSettingUp && setup_ && verifier.leg() == "upstream")
    setup_->fail({SetupFailure::Kind::kUpstreamUnreachable,
                  0,
                  {},
                  "the worker's DTLS certificate does not match its answer's fingerprint (" +
                      failure.reason + ")"});
  hang_up(reason);
}

void Call::hang_up(const std::string& reason) {
  if (state_ == State::kEnded) return;
  bool was_setting_up = state_ == State::kSettingUp;
  state_ = State::kEnded;
  end_reason_ = reason;
  ended_us_ = g_get_monotonic_time();
  if (pipeline_) g_message("[%s] ended: %s", id().c_str(), reason.c_str());
  // Ended during set-up: the set-up fails with the reason (its exchange cancelled, the lease
  // settled, the failure reported later); no-op when it already finished.
  if (was_setting_up && setup_) setup_->fail({SetupFailure::Kind::kInternal, 0, {}, reason});
  connect_timeout_.cancel();
  relay_.stop();
  policy_hangup_.cancel();
  media_watchdog_.cancel();
  if (stats_timer_) poll_rtp_stats();  // the final figures (the legs are still up here)
  stats_timer_.cancel();
  liveness_->stop();
  if (recorder_) recorder_->finish();  // EOS into the recording: its files get their last page
  if (!upstream_call_id_.empty() && lease_) lease_->hangup(upstream_call_id_);
  for (CallTap* tap : std::exchange(taps_, {})) tap->OnCallEnded(reason);

  // Close the open data channels first so both peers learn at once (a stream reset), and stop
  // media when both report closed (OnEventChannelClosed) or after a bound. Stopping the pipeline
  // while a channel's close procedure is still running on webrtcbin's pc thread deadlocks 1.22,
  // so we wait: on a timer source, never blocking the main loop.
  bool client_closing = client_events_ && client_events_->begin_close();
  bool upstream_closing = upstream_events_ && upstream_events_->begin_close();
  if (client_closing || upstream_closing)
    schedule_teardown(kChannelCloseWaitMs);
  else
    finish_teardown();
}

void Call::schedule_teardown(guint delay_ms) {
  teardown_timeout_ = run_after_ms(delay_ms, [this] { finish_teardown(); });
}

void Call::finish_teardown() {
  if (torn_down_) return;
  // A recorded call's files are finished (the EOS written through oggmux) before its pipeline
  // stops; bounded, so a stuck disk delays the teardown by kRecordingFinishWaitMs at most.
  if (recorder_ && recorder_->wait_finished(kRecordingFinishWaitMs, [this] { finish_teardown(); }))
    return;
  torn_down_ = true;
  teardown_timeout_.cancel();
  // Fixed order: stop callbacks (bus, signals, channel and leg handlers), break the cycle between
  // the legs, then hand the pipeline to the reaper, which stops it off the main loop: the two
  // webrtcbins first, one at a time, then the rest. Nothing left connected reaches this Call: the
  // appsink callbacks check `lifetime_` on the main loop, and the audio probes count into counters
  // the reaper keeps alive until the pipeline is stopped.
  //
  // Why the webrtcbins first (issue 14): each leg's receiving thread (its receive queue's with
  // rtpforward, its jitterbuffer's with webrtc.jitterbuffer) pushes through
  // identity -> rtpptrewrite into the *other* webrtcbin's send path, holding rtpptrewrite's stream
  // lock. Once the pipeline is PAUSED, such a buffer waits for preroll in that webrtcbin's
  // nicesink; the pipeline's sorted PAUSED -> READY then deactivated rtpptrewrite (no downstream
  // once unlinked, or anywhere in the cycle) before that webrtcbin, and waited for ever on the
  // stream lock the blocked thread held. A webrtcbin stopped on its own goes PAUSED -> READY sinks
  // first, which releases the other leg's buffer; the other leg (still PLAYING) never blocks.
  //
  // Why a leg that never connected goes first, and why both get a flush-start before (issue 22):
  // 1.22's transportsendbin blocks a leg's send pads until its DTLS is up. When one leg never
  // connected (e.g. the worker answered but ICE never completed), the connected leg's receiving
  // thread (and an rtpsession-rtcp thread) sits blocked inside the other leg's send path, holding
  // stream locks of the connected leg; stopping the connected leg first then waited for good on
  // those locks in gst_pad_set_active. The flush-start wakes every such push (the reaper sends it
  // before any state change), and stopping the unconnected leg first deactivates the blocked pads
  // before anything waits on the threads they hold.
  StopOptions stop;
  if (pipeline_) {
    auto connected = [](const std::unique_ptr<WebRtcLeg>& leg) {
      return leg && leg->reported_state() == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED;
    };
    std::vector<const char*> order = {kClientBin, kUpstreamBin};
    if (connected(client_leg_) && !connected(upstream_leg_)) order = {kUpstreamBin, kClientBin};
    for (const char* name : order)
      if (auto bin = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), name))) {
        stop.flush_first.push_back(bin);
        stop.stop_first.push_back(std::move(bin));
      }
  }
  signals_.clear();
  bus_watch_.cancel();
  if (client_events_) client_events_->close();
  if (upstream_events_) upstream_events_->close();
  dump_graph("ended");
  unlink_legs();
  client_events_.reset();
  upstream_events_.reset();
  path_.reset();
  if (gate_) gate_->shut();
  if (client_trust_) client_trust_->detach();
  if (upstream_trust_) upstream_trust_->detach();
  // The legs forget their webrtcbin but keep what they reported (describe() reads it).
  if (client_leg_) client_leg_->detach();
  if (upstream_leg_) upstream_leg_->detach();
  if (pipeline_) {
    gint64 t0 = g_get_monotonic_time();
    stop_pipeline_async(
        std::move(pipeline_),
        [id = identity_.call_id, t0,
         counters = std::pair(audio_from_client_, audio_from_upstream_)] {
          g_message("[%s] pipeline stopped in %.1f ms (off the main loop)", id.c_str(),
                    (g_get_monotonic_time() - t0) / 1000.0);
        },
        std::move(stop));
  }
  if (answered_us_ == 0) return;  // set-up never finished: reported as a set-up failure
  post_if_alive(lifetime_.watch(), [this] { listener_->OnCallEnded(*this); });
}

void Call::unlink_legs() {
  // The two legs feed each other, a cycle GStreamer warns about when it orders state changes.
  if (!pipeline_) return;
  for (const char* name : {kClientAudioOut, kUpstreamAudioOut}) {
    auto e = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), name));
    if (!e) continue;
    auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(e.get(), "src"));
    if (auto peer = Ref<GstPad>::adopt(gst_pad_get_peer(src.get())))
      gst_pad_unlink(src.get(), peer.get());
  }
}

json::ObjectBuilder Call::describe() const {
  auto ms_since = [this](gint64 t) { return t ? (t - created_us_) / 1000.0 : -1.0; };
  json::ObjectBuilder timings;
  json::ObjectBuilder steps;
  steps.set("pipeline_built", ms_since(setup_steps_.started_us))
      .set("client_offer_accepted", ms_since(setup_steps_.client_offer_accepted_us))
      .set("upstream_offer_sent", ms_since(setup_steps_.upstream_offer_us))
      .set("worker_answered", ms_since(setup_steps_.worker_answered_us))
      .set("upstream_ready", ms_since(setup_steps_.upstream_ready_us))
      .set("client_answer_ready", ms_since(setup_steps_.client_answer_us));
  timings.set("setup_ms", ms_since(answered_us_))
      .set("upstream_answer_ms", upstream_answer_ms_)
      .set_object("setup_steps_ms", std::move(steps))
      .set("connected_ms", ms_since(connected_us_))
      .set("duration_ms", ((ended_us_ ? ended_us_ : g_get_monotonic_time()) - created_us_) / 1000.0)
      .set_object("event_relay_us", relay_.relay_times_json());
  json::ObjectBuilder audio;
  audio.set("packets_from_client", static_cast<gint64>(audio_from_client_->packets.load()))
      .set("bytes_from_client", static_cast<gint64>(audio_from_client_->bytes.load()))
      .set("packets_from_upstream", static_cast<gint64>(audio_from_upstream_->packets.load()))
      .set("bytes_from_upstream", static_cast<gint64>(audio_from_upstream_->bytes.load()))
      .set("client_leg_packets_lost", packets_lost_on_client_leg())
      .set("upstream_leg_packets_lost", packets_lost_on_upstream_leg());
  json::ObjectBuilder events = relay_.events_json(true);
  // Sent from the event path's streaming thread, skipping the main loop (calls/channel_sender.h).
  events
      .set("sent_direct_to_upstream",
           static_cast<gint64>(upstream_events_ ? upstream_events_->sent_direct() : 0))
      .set("sent_direct_to_client",
           static_cast<gint64>(client_events_ ? client_events_->sent_direct() : 0));
  json::ObjectBuilder usage = relay_.usage_json();
  json::ObjectBuilder legs;
  auto leg_state = [](const std::unique_ptr<WebRtcLeg>& leg) {
    return state_name(leg ? leg->reported_state() : GST_WEBRTC_PEER_CONNECTION_STATE_NEW);
  };
  legs.set("client", leg_state(client_leg_)).set("upstream", leg_state(upstream_leg_));
  // Media trust: each leg's certificate check, and what the gate kept from the other leg.
  auto trust_state = [](const std::unique_ptr<webrtc::DtlsVerifier>& v) {
    return v ? v->state_name() : "pending";
  };
  json::ObjectBuilder dtls;
  dtls.set("client", trust_state(client_trust_))
      .set("upstream", trust_state(upstream_trust_))
      .set("events_held", static_cast<gint64>(gate_ ? gate_->events_held() : 0))
      .set("events_dropped", static_cast<gint64>(gate_ ? gate_->events_dropped() : 0))
      .set("audio_packets_dropped", static_cast<gint64>(gate_ ? gate_->audio_dropped() : 0));
  if (!dtls_failed_leg_.empty())
    dtls.set("failed_leg", dtls_failed_leg_).set("failure", dtls_failure_reason_);
  // Milliseconds since each leg's peer last sent a packet (-1: not watched yet or any more), and
  // the ICE binding requests sent to a quiet peer to ask for a sign of life.
  json::ObjectBuilder liveness;
  liveness.set("peer_timeout_seconds", settings_.webrtc.peer_timeout_seconds)
      .set("consent_freshness", webrtc::shared_ice_agent_installed())
      .set("client_idle_ms", liveness_->idle_ms(PeerLiveness::Leg::kClient))
      .set("upstream_idle_ms", liveness_->idle_ms(PeerLiveness::Leg::kUpstream))
      .set("client_checks_sent",
           static_cast<gint64>(liveness_->requests(PeerLiveness::Leg::kClient)))
      .set("upstream_checks_sent",
           static_cast<gint64>(liveness_->requests(PeerLiveness::Leg::kUpstream)));
  const char* state = state_ == State::kSettingUp ? "setting_up"
                      : state_ == State::kActive  ? "active"
                                                  : "ended";
  json::ObjectBuilder out;
  out.set("id", identity_.call_id)
      .set("object", "realtime.call")
      .set("model", identity_.model)
      .set("worker", identity_.worker_name)
      .set("key", identity_.key_name)
      .set("state", state);
  if (state_ == State::kEnded) out.set("end_reason", end_reason_).set("outcome", outcome_);
  // The SCTP association id each leg's sctpenc uses (webrtc/sctp_ids.h; null: none yet, or
  // the call is over).
  json::ObjectBuilder sctp;
  for (const auto* leg : {client_leg_.get(), upstream_leg_.get()}) {
    auto id = leg && leg->element() ? webrtc::sctp_ids::in_use(leg->element()) : std::nullopt;
    if (!leg) continue;
    if (id)
      sctp.set(leg->name().c_str(), static_cast<gint64>(*id));
    else
      sctp.set_null(leg->name().c_str());
  }
  if (recorder_) out.set_object("recording", recorder_->describe());
  out.set_object("legs", std::move(legs))
      .set_object("dtls", std::move(dtls))
      .set_object("sctp_association_ids", std::move(sctp))
      .set_object("liveness", std::move(liveness))
      .set_object("timings", std::move(timings))
      .set_object("events", std::move(events))
      .set_object("usage", std::move(usage))
      .set_object("media", std::move(audio));
  return out;
}

void Call::dump_graph(const char* moment) const {
  // Only when the operator asked for graphs (GStreamer reads the variable at gst_init).
  if (!pipeline_ || !g_getenv("GST_DEBUG_DUMP_DOT_DIR")) return;
  std::string name = identity_.call_id + "-" + moment;
  GST_DEBUG_BIN_TO_DOT_FILE(GST_BIN(pipeline_.get()), GST_DEBUG_GRAPH_SHOW_ALL, name.c_str());
}

std::string Call::pipeline_dot() const {
  if (!pipeline_) return {};
  UniqueStr dot(gst_debug_bin_to_dot_data(GST_BIN(pipeline_.get()), GST_DEBUG_GRAPH_SHOW_ALL));
  return dot ? dot.get() : "";
}

}  // namespace rtgw::calls
