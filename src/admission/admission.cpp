// SPDX-License-Identifier: MIT
#include "admission/admission.h"

#include <glib.h>

#include <algorithm>
#include <utility>

namespace rtgw::admission {

struct Pending::State {
  Done done;  // empty once answered or cancelled
};

Pending& Pending::operator=(Pending&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}

void Pending::cancel() {
  if (auto state = state_.lock()) state->done = nullptr;
  state_.reset();
}

bool is_webrtc(Kind kind) { return kind == Kind::kCall || kind == Kind::kTranslationCall; }

Admission::Admission(config::ConfigView config, WorkerSource& workers, CountStore& store,
                     std::vector<const LocalCounts*> counts, BudgetCheck over_budget)
    : config_(config),
      workers_(workers),
      store_(store),
      counts_(std::move(counts)),
      over_budget_(std::move(over_budget)) {}

Pending Admission::admit(Ask ask, Done done) {
  if (auto refused = shutting_down_gate()) {
    done(std::move(*refused));
    return {};
  }
  if (auto refused = budget_gate(ask.key_name)) {
    done(std::move(*refused));
    return {};
  }
  // The state lives as long as the store's answer can come; the caller's Pending only watches it.
  auto state = std::make_shared<Pending::State>();
  state->done = std::move(done);
  Pending pending{std::weak_ptr<Pending::State>(state)};
  StoreAsk store_ask{ask.id, ask.key_name, ask.key_limit, shared_global_limit(),
                     is_webrtc(ask.kind)};
  store_.take(store_ask, [this, alive = lifetime_.watch(), state, ask = std::move(ask)](
                             StoreVerdict verdict, std::unique_ptr<workers::LeaseAttachment> slot) {
    // Taken out first: the caller may drop its Pending from inside `done`.
    Done waiting = std::move(state->done);
    state->done = nullptr;
    // The client left (or the gateway is gone): `slot` goes now, and the shared count with it.
    if (!waiting || !alive) return;
    waiting(decide(ask, verdict, std::move(slot)));
  });
  return pending;
}

Answer Admission::decide(const Ask& ask, StoreVerdict verdict,
                         std::unique_ptr<workers::LeaseAttachment> slot) const {
  if (auto refused = store_gate(verdict, ask)) return std::move(*refused);
  if (auto refused = budget_gate(ask.key_name)) return std::move(*refused);
  if (auto refused = setup_gate(ask)) return std::move(*refused);
  if (auto refused = capacity_gate(ask)) return std::move(*refused);
  auto picked = pick_worker(ask.model);
  if (auto* refused = std::get_if<Refusal>(&picked)) return std::move(*refused);
  Ticket ticket;
  ticket.lease = std::move(std::get<workers::WorkerLease>(picked));
  ticket.lease.attach(std::move(slot));
  ticket.over_budget = over_budget_ && over_budget_(ask.key_name);
  if (const config::ModelConfig* model = config_.current().find_model(ask.model))
    ticket.pricing = model->pricing;
  ticket.failover = failover(ask.model);
  return ticket;
}

std::optional<Refusal> Admission::shutting_down_gate() const {
  if (!shutting_down_) return std::nullopt;
  return Refusal{Reason::kShuttingDown, "the gateway is shutting down"};
}

std::optional<Refusal> Admission::budget_gate(const std::string& key_name) const {
  if (!over_budget_ || !over_budget_(key_name)) return std::nullopt;
  // Clients get OpenAI's code (agents stop retrying on it); the operator's log keeps the reason.
  g_message("key '%s' refused: budget_exceeded (budget_tokens or budget_usd)", key_name.c_str());
  return Refusal{Reason::kOverBudget,
                 "the key '" + key_name +
                     "' is over its budget (budget_tokens or budget_usd): no new call, session "
                     "or token"};
}

std::optional<Refusal> Admission::store_gate(StoreVerdict verdict, const Ask& ask) {
  switch (verdict) {
    case StoreVerdict::kKeyFull:
      return Refusal{Reason::kKeyFull, "this key already has " + std::to_string(ask.key_limit) +
                                           " live calls and sessions"};
    case StoreVerdict::kGlobalFull:
      return Refusal{Reason::kGlobalFull, "the gateway is at its call capacity"};
    case StoreVerdict::kAdmitted:
      break;
  }
  return std::nullopt;
}

std::optional<Refusal> Admission::setup_gate(const Ask& ask) const {
  // A call set up but not connected holds everything a live one does (two webrtcbins, ~30-45
  // descriptors, ~20-35 threads) without its client ever doing ICE: bounded per key, then
  // overall (config/capacity.h sizes both from the open-file limit).
  if (!is_webrtc(ask.kind)) return std::nullopt;
  const auto& limits = config_.current().limits;
  if (limits.max_setups_per_key > 0 &&
      sum_for_key(&LocalCounts::setup_count_for_key, ask.key_name) >= limits.max_setups_per_key)
    return Refusal{Reason::kKeySetupsFull,
                   "this key already has " + std::to_string(limits.max_setups_per_key) +
                       " calls setting up (limits.max_setups_per_key): connect them first"};
  if (limits.max_setups > 0 && sum(&LocalCounts::setup_count) >= limits.max_setups)
    return Refusal{Reason::kSetupsFull, "the gateway has " + std::to_string(limits.max_setups) +
                                            " calls setting up (limits.max_setups)"};
  return std::nullopt;
}

std::optional<Refusal> Admission::capacity_gate(const Ask& ask) const {
  // WebRTC calls and WebSocket sessions share the gateway's and each key's capacity.
  const auto& limits = config_.current().limits;
  if (limits.max_calls > 0 && sum(&LocalCounts::live_count) >= limits.max_calls)
    return Refusal{Reason::kGlobalFull, "the gateway is at its call capacity"};
  if (ask.key_limit > 0 &&
      sum_for_key(&LocalCounts::live_count_for_key, ask.key_name) >= ask.key_limit)
    return Refusal{Reason::kKeyFull, "this key already has " + std::to_string(ask.key_limit) +
                                         " live calls and sessions"};
  return std::nullopt;
}

std::variant<workers::WorkerLease, Refusal> Admission::pick_worker(const std::string& model) const {
  auto lease = workers_.pick(model, {});
  if (!lease) return Refusal{Reason::kNoWorker, "no worker of '" + model + "' has capacity"};
  return lease;
}

workers::FailoverFn Admission::failover(const std::string& model) const {
  return [&workers = workers_, model](const std::vector<std::string>& tried) {
    return workers.pick(model, tried);
  };
}

int Admission::shared_global_limit() const {
  const auto& limits = config_.current().limits;
  const bool sized =
      std::find(limits.sized.begin(), limits.sized.end(), "max_calls") != limits.sized.end();
  return sized ? 0 : limits.max_calls;
}

int Admission::sum(int (LocalCounts::*count)() const) const {
  int total = 0;
  for (const LocalCounts* c : counts_) total += (c->*count)();
  return total;
}

int Admission::sum_for_key(int (LocalCounts::*count)(const std::string&) const,
                           const std::string& key) const {
  int total = 0;
  for (const LocalCounts* c : counts_) total += (c->*count)(key);
  return total;
}

}  // namespace rtgw::admission
