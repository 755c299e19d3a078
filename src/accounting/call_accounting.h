// SPDX-License-Identifier: MIT
// What the gateway does with what calls and WebSocket sessions report: usage records, budgets and
// metrics.
//
// Owns: turning call and session outcomes, metered turns and policy decisions into usage-log
// records, Prometheus counters and histograms, and budget flags on the key's live calls and
// sessions, and the budget reservations a response.create takes before its turn is metered
// (usage/budget_reservations.h; in cluster mode also counted in Redis). It prices nothing: a turn
// arrives priced by the call's or session's EventRelay (events/event_relay.h), and its cost_usd
// goes to the log, ledger, spend metric and budgets as is. Turns and decisions come straight from
// each relay (the one report path, events/relay_observer.h); call and session outcomes from the
// registries' observers. Metrics are the catalogue's families (metrics/catalogue.h).
//
// Threads: main loop only.
#pragma once

#include "auth/key_book.h"
#include "calls/call_registry.h"
#include "cluster/cluster.h"
#include "config/config.h"
#include "config/snapshots.h"
#include "console/console_feed.h"
#include "events/relay_observer.h"
#include "metrics/metrics.h"
#include "sessions/session_registry.h"
#include "telemetry/tracer.h"
#include "usage/budget_reservations.h"
#include "usage/usage_ledger.h"

namespace rtgw::app {

class CallAccounting : public calls::CallObserver,
                       public relay::SessionObserver,
                       public events::RelayObserver {
 public:
  CallAccounting(config::ConfigView config, usage::UsageLedger& ledger, metrics::Registry& metrics,
                 calls::CallRegistry& calls, relay::SessionRegistry& sessions);

  // Is this key over its budget_tokens or its budget_usd (false when it has neither)? In cluster
  // mode each count is the larger of the cluster's shared total (while Redis is reachable) and
  // this instance's ledger.
  bool over_budget(const std::string& key_name) const;
  // A response.create of the key on `model` asks to spend: a reservation of one turn's estimate,
  // held until its turn is metered (usage/budget_reservations.h), or nullopt (`*why` says why):
  // the client gets insufficient_quota. A key without a budget always gets an empty one.
  std::optional<usage::Reservation> reserve_response(const std::string& key_name,
                                                     const std::string& model, std::string* why);
  // Cluster mode: metered turns also go to the shared counters.
  void set_cluster(cluster::Cluster* cluster) { cluster_ = cluster; }
  // Keys by name, config and virtual (auth/key_book.h); unset: the config's keys only.
  void set_key_book(const auth::KeyBook* book) { key_book_ = book; }
  // telemetry.otlp_endpoint set: every end and turn also goes to the tracer (telemetry/).
  void set_tracer(telemetry::Tracer* tracer) { tracer_ = tracer; }
  // The operator console's feed: priced turns, failed calls and sessions, blocked events.
  void set_console_feed(console::ConsoleFeed* feed) { console_ = feed; }
  // Flags the key's live calls and sessions if it is over budget now (after each turn, and when
  // the cluster's totals change). A key with a budget period (budget_duration) that is no longer
  // over (a new period) has its calls' and sessions' flags cleared: response.create goes through
  // again; while flagged, a timer at its period's end checks it again.
  void enforce_budget(const std::string& key_name);
  // The key was revoked, deleted or expired (SPEC "Run-time keys"): each live call and WebSocket
  // session of `key_name` gets an `error` event with `code` (e.g. "invalid_api_key") and
  // `message`, then is hung up (outcome and end reason key_revoked). With
  // auth.revoke_ends_calls false they run on, and that is logged. Returns how many were ended.
  int end_key(const std::string& key_name, const std::string& code, const std::string& message);

  void OnCallAnswered(const calls::Call& call) override;
  void OnCallSetupFailed(const calls::Call& call, const calls::SetupFailure& failure) override;
  void OnCallEnded(const calls::Call& call) override;

  void OnSessionEnded(const relay::WebSocketSession& session) override;

  // events::RelayObserver: every call's and session's relay reports here, the one report path.
  void OnRelayTurn(const usage::UsageRecord& record) override;
  void OnRelayDecision(const events::PolicyDecision& decision) override;

 private:
  const config::KeyConfig* find_key(const std::string& key_name) const;
  // A call ended by a failed DTLS verification: rtgw_dtls_failures_total and its usage record.
  void count_dtls_failure(const calls::Call& call);
  void count_events(std::uint64_t from_client, std::uint64_t from_upstream);

  config::ConfigView config_;  // keys and models of the current snapshot
  usage::UsageLedger& ledger_;
  metrics::Registry& metrics_;
  calls::CallRegistry& calls_;
  relay::SessionRegistry& sessions_;
  cluster::Cluster* cluster_ = nullptr;
  const auth::KeyBook* key_book_ = nullptr;
  telemetry::Tracer* tracer_ = nullptr;
  console::ConsoleFeed* console_ = nullptr;
  std::shared_ptr<usage::ReservationBook> book_ = std::make_shared<usage::ReservationBook>();
  std::uint64_t reservation_ids_ = 0;
  // Keys flagged over budget that have a budget period: a check at the period's end.
  std::map<std::string, SourceGuard> period_timers_;
};

}  // namespace rtgw::app
