// SPDX-License-Identifier: MIT
#include "telemetry/tracer.h"

#include <algorithm>

#include "calls/call.h"
#include "sessions/websocket_session.h"

namespace rtgw::telemetry {
namespace {

Exporter::Options exporter_options(const config::TelemetryConfig& t) {
  Exporter::Options o;
  o.endpoint = t.otlp_endpoint;
  o.service_name = t.service_name;
  o.headers = t.headers;
  return o;
}

// At most `max` bytes of `text`, cut at a UTF-8 character boundary.
std::string bounded_utf8(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  const char* end = g_utf8_find_prev_char(text.c_str(), text.c_str() + max + 1);
  text.resize(end ? static_cast<std::size_t>(end - text.c_str()) : 0);
  return text;
}

}  // namespace

Tracer::Tracer(config::ConfigView config, metrics::Registry& metrics)
    : config_(config),
      include_content_(config.current().telemetry.include_content),
      // Once: every span's wall-clock time is its monotonic time shifted by this.
      wall_minus_monotonic_us_(g_get_real_time() - g_get_monotonic_time()),
      exporter_(exporter_options(config.current().telemetry), metrics) {}

RequestTrace Tracer::start_request(const char* traceparent) const {
  gint64 now = g_get_monotonic_time();
  // A malformed traceparent is ignored: the call starts a new trace.
  return RequestTrace(traceparent ? parse_traceparent(traceparent) : std::nullopt, now);
}

void Tracer::begin(const std::string& id, RequestTrace trace) {
  if (!trace.on()) return;
  if (pending_.size() >= kMaxPending) return;  // a leak would be a bug; the bound keeps memory
  Pending p;
  p.trace_id = trace.parent() ? trace.parent()->trace_id : new_trace_id();
  p.span_id = new_span_id();
  p.trace = std::move(trace);
  pending_.insert_or_assign(id, std::move(p));
}

void Tracer::on_turn(const usage::UsageRecord& record) {
  auto it = pending_.find(record.call_id);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  p.turns++;
  p.input_tokens += record.input_tokens;
  p.output_tokens += record.output_tokens;
  if (record.cost_usd) p.cost_usd = p.cost_usd.value_or(0) + *record.cost_usd;
  if (record.kind != "response") return;  // one event per response.done
  if (p.events.size() >= kMaxEvents) {
    p.events_dropped++;
    return;
  }
  SpanEvent e;
  e.name = "gen_ai.response";
  e.time_unix_ns = unix_ns(g_get_monotonic_time());
  e.attributes = {{"gen_ai.response.id", record.response_id},
                  {"gen_ai.response.finish_reasons", record.status},
                  {"gen_ai.usage.input_tokens", std::int64_t{record.input_tokens}},
                  {"gen_ai.usage.output_tokens", std::int64_t{record.output_tokens}},
                  {"rtgw.total_tokens", std::int64_t{record.total_tokens}}};
  if (record.cost_usd) e.attributes.push_back({"rtgw.cost_usd", *record.cost_usd});
  if (record.first_token_latency_ms >= 0)
    e.attributes.push_back({"rtgw.first_token_ms", record.first_token_latency_ms});
  if (auto c = p.content.find(record.response_id); c != p.content.end()) {
    e.attributes.push_back({"rtgw.content.transcript", std::move(c->second)});
    p.content.erase(c);
  }
  p.events.push_back(std::move(e));
}

void Tracer::on_response_content(const std::string& id, const std::string& response_id,
                                 std::string text) {
  if (!include_content_) return;
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  text = bounded_utf8(std::move(text), kMaxContentBytes);
  // The turn's record and the event may come in either order.
  for (auto& e : p.events)
    if (!e.attributes.empty() && e.attributes[0].key == "gen_ai.response.id" &&
        std::get<std::string>(e.attributes[0].value) == response_id) {
      e.attributes.push_back({"rtgw.content.transcript", std::move(text)});
      return;
    }
  if (p.content.size() < kMaxEvents) p.content.insert_or_assign(response_id, std::move(text));
}

std::function<void(const std::string&, std::string)> Tracer::content_hook(const std::string& id) {
  if (!include_content_) return {};
  return [this, id](const std::string& response_id, std::string text) {
    on_response_content(id, response_id, std::move(text));
  };
}

std::string Tracer::provider_of(const std::string& worker) const {
  for (const auto& model : config_.current().models)
    for (const auto& w : model.workers)
      if (w.name == worker) {
        // The semantic conventions' well-known provider names where one fits.
        if (w.provider == "openai") return "openai";
        if (w.provider == "azure") return "azure.ai.openai";
        return w.provider;
      }
  return worker == "echo" ? "echo" : "generic";
}

Span Tracer::child(const Span& parent, const char* name, gint64 start_us, gint64 end_us) const {
  Span s;
  s.trace_id = parent.trace_id;
  s.span_id = new_span_id();
  s.parent_span_id = parent.span_id;
  s.name = name;
  s.kind = SpanKind::kInternal;
  // Within the parent: a leg's late report (its ICE connecting as the call was hung up) does not
  // outlast the call.
  s.end_unix_ns = std::min(unix_ns(std::max(start_us, end_us)), parent.end_unix_ns);
  s.start_unix_ns = std::min(unix_ns(start_us), s.end_unix_ns);
  return s;
}

std::optional<Span> Tracer::finish(Pending& p, const Ending& end) {
  Span span;
  span.trace_id = p.trace_id;
  span.span_id = p.span_id;
  if (p.trace.parent()) span.parent_span_id = p.trace.parent()->parent_id;
  // GenAI conventions: "{gen_ai.operation.name} {gen_ai.request.model}".
  span.name = "realtime " + end.model;
  span.kind = SpanKind::kServer;
  gint64 start = p.trace.start_us() ? p.trace.start_us() : end.created_us;
  span.start_unix_ns = unix_ns(start);
  span.end_unix_ns = unix_ns(std::max(start, end.ended_us ? end.ended_us : g_get_monotonic_time()));
  std::string provider = provider_of(end.worker);
  span.set("gen_ai.operation.name", "realtime")
      .set("gen_ai.system", provider)
      .set("gen_ai.provider.name", provider)
      .set("gen_ai.request.model", end.model)
      .set("gen_ai.usage.input_tokens", p.input_tokens)
      .set("gen_ai.usage.output_tokens", p.output_tokens)
      .set("rtgw.call.id", end.id)
      .set("rtgw.key.name", end.key_name)
      .set("rtgw.worker", end.worker)
      .set("rtgw.transport", end.transport)
      .set("rtgw.outcome", end.outcome)
      .set("rtgw.end_reason", end.end_reason)
      .set("rtgw.turns", p.turns);
  if (p.cost_usd) span.set("rtgw.cost_usd", *p.cost_usd);
  if (p.events_dropped)
    span.set("rtgw.events_dropped", static_cast<std::int64_t>(p.events_dropped));
  span.events = std::move(p.events);
  if (end.outcome != "completed") {
    span.error = true;
    span.status_message = end.outcome + (end.end_reason.empty() ? "" : ": " + end.end_reason);
  }
  return span;
}

std::optional<Tracer::Pending> Tracer::take(const std::string& id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  return p;
}

std::vector<Span> Tracer::request_steps(const Span& span, const Pending& p) const {
  std::vector<Span> children;
  for (const auto& step : p.trace.steps())
    children.push_back(child(span, step.name.c_str(), step.start_us, step.end_us));
  return children;
}

void Tracer::enqueue(Span span, std::vector<Span> children) {
  exporter_.enqueue(std::move(span));
  for (auto& c : children) exporter_.enqueue(std::move(c));
}

void Tracer::on_call_setup_failed(const calls::Call& call, const std::string& outcome,
                                  const std::string& message) {
  auto p = take(call.id());
  if (!p) return;
  const auto& id = call.identity();
  Ending end{id.call_id, "webrtc", id.key_name,       id.model,       id.worker_name,
             outcome,    message,  call.created_us(), call.ended_us()};
  auto span = finish(*p, end);
  if (!span) return;
  std::vector<Span> children = request_steps(*span, *p);
  enqueue(std::move(*span), std::move(children));
}

void Tracer::on_call_ended(const calls::Call& call) {
  auto p = take(call.id());
  if (!p) return;
  const auto& id = call.identity();
  Ending end{id.call_id,     "webrtc",          id.key_name,       id.model,       id.worker_name,
             call.outcome(), call.end_reason(), call.created_us(), call.ended_us()};
  auto span = finish(*p, end);
  if (!span) return;
  std::vector<Span> children = request_steps(*span, *p);
  // The set-up steps the call measured (calls/call_setup.h), each where it happened.
  const calls::SetupSteps& s = call.setup_steps();
  auto step = [&](const char* name, gint64 from, gint64 to) -> Span* {
    if (!from || !to) return nullptr;
    children.push_back(child(*span, name, from, to));
    return &children.back();
  };
  step("rtgw.client_offer", s.started_us, s.client_offer_accepted_us);
  step("rtgw.upstream_offer", s.started_us, s.upstream_offer_us);
  if (Span* c = step("rtgw.upstream_answer", s.upstream_offer_us, s.worker_answered_us))
    c->set("rtgw.worker", id.worker_name);
  step("rtgw.upstream_apply", s.worker_answered_us, s.upstream_ready_us);
  step("rtgw.client_answer", s.client_offer_accepted_us, s.client_answer_us);
  // Each leg's connection: ICE from when the leg had both descriptions (the client's answer
  // sent; the worker's answer applied), DTLS after it, the fingerprint checked when DTLS is up.
  for (bool client : {true, false}) {
    const calls::LegTimes& t = call.leg_times(client);
    const char* leg = client ? "client" : "upstream";
    gint64 ice_from = client ? call.answered_us() : s.upstream_ready_us;
    gint64 dtls_to = t.dtls_verified_us ? t.dtls_verified_us : t.connected_us;
    if (Span* c = step("rtgw.ice", ice_from, t.ice_connected_us)) c->set("rtgw.leg", leg);
    if (Span* c = step("rtgw.dtls", t.ice_connected_us ? t.ice_connected_us : ice_from, dtls_to))
      c->set("rtgw.leg", leg);
    if (t.dtls_verified_us) {
      Span* c = step("rtgw.fingerprint_check", t.dtls_verified_us, t.dtls_verified_us);
      c->set("rtgw.leg", leg).set("rtgw.dtls.result", "verified");
    } else if (call.dtls_failed_leg() == leg && call.ended_us()) {
      Span* c = step("rtgw.fingerprint_check", call.ended_us(), call.ended_us());
      c->set("rtgw.leg", leg).set("rtgw.dtls.result", call.dtls_failure_reason());
      c->error = true;
      c->status_message = call.dtls_failure_reason();
    }
  }
  enqueue(std::move(*span), std::move(children));
}

void Tracer::on_session_ended(const relay::WebSocketSession& session) {
  auto p = take(session.id());
  if (!p) return;
  const auto& id = session.identity();
  Ending end{id.session_id,         "websocket",       id.key_name,          id.model,
             id.worker_name,        session.outcome(), session.end_reason(), session.created_us(),
             g_get_monotonic_time()};
  auto span = finish(*p, end);
  if (!span) return;
  span->set("rtgw.close_code", std::int64_t{session.close_code()});
  std::vector<Span> children = request_steps(*span, *p);
  enqueue(std::move(*span), std::move(children));
}

}  // namespace rtgw::telemetry
