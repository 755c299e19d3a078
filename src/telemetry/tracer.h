// SPDX-License-Identifier: MIT
// Spans of calls and WebSocket sessions (OpenTelemetry, GenAI semantic conventions where they
// fit), built when they end and handed to the exporter.
//
// Owns: the exporter (telemetry/exporter.h), the trace of each admitted call or session until it
// ends (what the HTTP layer measured: the caller's `traceparent`, the request's start, its auth,
// offer checks and admission; then the turns its relay reported), and the one conversion of
// monotonic times to wall-clock time (taken once, at construction: every span of the process
// shares it, so their order and durations are the monotonic clock's).
//
// A call's span: "realtime {model}", kind SERVER, child of the caller's `traceparent` when it
// sent a valid one (else a new trace), from the request's arrival to the call's end, with
// gen_ai.* and rtgw.* attributes, status ERROR when the outcome is not "completed", an event
// "gen_ai.response" per response.done (usage, cost). Its children (kind INTERNAL): rtgw.auth,
// rtgw.offer_checks, rtgw.admission, then the set-up steps the call measured (rtgw.client_offer,
// rtgw.upstream_offer, rtgw.upstream_answer, rtgw.upstream_apply, rtgw.client_answer) and per
// leg rtgw.ice, rtgw.dtls, rtgw.fingerprint_check. A session's span has the request's steps.
// Nothing is built without telemetry.otlp_endpoint: there is no Tracer then, and its callers
// (accounting, routes) check a null pointer.
//
// Threads: main loop only.
#pragma once

#include <glib.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "config/snapshots.h"
#include "metrics/metrics.h"
#include "telemetry/exporter.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"
#include "usage/usage_ledger.h"

namespace rtgw::calls {
class Call;
}
namespace rtgw::relay {
class WebSocketSession;
}

namespace rtgw::telemetry {

// What the HTTP layer measured of one request before its call or session exists. A default one
// is off: every method is a no-op (the gateway without telemetry).
class RequestTrace {
 public:
  struct Step {
    std::string name;
    gint64 start_us = 0;  // g_get_monotonic_time()
    gint64 end_us = 0;
  };

  RequestTrace() = default;
  RequestTrace(std::optional<TraceParent> parent, gint64 start_us)
      : on_(true), parent_(std::move(parent)), start_us_(start_us), lap_us_(start_us) {}

  bool on() const { return on_; }
  // A step from the end of the last one (or the request's start) to now.
  void lap(const char* name) {
    if (!on_) return;
    gint64 now = g_get_monotonic_time();
    steps_.push_back({name, lap_us_, now});
    lap_us_ = now;
  }
  const std::optional<TraceParent>& parent() const { return parent_; }
  gint64 start_us() const { return start_us_; }
  const std::vector<Step>& steps() const { return steps_; }

 private:
  bool on_ = false;
  std::optional<TraceParent> parent_;
  gint64 start_us_ = 0;
  gint64 lap_us_ = 0;
  std::vector<Step> steps_;
};

class Tracer {
 public:
  // Bounds on what one call's span carries.
  static constexpr std::size_t kMaxEvents = 1000;        // response events per span
  static constexpr std::size_t kMaxContentBytes = 4096;  // include_content text per event
  static constexpr std::size_t kMaxPending = 100000;     // traces waiting for their end

  Tracer(config::ConfigView config, metrics::Registry& metrics);

  // A request's trace starts (its arrival); `traceparent` is the header's value or null.
  RequestTrace start_request(const char* traceparent) const;
  // The request was admitted as call or session `id`: its trace waits for the end.
  void begin(const std::string& id, RequestTrace trace);
  // A call or session that never started after begin() (its start threw).
  void forget(const std::string& id) { pending_.erase(id); }

  // From the accounting (accounting/call_accounting.h), which sees every end.
  void on_turn(const usage::UsageRecord& record);
  // A response.done's transcript text (telemetry.include_content only).
  void on_response_content(const std::string& id, const std::string& response_id, std::string text);
  void on_call_setup_failed(const calls::Call& call, const std::string& outcome,
                            const std::string& message);
  void on_call_ended(const calls::Call& call);
  void on_session_ended(const relay::WebSocketSession& session);

  bool include_content() const { return include_content_; }
  // The hook a call or session `id` gives its relay for include_content (empty when off).
  std::function<void(const std::string&, std::string)> content_hook(const std::string& id);
  std::size_t pending() const { return pending_.size(); }
  const Exporter& exporter() const { return exporter_; }
  // At exit (app/gateway.cpp finish()): the last spans go out now, not at the next tick.
  void flush() { exporter_.flush(); }

  // Monotonic microseconds (g_get_monotonic_time()) as Unix nanoseconds.
  std::int64_t unix_ns(gint64 monotonic_us) const {
    return (monotonic_us + wall_minus_monotonic_us_) * 1000;
  }

 private:
  struct Pending {
    RequestTrace trace;
    std::string trace_id;
    std::string span_id;
    std::vector<SpanEvent> events;
    std::size_t events_dropped = 0;
    std::int64_t turns = 0;
    std::int64_t input_tokens = 0;
    std::int64_t output_tokens = 0;
    std::optional<double> cost_usd;
    // include_content: text that arrived before its turn's record, by response id.
    std::unordered_map<std::string, std::string> content;
  };

  struct Ending {
    std::string id;
    std::string transport;
    std::string key_name;
    std::string model;
    std::string worker;
    std::string outcome;
    std::string end_reason;
    gint64 created_us = 0;
    gint64 ended_us = 0;
  };

  // The call's or session's span (and its request's steps) from its pending trace; nullopt when
  // it has none. Its children are added by the caller.
  std::optional<Span> finish(Pending& pending, const Ending& end);
  // An ended call's or session's trace state, removed from pending_ (none: it was not traced).
  std::optional<Pending> take(const std::string& id);
  // The request's own steps (auth, offer checks, admission, ...) as children of `span`.
  std::vector<Span> request_steps(const Span& span, const Pending& p) const;
  // The span, then its children, to the exporter.
  void enqueue(Span span, std::vector<Span> children);
  Span child(const Span& parent, const char* name, gint64 start_us, gint64 end_us) const;
  std::string provider_of(const std::string& worker) const;

  config::ConfigView config_;  // the current snapshot: workers come and go with a reload
  bool include_content_ = false;
  gint64 wall_minus_monotonic_us_ = 0;
  std::unordered_map<std::string, Pending> pending_;
  Exporter exporter_;
};

}  // namespace rtgw::telemetry
