// SPDX-License-Identifier: MIT
#include "sessions/websocket_session.h"

#include <utility>

#include "common/log_text.h"
#include "common/main_thread.h"
#include "events/beta_dialect.h"

namespace rtgw::relay {
namespace {

constexpr guint kFlushWaitMs = 500;  // bound on upstream events still in the path at a close

const char* state_name(WebSocketSession::State s) {
  switch (s) {
    case WebSocketSession::State::kConnecting:
      return "connecting";
    case WebSocketSession::State::kOpen:
      return "active";
    case WebSocketSession::State::kDraining:
      return "draining";
    case WebSocketSession::State::kEnded:
      return "ended";
  }
  return "unknown";
}

}  // namespace

WebSocketSession::WebSocketSession(SessionIdentity identity, SessionSettings settings,
                                   workers::WorkerLease lease, SoupWebsocketConnection* client,
                                   std::uint64_t max_client_message_bytes,
                                   SessionListener* listener)
    : identity_(std::move(identity)),
      settings_(std::move(settings)),
      lease_(std::move(lease)),
      listener_(listener),
      client_(client, max_client_message_bytes, this),
      cancellable_(Ref<GCancellable>::adopt(g_cancellable_new())) {
  client_.limit_outgoing(settings_.max_outgoing_bytes);
}

WebSocketSession::~WebSocketSession() {
  g_cancellable_cancel(cancellable_.get());
  // The sockets close themselves (and linger for the handshake) when dropped.
}

void WebSocketSession::start() {
  events::EventPath::Policy policy{settings_.policy_json, identity_.key_name, identity_.model,
                                   settings_.budget_exceeded, settings_.allowed_models};
  relay_.set_response_gate(settings_.response_gate, identity_.key_name, identity_.model);
  if (settings_.response_content) relay_.set_response_content(settings_.response_content);
  relay_.set_transcript_capture(settings_.transcript);
  path_ = events::EventPath::start_own(settings_.pipeline_description, identity_.session_id, policy,
                                       this);
  if (settings_.session_json) {
    // A token's session configures the worker first, under the same policy as the client's own
    // session.update.
    path_->push_from_client(R"({"type":"session.update","session":)" + *settings_.session_json +
                            "}");
  }
  start_idle_timer();
  connect_upstream();
}

void WebSocketSession::connect_upstream() {
  lease_->open_socket({identity_.upstream_model, settings_.transcription, settings_.translation},
                      this, cancellable_.get(),
                      [this, alive = lifetime_.watch()](workers::SocketResult result) {
                        if (!alive.alive()) return;
                        on_upstream_result(std::move(result));
                      });
}

void WebSocketSession::on_upstream_result(workers::SocketResult result) {
  if (state_ != State::kConnecting) return;  // the client left meanwhile; the socket closes
  if (auto* failure = std::get_if<workers::UpstreamFailure>(&result)) {
    // As for calls: a worker's own failure counts against it and the next worker is tried; a
    // 401/403 (the gateway's credentials refused) counts against it and ends here; a refusal of
    // the request (other 4xx) is not the worker's fault and ends here.
    if (workers::fail_over(*failure, lease_, tried_workers_, settings_.failover, id())) {
      identity_.worker_name = lease_->name();
      connect_upstream();
      return;
    }
    fail_upstream(*failure);
    return;
  }
  lease_.settle(workers::SetupOutcome::kSuccess);
  upstream_ = std::move(std::get<std::unique_ptr<workers::UpstreamSocket>>(result));
  upstream_->limit_outgoing(settings_.max_outgoing_bytes);
  state_ = State::kOpen;
  connected_us_ = g_get_monotonic_time();
  g_message("[%s] worker %s connected in %.1f ms", id().c_str(), identity_.worker_name.c_str(),
            (connected_us_ - created_us_) / 1000.0);
  for (const auto& text : pending_.take()) upstream_->send_text(text);
}

void WebSocketSession::fail_upstream(const workers::UpstreamFailure& f) {
  using K = workers::UpstreamFailure::Kind;
  int code = close_code::kInternalError;
  if (f.kind == K::kStatus) {
    outcome_ = "upstream_error";
    if (f.status == 401 || f.status == 403)
      code = close_code::kPolicyViolation;  // the worker refuses the gateway's credentials
    else if (f.status == 429)
      code = close_code::kTryAgainLater;
  } else if (f.kind == K::kTimeout) {
    outcome_ = "upstream_timeout";
    code = close_code::kTryAgainLater;
  } else {
    outcome_ = "upstream_unreachable";
  }
  send_error_event("server_error", outcome_, f.message);
  end(code, "upstream: " + f.message);
}

void WebSocketSession::end(int code, const std::string& reason) {
  if (state_ == State::kEnded) return;
  state_ = State::kEnded;
  end_reason_ = reason;
  close_code_ = code;
  g_cancellable_cancel(cancellable_.get());
  lease_.settle(workers::SetupOutcome::kNeutral);  // ended while connecting: a cancel
  idle_timer_.cancel();
  relay_.stop();
  flush_timeout_.cancel();
  g_message("[%s] ended (%d): %s", id().c_str(), code, reason.c_str());
  if (!policy_end_message_.empty()) client_.send_text(std::exchange(policy_end_message_, {}));
  client_.close(code, reason);
  if (upstream_ && !upstream_closed_)
    upstream_->close(code == close_code::kGoingAway ? code : close_code::kNormal,
                     "gateway: " + reason);
  post_if_alive(lifetime_.watch(), [this] { listener_->OnSessionEnded(*this); });
}

void WebSocketSession::set_budget_exceeded(bool exceeded) {
  if (path_) path_->set_budget_exceeded(exceeded);
}

void WebSocketSession::end_over_budget(const std::string& message) {
  if (state_ == State::kEnded || !policy_end_message_.empty()) return;
  policy_end_message_ = events::make_quota_error_event(message);
  outcome_ = "budget_exceeded";
  close_client_after_flush(close_code::kPolicyViolation,
                           "budget_exceeded: the key is over its budget");
}

void WebSocketSession::end_key_revoked(const std::string& code, const std::string& message) {
  if (state_ == State::kEnded || !policy_end_message_.empty()) return;
  policy_end_message_ = events::make_error_event("invalid_request_error", code, message, "");
  outcome_ = "key_revoked";
  close_client_after_flush(close_code::kPolicyViolation, "key_revoked: " + code);
}

void WebSocketSession::OnSocketText(WebSocket&, std::string text) {
  if (state_ == State::kEnded || state_ == State::kDraining) return;
  touch();
  relay_.count_from_client();
  // Before the policy, which sees GA; an event over the size limit is not translated (nor parsed)
  // but goes as it came to the filter, which refuses it by its size first (issue 21).
  if (settings_.beta_client && text.size() <= settings_.max_event_bytes)
    if (auto ga = events::beta::client_event_to_ga(text)) text = std::move(*ga);
  path_->push_from_client(text);
}

void WebSocketSession::OnSocketBinary(WebSocket&, std::size_t bytes) {
  if (state_ == State::kEnded) return;
  touch();
  send_error_event("invalid_request_error", "binary_not_supported",
                   "a binary message of " + std::to_string(bytes) +
                       " bytes was not relayed: realtime events are JSON text messages");
}

void WebSocketSession::OnSocketClosed(WebSocket&, int code, const std::string& reason) {
  if (state_ == State::kEnded) return;
  on_client_gone("client closed (" + std::to_string(code) +
                 (reason.empty() ? "" : ": " + log_quote(reason)) + ")");
}

void WebSocketSession::OnSocketOverflow(WebSocket&, std::uint64_t backlog, std::uint64_t limit) {
  if (state_ == State::kEnded) return;
  std::string what = "the client does not read: " + std::to_string(backlog) +
                     " bytes wait for it (limit " + std::to_string(limit) + ")";
  // Queued behind what it has not read: a client that resumes reading gets it before the close.
  send_error_event("invalid_request_error", "slow_consumer", what + "; closing the session");
  outcome_ = "slow_consumer";
  end(close_code::kPolicyViolation, what);
}

void WebSocketSession::on_client_gone(const std::string& reason) {
  if (state_ == State::kDraining || state_ == State::kEnded) return;
  guint open_turns = path_ ? path_->open_turns() : 0;
  if (state_ != State::kOpen || !relay_.begin_late_usage_wait(reason, open_turns)) {
    end(close_code::kNormal, reason);
    return;
  }
  state_ = State::kDraining;
  g_message("[%s] client gone with %u open response(s): cancelling and waiting for usage",
            id().c_str(), open_turns);
}

bool WebSocketSession::send_cancel_upstream(const std::string& event) {
  if (!upstream_ || upstream_closed_) return false;
  upstream_->send_text(event);
  return true;
}

void WebSocketSession::OnUpstreamText(std::string text) {
  if (state_ == State::kEnded) return;
  touch();
  // As for calls (whose data channel cannot carry more): a worker's event over the size limit is
  // not metered, translated or relayed, and the client is told (issue 21: nothing that size is
  // parsed on the main loop).
  if (text.size() > settings_.max_event_bytes) {
    relay_.count_from_upstream();
    g_message("[%s] upstream event of %zu bytes exceeds the limit of %zu bytes: not relayed",
              id().c_str(), text.size(), settings_.max_event_bytes);
    send_error_event("invalid_request_error", "event_too_large",
                     "server event of " + std::to_string(text.size()) +
                         " bytes exceeds the limit of " +
                         std::to_string(settings_.max_event_bytes) + " bytes; not relayed");
    return;
  }
  path_->push_from_upstream(text);
}

void WebSocketSession::OnUpstreamClosed(int code, const std::string& reason) {
  upstream_closed_ = true;
  if (state_ == State::kEnded) return;
  std::string why = "upstream closed (" + std::to_string(code) +
                    (reason.empty() ? "" : ": " + log_quote(reason)) + ")";
  if (state_ == State::kDraining) {
    end(close_code::kNormal, relay_.wait_reason() + "; " + why);
    return;
  }
  // The worker's own code goes to the client; a close without a code is a normal one, a
  // connection that broke is the gateway's internal error from the client's point of view.
  int client_code = code == 1005                ? close_code::kNormal
                    : sendable_close_code(code) ? code
                                                : close_code::kInternalError;
  close_client_after_flush(client_code, why);
}

void WebSocketSession::close_client_after_flush(int code, const std::string& reason) {
  if (!path_ || path_->in_flight_to_client() == 0) {
    end(code, reason);
    return;
  }
  client_close_pending_ = true;
  pending_close_code_ = code;
  pending_close_reason_ = reason;
  flush_timeout_ =
      run_after_ms(kFlushWaitMs, [this] { end(pending_close_code_, pending_close_reason_); });
}

void WebSocketSession::OnPathEvent(bool to_upstream, std::string text, std::int64_t relay_ns) {
  if (state_ == State::kEnded) return;
  if (relay_ns >= 0) relay_.record_relay_time(to_upstream, relay_ns);
  if (!to_upstream) {
    relay_.count_from_upstream();
    // As for calls: a worker's event that is not strict JSON and an object would break the
    // client's parser (or be read differently by it): an error event goes in its place.
    if (!events::is_json_object(text)) {
      g_message("[%s] upstream event of %zu bytes is not a JSON object: not relayed", id().c_str(),
                text.size());
      send_error_event("server_error", "invalid_upstream_event",
                       "the worker sent an event that is not a JSON object (" +
                           std::to_string(text.size()) + " bytes); not relayed");
      if (client_close_pending_ && path_->in_flight_to_client() == 0)
        end(pending_close_code_, pending_close_reason_);
      return;
    }
    relay_.note_from_upstream(text);
    if (settings_.beta_client)  // after the meter: it saw GA
      if (auto beta = events::beta::server_event_to_beta(text)) text = std::move(*beta);
    client_.send_text(text);
    if (client_close_pending_ && path_->in_flight_to_client() == 0)
      end(pending_close_code_, pending_close_reason_);
    return;
  }
  if (state_ == State::kDraining) return;  // the client is gone
  // A response.create the budget has no room for stops here (the client was told).
  if (!relay_.admit_to_upstream(text)) return;
  if (state_ == State::kOpen) {
    upstream_->send_text(text);
    return;
  }
  // Still connecting to the worker: queue, bounded.
  if (!pending_.push(text)) {
    relay_.not_relayed_upstream(text);  // its budget reservation, if any, goes back
    send_error_event("invalid_request_error", "event_queue_full",
                     "the worker's socket is not open yet and the queue is full; event not "
                     "relayed");
  }
}

void WebSocketSession::OnPathDecision(const events::PolicyDecision& d) { relay_.on_decision(d); }

void WebSocketSession::send_error_to_client(const std::string& event) { client_.send_text(event); }

void WebSocketSession::OnRelayPolicyEnd(const std::string& reason) {
  // The error event is queued on the socket before the close frame: the client sees both.
  end(close_code::kPolicyViolation, reason);
}

void WebSocketSession::OnPathTurn(usage::UsageRecord record) {
  relay_.on_turn(std::move(record), {identity_.session_id, "websocket", identity_.key_name,
                                     identity_.model, identity_.worker_name});
}

void WebSocketSession::OnRelayWaitOver(const std::string& reason) {
  end(close_code::kNormal, reason);
}

void WebSocketSession::send_error_event(const char* type, const std::string& code,
                                        const std::string& message,
                                        const std::string& client_event_id) {
  client_.send_text(events::make_error_event(type, code, message, client_event_id));
}

void WebSocketSession::start_idle_timer() {
  if (settings_.idle_timeout_seconds <= 0) return;
  idle_timer_ = run_every_seconds(1, [this] {
    gint64 limit = gint64{settings_.idle_timeout_seconds} * G_USEC_PER_SEC;
    if (g_get_monotonic_time() - last_activity_us_ < limit) return true;
    end(close_code::kNormal,
        "idle timeout: no events for " + std::to_string(settings_.idle_timeout_seconds) + " s");
    return false;
  });
}

json::ObjectBuilder WebSocketSession::describe() const {
  json::ObjectBuilder events = relay_.events_json(false);
  json::ObjectBuilder usage = relay_.usage_json();
  json::ObjectBuilder timings;
  timings.set("connected_ms", connected_us_ ? (connected_us_ - created_us_) / 1000.0 : -1.0)
      .set("duration_ms", (g_get_monotonic_time() - created_us_) / 1000.0)
      .set_object("event_relay_us", relay_.relay_times_json());
  json::ObjectBuilder out;
  out.set("id", identity_.session_id)
      .set("object", "realtime.websocket_session")
      .set("model", identity_.model)
      .set("worker", identity_.worker_name)
      .set("key", identity_.key_name)
      .set("state", state_name(state_));
  if (state_ == State::kEnded)
    out.set("end_reason", end_reason_).set("close_code", static_cast<gint64>(close_code_));
  out.set_object("timings", std::move(timings))
      .set_object("events", std::move(events))
      .set_object("usage", std::move(usage));
  return out;
}

}  // namespace rtgw::relay
