// SPDX-License-Identifier: MIT
// What the gateway does with what calls report: usage records, budgets and metrics.
//
// Owns: turning call outcomes, metered turns and policy decisions into usage-log records,
// Prometheus counters and histograms, and budget flags on the key's live calls.
//
// Threads: main loop only.
#pragma once

#include "calls/call_registry.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "usage/usage_ledger.h"

namespace rtgw::app {

class CallAccounting : public calls::CallObserver {
 public:
  CallAccounting(const config::Config& config, usage::UsageLedger& ledger,
                 metrics::Registry& metrics, calls::CallRegistry& calls);

  // Is this key over its budget_tokens (false when it has none)?
  bool over_budget(const std::string& key_name) const;

  void OnCallAnswered(const calls::Call& call) override;
  void OnCallSetupFailed(const calls::Call& call, const calls::SetupFailure& failure) override;
  void OnCallEnded(const calls::Call& call) override;
  void OnCallTurn(const calls::Call& call, const usage::UsageRecord& record) override;
  void OnCallPolicyDecision(const calls::Call& call,
                            const calls::PolicyDecision& decision) override;

 private:
  const config::Config& config_;
  usage::UsageLedger& ledger_;
  metrics::Registry& metrics_;
  calls::CallRegistry& calls_;
};

}  // namespace rtgw::app
