// SPDX-License-Identifier: MIT
// Admission: may this call or session start now, and on which worker?
//
// Owns: every rule that admits or refuses a new WebRTC call, WebSocket session or translation
// session, each a function of its own, run by `admit` in this order:
//   1. shutting_down_gate   503 shutting_down once the gateway drains;
//   2. budget_gate          429 insufficient_quota for a key over budget_tokens or budget_usd;
//   3. the count store      the cluster's counts (cluster mode), else nothing to take;
//   4. budget_gate again    the store's answer brought the cluster's totals up to date;
//   5. setup_gate           calls set up but not connected: max_setups_per_key, max_setups
//                           (kinds with a set-up phase only: WebRTC calls);
//   6. capacity_gate        limits.max_calls, then the key's max_concurrent_calls, over calls
//                           plus sessions of every local registry;
//   7. pick_worker          a lease on a worker of the model with room (the store's slot rides
//                           on it), and `failover`, which picks the next one.
// The answer is a `Ticket` (what the call or session holds and needs) or a `Refusal` (reason and
// the client's message). HTTP maps a refusal to its error (http/admit.cpp) and knows no rule.
// A new rule: one function here, one line in `admit`/`decide`, one Reason, its HTTP mapping
// and its unit test (tests/unit/test_admission.cpp).
//
// Local counts come through `LocalCounts` (admission/local_counts.h), the cluster's through a
// `CountStore` (admission/count_store.h: the local default answers at once).
//
// Threads: main loop only. `done` runs on the main loop exactly once unless the `Pending` is
// dropped first: before `admit` returns when nothing waits for a store (no cluster), later when
// the store answers. Destroying the Admission cancels what is still pending.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "admission/count_store.h"
#include "admission/local_counts.h"
#include "common/main_thread.h"
#include "config/config.h"
#include "config/snapshots.h"
#include "workers/worker_lease.h"

namespace rtgw::admission {

// What asks to start. The translation kinds are the translation routes' (a WebRTC call or a
// WebSocket session, SPEC "Translation sessions").
enum class Kind { kCall, kSession, kTranslationCall, kTranslationSession };
// A kind that is a WebRTC call: it has a set-up phase (setup_gate) and an owner in the cluster.
bool is_webrtc(Kind kind);

struct Ask {
  Kind kind = Kind::kCall;
  std::string id;  // the call's or session's id (its lease in the cluster's counts)
  std::string key_name;
  int key_limit = 0;  // the key's max_concurrent_calls (0: none)
  std::string model;  // the configured model's name (already resolved and allowed)
};

enum class Reason {
  kShuttingDown,   // 503 shutting_down
  kOverBudget,     // 429 insufficient_quota
  kGlobalFull,     // 503 no_capacity: limits.max_calls (here or over the cluster)
  kKeyFull,        // 429 too_many_calls: the key's max_concurrent_calls
  kKeySetupsFull,  // 429 too_many_calls: limits.max_setups_per_key
  kSetupsFull,     // 503 no_capacity: limits.max_setups
  kNoWorker,       // 503 no_capacity: no worker of the model has room
};

struct Refusal {
  Reason reason;
  std::string detail;  // the client's message, exactly as the SPEC's error gives it
};

// What an admitted call or session holds and starts with.
struct Ticket {
  workers::WorkerLease lease;  // the worker, with the store's slot attached (none locally)
  bool over_budget = false;    // the key's budget state when admitted
  std::optional<config::Pricing> pricing;  // the model's table (none: cost_usd null)
  workers::FailoverFn failover;            // the model's next worker not tried yet
};

using Answer = std::variant<Ticket, Refusal>;
using Done = std::function<void(Answer)>;

// Picks a worker of a model (workers/worker_pool.h in the gateway, a fake in tests).
class WorkerSource {
 public:
  virtual ~WorkerSource() = default;
  // A lease on a worker of `model` not in `tried` with room now; empty: none.
  virtual workers::WorkerLease pick(const std::string& model,
                                    const std::vector<std::string>& tried) = 0;
};

// Is the key over a budget (tokens or USD, this instance's and the cluster's totals)?
using BudgetCheck = std::function<bool(const std::string& key_name)>;

// An admission in flight. Dropping it (the client left) cancels it: `done` never runs, and a
// slot the store gives later is given back at once; no worker is picked.
class Pending {
 public:
  Pending() = default;
  Pending(Pending&&) noexcept = default;
  Pending& operator=(Pending&& other) noexcept;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  ~Pending() { cancel(); }
  void cancel();

 private:
  friend class Admission;
  struct State;
  explicit Pending(std::weak_ptr<State> state) : state_(std::move(state)) {}
  std::weak_ptr<State> state_;
};

class Admission {
 public:
  // `counts`: every local registry (calls, sessions, ...); all outlive this.
  Admission(config::ConfigView config, WorkerSource& workers, CountStore& store,
            std::vector<const LocalCounts*> counts, BudgetCheck over_budget);

  [[nodiscard]] Pending admit(Ask ask, Done done);

  // New calls and sessions are refused from now on.
  void begin_shutdown() { shutting_down_ = true; }
  bool shutting_down() const { return shutting_down_; }

  // The rules (see the header comment for their order); nullopt: passes. Public so HTTP can
  // refuse early, before it parses a body (shutting down, budget), and mint routes can apply
  // the budget (a token is a call or session to come).
  std::optional<Refusal> shutting_down_gate() const;
  std::optional<Refusal> budget_gate(const std::string& key_name) const;
  std::optional<Refusal> setup_gate(const Ask& ask) const;
  std::optional<Refusal> capacity_gate(const Ask& ask) const;
  // The store's verdict as a refusal (nullopt: admitted).
  static std::optional<Refusal> store_gate(StoreVerdict verdict, const Ask& ask);
  std::variant<workers::WorkerLease, Refusal> pick_worker(const std::string& model) const;
  workers::FailoverFn failover(const std::string& model) const;
  // The global limit the store counts: only a configured limits.max_calls is cluster-wide (one
  // sized from an instance's open-file limit is that instance's own, checked locally).
  int shared_global_limit() const;

 private:
  // Steps 4-7, once the store answered.
  Answer decide(const Ask& ask, StoreVerdict verdict,
                std::unique_ptr<workers::LeaseAttachment> slot) const;
  int sum(int (LocalCounts::*count)() const) const;
  int sum_for_key(int (LocalCounts::*count)(const std::string&) const,
                  const std::string& key) const;

  config::ConfigView config_;  // the current snapshot: a reload applies to the next ask
  WorkerSource& workers_;
  CountStore& store_;
  std::vector<const LocalCounts*> counts_;
  BudgetCheck over_budget_;
  bool shutting_down_ = false;
  // A store that answers after this is gone (shutdown) reaches nothing: its slot goes back.
  Lifetime lifetime_;
};

}  // namespace rtgw::admission
