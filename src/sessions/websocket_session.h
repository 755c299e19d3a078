// SPDX-License-Identifier: MIT
// One relayed WebSocket realtime session (`GET /v1/realtime?model=`).
//
// Owns: the client's WebSocket, its worker lease (held until the session is dropped), the worker's
// `UpstreamSocket` (opened after the client's upgrade, with failover to the model's next worker),
// the idle timer, and the mapping of every ending to a close code (RFC 6455): policy 1008,
// upstream refused 1008/1013/1011, idle 1000, upstream's own code passed on. It is the WebSocket
// adapter over events/: its `EventPath` (own pipeline: policy on client events, metering of
// upstream events; for a beta client, the dialect translation on both sides of it) and its
// `EventRelay` (statistics, decisions, turns, the late-usage wait after the client leaves
// mid-response), with a `PendingQueue` of client events waiting for the worker.
//
// Threads: main loop only. It reports to its owner through `SessionListener` and never deletes
// itself.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "common/websocket.h"
#include "config/config.h"
#include "events/event_path.h"
#include "events/event_relay.h"
#include "usage/usage_ledger.h"
#include "workers/upstream_signaller.h"
#include "workers/worker_lease.h"

namespace rtgw::relay {

class WebSocketSession;

class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // The session is over (both sockets closing or closed); the owner may drop it.
  virtual void OnSessionEnded(WebSocketSession& session) = 0;
};

struct SessionIdentity {
  std::string session_id;  // ws_<32 hex>
  std::string key_name;
  std::string model;           // the gateway's model name
  std::string upstream_model;  // the name the worker knows
  std::string worker_name;
};

struct SessionSettings {
  // telemetry.include_content: each response.done's transcript text (events/event_relay.h).
  events::EventRelay::ResponseContentFn response_content;
  std::string pipeline_description;  // gst-launch syntax (pipelines/session.pipeline)
  std::string policy_json;           // rteventfilter `policy` ("" = none)
  bool budget_exceeded = false;
  // Asked before each response.create goes upstream (a budget reservation; none: no budgets).
  usage::ResponseGate response_gate;
  // The key's model patterns plus the session's upstream model name (rteventfilter
  // `allowed-models`: a session.update's transcription model must be one of them); empty: any.
  std::vector<std::string> allowed_models;
  int idle_timeout_seconds = 300;            // 0 = never
  std::int64_t max_pending_bytes = 1 << 20;  // client events queued while the worker connects
  // What may wait towards a client (or worker) that does not read: past it, close 1008 (1013).
  std::uint64_t max_outgoing_bytes = WebSocket::kDefaultMaxOutgoingBytes;
  int late_usage_wait_ms = events::kLateUsageWaitMs;  // client gone mid-response
  // Where the session's relay reports metered turns and policy decisions (the accounting; none:
  // nowhere). The session itself forwards no report.
  events::RelayObserver* relay_observer = nullptr;
  // The model's price table: the relay prices each turn once (its record's cost_usd, which the
  // usage log, ledger, spend metric and budgets take as is, and the running cost in describe()).
  // None: turns carry cost_usd null.
  std::optional<config::Pricing> pricing;
  // The client speaks the beta dialect: its events are translated to GA before the policy, the
  // worker's to beta after the meter (events/beta_dialect.h). The worker always gets GA.
  bool beta_client = false;
  // policy.max_event_bytes: a client event above it is refused by the filter, untranslated; a
  // worker's event above it is not relayed (the client gets event_too_large).
  std::size_t max_event_bytes = 65536;
  bool transcription = false;  // a transcription session (upstream: ?intent=transcription)
  bool translation = false;    // a translation session (upstream: the translation socket URL)
  // A token's session: sent first, as a session.update through the policy.
  std::optional<std::string> session_json;
  // A lease on the next worker to try after a worker failure while connecting (empty: none).
  workers::FailoverFn failover;
  // transcripts: the session's capture (transcripts/transcript_store.h); null: not transcribed.
  std::shared_ptr<transcripts::TranscriptCapture> transcript;
  // The config snapshot the session was admitted under (config/snapshots.h), held for its
  // lifetime: a reload never changes what it started with.
  std::shared_ptr<const config::Config> config_snapshot;
};

class WebSocketSession : public WebSocket::Listener,
                         public workers::UpstreamSocket::Listener,
                         public events::EventPath::Listener,
                         public events::EventRelay::Transport {
 public:
  enum class State { kConnecting, kOpen, kDraining, kEnded };

  WebSocketSession(SessionIdentity identity, SessionSettings settings, workers::WorkerLease lease,
                   SoupWebsocketConnection* client, std::uint64_t max_client_message_bytes,
                   SessionListener* listener);
  ~WebSocketSession() override;
  WebSocketSession(const WebSocketSession&) = delete;
  WebSocketSession& operator=(const WebSocketSession&) = delete;

  // Builds the event path and opens the worker's socket. Throws std::runtime_error when the
  // pipeline cannot be built.
  void start();
  // Ends the session: the client is closed with `code` and `reason`, the worker with 1000.
  void end(int code, const std::string& reason);
  void set_budget_exceeded(bool exceeded);
  // The key's budget ends the session (end_calls_over_budget): the upstream events already
  // received reach the client, then the `insufficient_quota` error event with `message`, then
  // close 1008; its outcome and end reason say budget_exceeded.
  void end_over_budget(const std::string& message);
  // The session's key was revoked, deleted or expired (accounting/call_accounting.h end_key): the
  // upstream events already received reach the client, then an `error` event with `code`
  // (invalid_api_key) and `message`, then close 1008; its outcome and end reason say key_revoked.
  void end_key_revoked(const std::string& code, const std::string& message);

  const SessionIdentity& identity() const { return identity_; }
  const std::string& id() const { return identity_.session_id; }
  const std::shared_ptr<workers::UpstreamSignaller>& signaller() const {
    return lease_.signaller();
  }
  State state() const { return state_; }
  // "completed", or how it failed: "upstream_error", "upstream_timeout", "upstream_unreachable"
  const std::string& outcome() const { return outcome_; }
  int close_code() const { return close_code_; }
  const std::string& end_reason() const { return end_reason_; }
  gint64 created_us() const { return created_us_; }  // g_get_monotonic_time() (telemetry)
  std::uint64_t events_from_client() const { return relay_.from_client(); }
  std::uint64_t events_from_upstream() const { return relay_.from_upstream(); }
  json::ObjectBuilder describe() const;

  // WebSocket::Listener (the client)
  void OnSocketText(WebSocket& socket, std::string text) override;
  void OnSocketBinary(WebSocket& socket, std::size_t bytes) override;
  void OnSocketClosed(WebSocket& socket, int code, const std::string& reason) override;
  void OnSocketOverflow(WebSocket& socket, std::uint64_t backlog, std::uint64_t limit) override;
  // workers::UpstreamSocket::Listener
  void OnUpstreamText(std::string text) override;
  void OnUpstreamClosed(int code, const std::string& reason) override;
  // events::EventPath::Listener
  void OnPathEvent(bool to_upstream, std::string text, std::int64_t relay_ns) override;
  void OnPathDecision(const events::PolicyDecision& decision) override;
  void OnPathTurn(usage::UsageRecord record) override;
  // events::EventRelay::Transport
  void send_error_to_client(const std::string& event) override;
  bool send_cancel_upstream(const std::string& event) override;
  void OnRelayPolicyEnd(const std::string& reason) override;
  void OnRelayWaitOver(const std::string& reason) override;

 private:
  void connect_upstream();
  void on_upstream_result(workers::SocketResult result);
  void fail_upstream(const workers::UpstreamFailure& failure);
  void on_client_gone(const std::string& reason);
  // Closes the client once every upstream event already received has reached it.
  void close_client_after_flush(int code, const std::string& reason);
  void send_error_event(const char* type, const std::string& code, const std::string& message,
                        const std::string& client_event_id = {});
  void start_idle_timer();
  void touch() { last_activity_us_ = g_get_monotonic_time(); }

  SessionIdentity identity_;
  SessionSettings settings_;
  workers::WorkerLease lease_;
  SessionListener* listener_;
  // What both transports do alike with events: statistics, decisions, turns, late usage.
  events::EventRelay relay_{settings_.late_usage_wait_ms, this, settings_.pricing,
                            settings_.relay_observer};

  State state_ = State::kConnecting;
  std::string outcome_ = "completed";
  std::string end_reason_;
  // end_over_budget(), end_key_revoked(): the error event (JSON text) sent just before the close
  std::string policy_end_message_;
  int close_code_ = 0;
  gint64 created_us_ = g_get_monotonic_time();
  gint64 connected_us_ = 0;
  gint64 last_activity_us_ = g_get_monotonic_time();

  WebSocket client_;
  std::unique_ptr<workers::UpstreamSocket> upstream_;
  bool upstream_closed_ = false;
  std::unique_ptr<events::EventPath> path_;
  Ref<GCancellable> cancellable_;
  std::vector<std::string> tried_workers_;
  events::PendingQueue pending_{settings_.max_pending_bytes};  // until the worker's socket opens

  // A close of the client waiting for upstream events still in the path.
  bool client_close_pending_ = false;
  int pending_close_code_ = 0;
  std::string pending_close_reason_;

  SourceGuard idle_timer_;
  SourceGuard flush_timeout_;
  Lifetime lifetime_;
};

}  // namespace rtgw::relay
