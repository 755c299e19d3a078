// SPDX-License-Identifier: MIT
#include "accounting/call_accounting.h"

#include <algorithm>
#include <map>

#include "common/main_thread.h"
#include "usage/budget_period.h"
#include "usage/pricing.h"
#include "usage/saturating.h"

namespace rtgw::app {
namespace {

const char* failure_outcome(calls::SetupFailure::Kind kind) {
  switch (kind) {
    case calls::SetupFailure::Kind::kUpstreamStatus:
      return "upstream_error";
    case calls::SetupFailure::Kind::kUpstreamTimeout:
      return "upstream_timeout";
    case calls::SetupFailure::Kind::kUpstreamUnreachable:
      return "upstream_unreachable";
    case calls::SetupFailure::Kind::kNoCapacity:
      return "no_capacity";
    case calls::SetupFailure::Kind::kInvalidOffer:
      return "invalid_sdp";
    case calls::SetupFailure::Kind::kCancelled:
      return "cancelled";
    case calls::SetupFailure::Kind::kInternal:
      return "internal_error";
  }
  return "error";
}

}  // namespace

CallAccounting::CallAccounting(config::ConfigView config, usage::UsageLedger& ledger,
                               metrics::Registry& metrics, calls::CallRegistry& calls,
                               relay::SessionRegistry& sessions)
    : config_(config), ledger_(ledger), metrics_(metrics), calls_(calls), sessions_(sessions) {}

const config::KeyConfig* CallAccounting::find_key(const std::string& key_name) const {
  if (key_book_) return key_book_->find(key_name);
  for (const auto& key : config_.current().auth.keys)
    if (key.name == key_name) return &key;
  return nullptr;
}

bool CallAccounting::over_budget(const std::string& key_name) const {
  const config::KeyConfig* key = find_key(key_name);
  if (!key || (!key->budget_tokens && !key->budget_usd)) return false;
  std::int64_t tokens = ledger_.tokens_used(key_name);
  double usd = ledger_.usd_used(key_name);
  if (cluster_)
    if (auto shared = cluster_->shared_totals(key_name)) {
      tokens = std::max(tokens, shared->tokens);
      usd = std::max(usd, shared->usd);
    }
  if (key->budget_tokens && tokens >= *key->budget_tokens) return true;
  if (key->budget_usd && usd >= *key->budget_usd) return true;
  return false;
}

std::optional<usage::Reservation> CallAccounting::reserve_response(const std::string& key_name,
                                                                   const std::string& model,
                                                                   std::string* why) {
  const config::KeyConfig* key = find_key(key_name);
  if (!key || (!key->budget_tokens && !key->budget_usd)) return usage::Reservation{};
  usage::Spend spent{ledger_.tokens_used(key_name), ledger_.usd_used(key_name)};
  if (cluster_)
    if (auto shared = cluster_->shared_totals(key_name)) {
      spent.tokens = std::max(spent.tokens, shared->tokens);
      spent.usd = std::max(spent.usd, shared->usd);
    }
  usage::Held held = book_->held(key_name);
  if (cluster_) {
    usage::Held others = cluster_->others_reservations(key_name);
    usage::add_to(held.tokens, others.tokens);
    usage::add_to(held.usd, others.usd);
    held.count += others.count;
  }
  const config::ModelConfig* model_config = config_.current().find_model(model);
  std::optional<double> price;
  if (model_config && model_config->pricing)
    price = usage::fallback_per_million(*model_config->pricing);
  usage::TurnEstimate estimate =
      book_->estimate(key_name, model_config ? model_config->max_turn_tokens : std::nullopt, price);
  usage::Budgets budgets{key->budget_tokens, key->budget_usd};
  switch (usage::admit_response(budgets, spent, held, estimate)) {
    case usage::Admission::kFits:
    case usage::Admission::kLastOne:
      break;
    case usage::Admission::kRefused: {
      bool over = (budgets.tokens && spent.tokens >= *budgets.tokens) ||
                  (budgets.usd && spent.usd >= *budgets.usd);
      if (why)
        *why = over ? "the key '" + key_name + "' is over its budget (budget_tokens or budget_usd)"
                    : "the key '" + key_name +
                          "' is within one turn of its budget and already has " +
                          std::to_string(held.count) +
                          " response(s) in progress: retry when it is done";
      metrics_.add(metrics::kBudgetRefusalsTotal, {key_name});
      return std::nullopt;
    }
  }
  std::function<void()> on_release;
  if (cluster_) {
    std::string id = "res_" + std::to_string(++reservation_ids_);
    cluster_->add_reservation(key_name, id, estimate.tokens, estimate.usd);
    on_release = [weak = cluster_->weak_from_this(), id] {
      if (auto cluster = weak.lock()) cluster->remove_reservation(id);
    };
  }
  return book_->hold(key_name, estimate, std::move(on_release));
}

void CallAccounting::OnCallAnswered(const calls::Call& call) {
  const auto& id = call.identity();
  metrics_.observe(metrics::kCallSetupSeconds, {id.model}, call.setup_ms() / 1000.0);
  if (call.upstream_answer_ms() >= 0)
    metrics_.observe(metrics::kUpstreamRequestSeconds, {id.worker_name},
                     call.upstream_answer_ms() / 1000.0);
}

void CallAccounting::OnCallSetupFailed(const calls::Call& call,
                                       const calls::SetupFailure& failure) {
  metrics_.add(metrics::kCallsTotal, {call.identity().model, failure_outcome(failure.kind)});
  if (console_)
    console_->note_error("call", failure_outcome(failure.kind), failure.message, call.id(),
                         call.identity().key_name);
  count_dtls_failure(call);
  if (tracer_) tracer_->on_call_setup_failed(call, failure_outcome(failure.kind), failure.message);
}

void CallAccounting::count_dtls_failure(const calls::Call& call) {
  if (call.dtls_failed_leg().empty()) return;
  metrics_.add(metrics::kDtlsFailuresTotal, {call.dtls_failed_leg(), call.dtls_failure_reason()});
  // The usage log keeps the call's end too (SPEC "Media trust"): a record of kind "call" with no
  // tokens, the reason as its status and the leg.
  const auto& id = call.identity();
  usage::UsageRecord record;
  record.kind = "call";
  record.call_id = id.call_id;
  record.transport = "webrtc";
  record.key_name = id.key_name;
  record.model = id.model;
  record.worker = id.worker_name;
  record.status = call.dtls_failure_reason();
  record.leg = call.dtls_failed_leg();
  if (!ledger_.record(record)) metrics_.add(metrics::kUsageLogErrorsTotal);
}

void CallAccounting::OnCallEnded(const calls::Call& call) {
  count_dtls_failure(call);
  const auto& id = call.identity();
  metrics_.add(metrics::kCallsTotal, {id.model, call.outcome()});
  if (console_ && call.outcome() != "completed")
    console_->note_error("call", call.outcome(), call.end_reason(), id.call_id, id.key_name);
  if (!call.timed_out_leg().empty())
    metrics_.add(metrics::kPeerTimeoutsTotal, {call.timed_out_leg()});
  metrics_.add(metrics::kRtpPacketsTotal, {"client"},
               static_cast<double>(call.audio_packets_from_client()));
  metrics_.add(metrics::kRtpPacketsTotal, {"upstream"},
               static_cast<double>(call.audio_packets_from_upstream()));
  metrics_.add(metrics::kRtpBytesTotal, {"client"},
               static_cast<double>(call.audio_bytes_from_client()));
  metrics_.add(metrics::kRtpBytesTotal, {"upstream"},
               static_cast<double>(call.audio_bytes_from_upstream()));
  metrics_.add(metrics::kRtpPacketsLostTotal, {"client"},
               static_cast<double>(std::max<gint64>(0, call.packets_lost_on_client_leg())));
  metrics_.add(metrics::kRtpPacketsLostTotal, {"upstream"},
               static_cast<double>(std::max<gint64>(0, call.packets_lost_on_upstream_leg())));
  count_events(call.events_from_client(), call.events_from_upstream());
  if (tracer_) tracer_->on_call_ended(call);
}

void CallAccounting::count_events(std::uint64_t from_client, std::uint64_t from_upstream) {
  metrics_.add(metrics::kEventsTotal, {"client_to_upstream"}, static_cast<double>(from_client));
  metrics_.add(metrics::kEventsTotal, {"upstream_to_client"}, static_cast<double>(from_upstream));
}

void CallAccounting::OnSessionEnded(const relay::WebSocketSession& session) {
  metrics_.add(metrics::kWebsocketSessionsTotal, {session.identity().model, session.outcome()});
  if (console_ && session.outcome() != "completed")
    console_->note_error("session", session.outcome(),
                         "close code " + std::to_string(session.close_code()), session.id(),
                         session.identity().key_name);
  count_events(session.events_from_client(), session.events_from_upstream());
  if (tracer_) tracer_->on_session_ended(session);
}

void CallAccounting::OnRelayTurn(const usage::UsageRecord& record) {
  // Already priced, once, by the relay (every turn, cut short or not, from the usage it
  // reported): the log, ledger, cluster counters, metrics and budgets all take that cost.
  if (!ledger_.record(record)) metrics_.add(metrics::kUsageLogErrorsTotal);
  if (tracer_) tracer_->on_turn(record);
  if (console_) console_->on_turn(record);
  if (cluster_) cluster_->add_usage(record.key_name, record.billable_tokens(), record.cost_usd);
  if (record.kind == "response")
    book_->note_turn(record.key_name, record.billable_tokens(), record.cost_usd);
  if (record.usage_clamped)
    metrics_.add(metrics::kUsageInvalidTotal, {record.key_name, record.model});
  // rtgw_tokens_total: one series per token field of the record (the kind label is the field).
  auto add = [&](const char* kind, std::int64_t n) {
    metrics_.add(metrics::kTokensTotal, {record.key_name, record.model, kind},
                 static_cast<double>(n));
  };
  // One series per row of the token field table that names a kind (rtevents/usage_fields.h).
  for (const auto& f : rtevents::kTokenFields)
    if (f.metric_kind) add(f.metric_kind, rtevents::count_of(record, f));
  metrics_.add(metrics::kTurnsTotal, {record.key_name, record.model, record.kind});
  if (record.kind == "transcription")
    metrics_.add(metrics::kTranscriptionSecondsTotal, {record.key_name, record.model},
                 record.transcription_seconds);
  if (record.cost_usd)
    metrics_.add(metrics::kSpendUsdTotal, {record.key_name, record.model}, *record.cost_usd);
  if (record.first_token_latency_ms >= 0)
    metrics_.observe(metrics::kFirstTokenSeconds, {record.model},
                     record.first_token_latency_ms / 1000.0);
  enforce_budget(record.key_name);
}

void CallAccounting::enforce_budget(const std::string& key_name) {
  // Budgets: every live call and session of the key blocks response.create from now on; with
  // end_calls_over_budget they are also told (the insufficient_quota error event) and ended.
  const config::KeyConfig* key = find_key(key_name);
  const bool periodic = key && key->budget_duration_seconds;
  if (!over_budget(key_name)) {
    // A new period: what the last one flagged goes through again.
    if (!periodic) return;
    period_timers_.erase(key_name);
    calls_.for_each([&](calls::Call& c) {
      if (c.identity().key_name == key_name) c.set_budget_exceeded(false);
    });
    sessions_.for_each([&](relay::WebSocketSession& s) {
      if (s.identity().key_name == key_name) s.set_budget_exceeded(false);
    });
    return;
  }
  if (periodic && !period_timers_.count(key_name)) {
    // Checked again just after the period ends (its spend then counts no more).
    const std::int64_t seconds = *key->budget_duration_seconds;
    const double now = usage::unix_now();
    const double end = static_cast<double>(usage::period_start(now, seconds) + seconds);
    auto delay_ms = static_cast<guint>(std::min<double>((end - now) * 1000 + 50, 86400000.0));
    period_timers_[key_name] = run_after_ms(delay_ms, [this, key_name] {
      // The source ends itself when this returns; the closure (and key_name) lives until then.
      if (auto it = period_timers_.find(key_name); it != period_timers_.end()) {
        it->second.forget();
        period_timers_.erase(it);
      }
      enforce_budget(key_name);
    });
  }
  const bool end_them = key && key->end_calls_over_budget;
  const std::string message = "the key '" + key_name +
                              "' is over its budget (budget_tokens or budget_usd): the call is "
                              "ended (end_calls_over_budget)";
  std::vector<calls::Call*> calls_to_end;
  calls_.for_each([&](calls::Call& c) {
    if (c.identity().key_name != key_name) return;
    c.set_budget_exceeded(true);
    if (end_them) calls_to_end.push_back(&c);
  });
  std::vector<relay::WebSocketSession*> sessions_to_end;
  sessions_.for_each([&](relay::WebSocketSession& s) {
    if (s.identity().key_name != key_name) return;
    s.set_budget_exceeded(true);
    if (end_them) sessions_to_end.push_back(&s);
  });
  // Outside the walks: ending may change the registries.
  for (calls::Call* c : calls_to_end) c->end_over_budget(message);
  for (relay::WebSocketSession* s : sessions_to_end) s->end_over_budget(message);
}

int CallAccounting::end_key(const std::string& key_name, const std::string& code,
                            const std::string& message) {
  int live = 0;
  calls_.for_each([&](const calls::Call& c) { live += c.identity().key_name == key_name; });
  sessions_.for_each(
      [&](const relay::WebSocketSession& s) { live += s.identity().key_name == key_name; });
  if (!config_.current().auth.revoke_ends_calls) {
    if (live)
      g_message(
          "key '%s' %s: its %d live call(s) and session(s) run on (auth.revoke_ends_calls "
          "is false)",
          key_name.c_str(), code.c_str(), live);
    return 0;
  }
  int ended = calls_.end_key(key_name, code, message);
  ended += sessions_.end_key(key_name, code, message);
  if (ended)
    g_message("key '%s' %s: ending its %d live call(s) and session(s)", key_name.c_str(),
              code.c_str(), ended);
  return ended;
}

void CallAccounting::OnRelayDecision(const events::PolicyDecision& decision) {
  if (console_ && decision.action == "block")
    console_->note_error("policy", decision.reason, decision.event_type + ": " + decision.message);
  if (decision.action == "block")
    metrics_.add(metrics::kEventsBlockedTotal, {decision.rule, decision.reason});
  else
    metrics_.add(metrics::kEventsFilteredTotal, {decision.rule});
}

}  // namespace rtgw::app
