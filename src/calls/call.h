// SPDX-License-Identifier: MIT
// One relayed call, from its offer to its end: its lifetime.
//
// Owns: the call's pipeline (built from the description in pipelines/), its two WebRtcLegs, its
// two EventChannels (the WebRTC transport of events), the audio links between the legs, its
// `CallSetup` (calls/call_setup.h: the offer/answer of both legs, the worker's exchange, failover,
// the lease's settlement during set-up; it reports once, to `on_setup_done`), the live state
// (answered, connected, ended, how), its timers (ICE connect, media watchdog, RTP statistics,
// policy hang-up, teardown), peer liveness, its media statistics and its teardown (the pipeline
// handed to the reaper, off the main loop). The event path in its pipeline and what is done with
// events (decisions, turns, late usage) are events::EventPath and events::EventRelay, shared with
// WebSocket sessions; the call adapts them to data channels.
//
// Threads: all methods on the main loop. It reports to its owner through `CallListener` (one
// listener). Media code never sees HTTP: it gets an id, an offer and a worker lease (held until
// the call is dropped; failover during set-up moves it to the next worker), and returns an answer
// or a SetupFailure, the failure always later from the main loop.
#pragma once

#include <gst/gst.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calls/call_setup.h"
#include "calls/event_channel.h"
#include "calls/media_gate.h"
#include "calls/peer_liveness.h"
#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "config/config.h"
#include "events/event_path.h"
#include "events/event_relay.h"
#include "recording/call_recorder.h"
#include "recording/recording_plan.h"
#include "sdp/session_description.h"
#include "usage/usage_ledger.h"
#include "webrtc/dtls_verifier.h"
#include "webrtc/webrtc_leg.h"
#include "workers/upstream_signaller.h"
#include "workers/worker_lease.h"

namespace rtgw::calls {

class Call;
// The event types moved to events/; the names stay usable here (call_accounting, metrics).
using events::PolicyDecision;

// Builds the call description once and checks every element a call looks up by name (at
// start-up and by --check-config, so an operator's error is not every caller's). Throws
// std::runtime_error.
void check_call_description(const std::string& description);

class CallListener {
 public:
  virtual ~CallListener() = default;
  // Set-up finished: hand `answer_sdp` to the client.
  virtual void OnCallAnswered(Call& call, const std::string& answer_sdp) = 0;
  virtual void OnCallSetupFailed(Call& call, const SetupFailure& failure) = 0;
  // The call is over and torn down; the owner may drop it.
  virtual void OnCallEnded(Call& call) = 0;
};

// A sideband socket's view of a call (relay/sideband.h): the server events as the client gets
// them, and the call's end.
class CallTap {
 public:
  virtual ~CallTap() = default;
  virtual void OnCallServerEvent(const std::string& text) = 0;
  // The call is over; the tap is already detached.
  virtual void OnCallEnded(const std::string& reason) = 0;
};

struct CallIdentity {
  std::string call_id;
  std::string key_name;
  std::string model;           // the gateway's model name
  std::string upstream_model;  // the name the worker knows
  std::string worker_name;
};

struct CallSettings {
  config::WebRtcConfig webrtc;
  std::int64_t max_pending_event_bytes = 1 << 20;
  // Per data channel: what may wait for a peer that does not read
  // (limits.max_outgoing_buffer_bytes).
  std::int64_t max_outgoing_event_bytes = 4 << 20;
  std::int64_t max_event_bytes = EventChannel::kMaxMessageBytes;
  std::string pipeline_description;  // gst-launch syntax
  std::string policy_json;           // rteventfilter `policy` for client events ("" = none)
  bool budget_exceeded = false;      // the key is over a budget at call start
  // Asked before each response.create goes upstream (a budget reservation; none: no budgets).
  usage::ResponseGate response_gate;
  // The key's model patterns plus the call's upstream model name (rteventfilter
  // `allowed-models`: a session.update's transcription model must be one of them); empty: any.
  std::vector<std::string> allowed_models;
  // The model's price table: the relay prices each turn once (its record's cost_usd, which the
  // usage log, ledger, spend metric and budgets take as is, and the running cost in describe()).
  // None: turns carry cost_usd null.
  std::optional<config::Pricing> pricing;
  int late_usage_wait_ms = events::kLateUsageWaitMs;  // client gone mid-response
  // Where the call's relay reports metered turns and policy decisions (the accounting; none:
  // nowhere). The call itself forwards no report.
  events::RelayObserver* relay_observer = nullptr;
  // The client speaks the beta dialect (legacy route or token): its events are translated to GA
  // as they enter the event path (before the policy), the worker's to beta as they leave it for
  // the client (after the meter). Taps (sideband sockets) and the worker always see GA.
  bool beta_client = false;
  // The next worker to try after a worker failure during set-up (CallSetup; nullptr: none left).
  workers::FailoverFn failover;
  // Traced (telemetry.otlp_endpoint set): each leg's ICE connection time is also taken (one
  // signal per leg), for the call's set-up spans (telemetry/tracer.h). Off: nothing connected.
  bool trace_steps = false;
  // telemetry.include_content: each response.done's transcript text (events/event_relay.h).
  events::EventRelay::ResponseContentFn response_content;
  // transcripts: the call's capture (transcripts/transcript_store.h); null: not transcribed.
  std::shared_ptr<transcripts::TranscriptCapture> transcript;
  // Recorded (config `recording`: the key or the model matched): where the files go. None: the
  // call carries no recording element at all.
  std::optional<recording::RecordingPlan> recording;
  // The config snapshot the call was admitted under (config/snapshots.h), held for its lifetime:
  // a reload never changes what it started with.
  std::shared_ptr<const config::Config> config_snapshot;
};

// When each leg's connection steps finished (g_get_monotonic_time(), 0: not reached), for the
// call's set-up spans (telemetry/tracer.h).
struct LegTimes {
  gint64 ice_connected_us = 0;  // ICE connected (CallSettings::trace_steps only)
  gint64 connected_us = 0;      // the peer connection: ICE and DTLS up
  gint64 dtls_verified_us = 0;  // the peer's certificate matched its SDP fingerprint
};

class Call : public WebRtcLeg::Listener,
             public EventChannel::Listener,
             public PeerLiveness::Listener,
             public events::EventPath::Listener,
             public events::EventRelay::Transport,
             public webrtc::DtlsVerifier::Listener {
 public:
  enum class State { kSettingUp, kActive, kEnded };

  Call(CallIdentity identity, CallSettings settings, workers::WorkerLease lease,
       CallListener* listener);
  ~Call() override;
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // Builds the pipeline and starts both legs. Throws std::runtime_error when the pipeline
  // description cannot be built (an operator error).
  void start(sdp::CheckedOffer offer, std::optional<std::string> session_json);
  // Ends the call (both legs, upstream hang-up). Idempotent; the call is ended on return. Its
  // pipeline goes to the reaper (off the main loop) once both data channels report closed, or
  // after kChannelCloseWaitMs at most. During set-up, the set-up fails with `reason` (reported
  // later, as every set-up failure).
  void hang_up(const std::string& reason);
  // The client went away before its answer: a set-up ends as a kCancelled failure (the upstream
  // exchange cancelled, or the upstream call hung up if the worker already answered); a call
  // past set-up is hung up. Like every set-up failure, it reaches the listener later, from the
  // main loop, never inside this call.
  void cancel_setup(const std::string& reason);
  // The key went over (or back under) a budget: response.create is blocked from now on.
  void set_budget_exceeded(bool exceeded);
  // The key's budget ends the call (end_calls_over_budget): the client gets the
  // `insufficient_quota` error event with `message`, then the call is hung up once it has left;
  // its outcome and end reason say budget_exceeded.
  void end_over_budget(const std::string& message);
  // The call's key was revoked, deleted or expired (accounting/call_accounting.h end_key): the
  // client gets an `error` event with `code` (invalid_api_key) and `message`, then the call is
  // hung up once it has left; its outcome and end reason say key_revoked.
  void end_key_revoked(const std::string& code, const std::string& message);
  // Sideband: a client event that takes the client's own path (filter, meter) to the upstream.
  // False when the call is over.
  bool inject_client_event(const std::string& text);
  void add_tap(CallTap* tap);
  void remove_tap(CallTap* tap);

  const CallIdentity& identity() const { return identity_; }
  // The worker serving the call (it may change during set-up, on failover).
  const std::shared_ptr<workers::UpstreamSignaller>& signaller() const {
    return lease_.signaller();
  }
  const std::string& id() const { return identity_.call_id; }
  State state() const { return state_; }
  bool answered() const { return answered_us_ != 0; }
  // Set up but not connected yet (both legs' ICE): it holds a call's resources without a peer
  // having proven it is there. Counted by limits.max_setups (http/server.cpp).
  bool setting_up() const { return state_ != State::kEnded && connected_us_ == 0; }
  double setup_ms() const { return answered_us_ ? (answered_us_ - created_us_) / 1000.0 : -1; }
  double upstream_answer_ms() const { return upstream_answer_ms_; }
  // Monotonic times (g_get_monotonic_time(), 0: not reached) of the call's life, its set-up
  // steps and each leg's connection (the telemetry's spans; telemetry/tracer.h).
  gint64 created_us() const { return created_us_; }
  gint64 answered_us() const { return answered_us_; }
  gint64 connected_us() const { return connected_us_; }
  gint64 ended_us() const { return ended_us_; }
  const SetupSteps& setup_steps() const { return setup_steps_; }
  const LegTimes& leg_times(bool client) const { return leg_times_[client ? 0 : 1]; }
  std::uint64_t audio_packets_from_client() const { return audio_from_client_->packets.load(); }
  std::uint64_t audio_packets_from_upstream() const { return audio_from_upstream_->packets.load(); }
  std::uint64_t audio_bytes_from_client() const { return audio_from_client_->bytes.load(); }
  std::uint64_t audio_bytes_from_upstream() const { return audio_from_upstream_->bytes.load(); }
  std::uint64_t events_from_client() const { return relay_.from_client(); }
  gint64 packets_lost_on_client_leg() const {
    return client_leg_ ? client_leg_->rtp_stats().packets_lost : 0;
  }
  gint64 packets_lost_on_upstream_leg() const {
    return upstream_leg_ ? upstream_leg_->rtp_stats().packets_lost : 0;
  }
  std::uint64_t events_from_upstream() const { return relay_.from_upstream(); }
  const std::string& end_reason() const { return end_reason_; }
  // How an answered call ended, for rtgw_calls_total: "completed", "peer_timeout" (a leg's peer
  // went silent: see timed_out_leg()) or "ice_timeout" (a leg never connected).
  const std::string& outcome() const { return outcome_; }
  // "client" or "upstream" when the outcome is "peer_timeout", else "".
  const std::string& timed_out_leg() const { return timed_out_leg_; }
  // The leg whose peer certificate failed verification ("client" or "upstream"; "" if none), and
  // why ("dtls_fingerprint_mismatch" or "dtls_no_certificate", also the call's outcome).
  const std::string& dtls_failed_leg() const { return dtls_failed_leg_; }
  const std::string& dtls_failure_reason() const { return dtls_failure_reason_; }
  // Call state for GET /v1/realtime/calls/{id}.
  json::ObjectBuilder describe() const;
  // A leg's webrtcbin (null before set-up or after teardown), for read-only statistics readers
  // on the main loop (the operator console's, console/leg_stats.h).
  GstElement* leg_element(bool client) const {
    const auto& leg = client ? client_leg_ : upstream_leg_;
    return leg ? leg->element() : nullptr;
  }
  // The pipeline graph in DOT (debugging).
  std::string pipeline_dot() const;
  // With GST_DEBUG_DUMP_DOT_DIR set: writes the graph as <dir>/<call_id>-<moment>.dot.
  void dump_graph(const char* moment) const;

  // WebRtcLeg::Listener
  void OnLegConnectionState(WebRtcLeg& leg, GstWebRTCPeerConnectionState state) override;
  // EventChannel::Listener
  void OnEventChannelOpen(EventChannel& channel) override;
  void OnEventChannelClosed(EventChannel& channel, const std::string& why) override;
  // PeerLiveness::Listener
  void OnPeerSilent(PeerLiveness::Leg leg, gint64 silent_ms) override;
  // A leg's peer is dead (silent, or ICE consent lost): ends the call as if it hung up.
  void end_for_dead_peer(PeerLiveness::Leg leg, const std::string& reason);
  // A connected leg failed and its ICE state says consent was lost: ends the call as a dead peer.
  bool end_if_consent_lost(WebRtcLeg& leg, PeerLiveness::Leg which);
  // events::EventPath::Listener
  void OnPathEvent(bool to_upstream, std::string text, std::int64_t relay_ns) override;
  void OnPathEventSent(bool to_upstream, std::string text, std::int64_t relay_ns) override;
  void OnPathDecision(const events::PolicyDecision& decision) override;
  void OnPathTurn(usage::UsageRecord record) override;
  // events::EventRelay::Transport
  void send_error_to_client(const std::string& event) override;
  bool send_cancel_upstream(const std::string& event) override;
  void OnRelayPolicyEnd(const std::string& reason) override;
  void OnRelayWaitOver(const std::string& reason) override;
  // webrtc::DtlsVerifier::Listener (SPEC "Media trust")
  void OnDtlsVerified(webrtc::DtlsVerifier& verifier) override;
  void OnDtlsFailed(webrtc::DtlsVerifier& verifier,
                    const webrtc::DtlsVerifier::Failure& failure) override;

 private:
  struct AudioCounters {
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> bytes{0};
  };

  Ref<GstElement> element(const char* name) const;
  void build_pipeline();
  // CallSetup's one report: the call goes live with the answer, or its set-up failure (always
  // from the main loop) ends it and reaches the listener.
  void on_setup_done(SetupResult result);
  // The client left: end now, or first let an open response finish (cancelled) so it is metered.
  void on_client_gone(const std::string& reason);
  void on_element_message(GstMessage* message);
  void start_media_watchdog();
  void poll_rtp_stats();
  // To the client and every tap.
  void send_to_client(const std::string& text);
  void send_error_event(const std::string& code, const std::string& message,
                        const std::string& client_event_id = {});
  void on_bus_message(GstMessage* message);
  void unlink_legs();
  void finish_teardown();
  void schedule_teardown(guint delay_ms);
  static constexpr guint kChannelCloseWaitMs = 400;  // bound on the data channels' close
  static constexpr guint kFlushWaitMs = 100;         // a policy error event leaves before hang-up
  void count_audio(const char* element_name, AudioCounters* counters);

  CallIdentity identity_;
  CallSettings settings_;
  workers::WorkerLease lease_;  // held until the call is dropped
  CallListener* listener_;
  // What both transports do alike with events: statistics, decisions, turns, late usage.
  events::EventRelay relay_{settings_.late_usage_wait_ms, this, settings_.pricing,
                            settings_.relay_observer};

  State state_ = State::kSettingUp;
  std::string end_reason_;
  std::string outcome_ = "completed";
  std::string timed_out_leg_;
  int liveness_seconds_ = 0;                // the packet clock's timeout (0: consent covers it)
  std::array<bool, 2> leg_connected_{};     // by PeerLiveness::Leg: was ever CONNECTED
  std::unique_ptr<PeerLiveness> liveness_;  // its probes count packets on the legs' nicesrc
  gint64 created_us_ = 0;
  gint64 answered_us_ = 0;
  gint64 connected_us_ = 0;
  gint64 ended_us_ = 0;
  double upstream_answer_ms_ = -1;
  SetupSteps setup_steps_;
  std::array<LegTimes, 2> leg_times_{};  // [0] client, [1] upstream

  Ref<GstElement> pipeline_;
  // Each leg keeps its own state and statistics; after teardown they are detached, not gone.
  std::unique_ptr<WebRtcLeg> client_leg_;
  std::unique_ptr<WebRtcLeg> upstream_leg_;
  std::unique_ptr<EventChannel> client_events_;    // events to the client
  std::unique_ptr<EventChannel> upstream_events_;  // events to the upstream
  std::unique_ptr<events::EventPath> path_;        // in pipeline_
  // A recorded call's branches (in pipeline_; recording/call_recorder.h); null when not recorded.
  std::unique_ptr<recording::CallRecorder> recorder_;
  static constexpr guint kRecordingFinishWaitMs = 2000;  // bound on the files' last pages
  // Media trust: each leg's certificate check, and what passes between the legs until both are
  // verified (shared with the audio probes and data-channel handlers on webrtcbin's threads).
  std::unique_ptr<webrtc::DtlsVerifier> client_trust_;
  std::unique_ptr<webrtc::DtlsVerifier> upstream_trust_;
  std::shared_ptr<MediaGate> gate_;
  std::string dtls_failed_leg_;
  std::string dtls_failure_reason_;
  std::vector<SignalConnection> signals_;
  std::vector<CallTap*> taps_;
  SourceGuard bus_watch_;
  SourceGuard connect_timeout_;
  SourceGuard teardown_timeout_;
  bool torn_down_ = false;

  // Set-up (after the legs: it drives them); then the worker's call, hung up at the end.
  std::unique_ptr<CallSetup> setup_;
  std::string upstream_call_id_;

  // Statistics (audio counters are bumped on streaming threads; shared so that the reaper keeps
  // them alive until the pipeline is stopped).
  std::shared_ptr<AudioCounters> audio_from_client_ = std::make_shared<AudioCounters>();
  std::shared_ptr<AudioCounters> audio_from_upstream_ = std::make_shared<AudioCounters>();
  SourceGuard media_watchdog_;
  SourceGuard policy_hangup_;  // an end_call rule fired: hang up once the error event left
  SourceGuard stats_timer_;
  // A connected leg failed: the bounded wait for its ICE state to say whether consent was lost.
  SourceGuard failure_settle_;
  static constexpr guint kFailureSettleMs = 1000;
  std::uint64_t media_seen_packets_ = 0;
  gint64 media_seen_us_ = 0;
  // Checked by every callback posted from a GStreamer thread (last: it expires first).
  Lifetime lifetime_;
};

}  // namespace rtgw::calls
