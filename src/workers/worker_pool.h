// SPDX-License-Identifier: MIT
// The workers of every model, built at start-up and changed by a reload.
//
// Owns: one `Worker` (its own SoupSession) per configured remote worker, grouped by model, and
// the choice of a worker for a new call (least active calls among those under their max_calls),
// handed out as a `WorkerLease`. A reload (apply) keeps each unchanged worker as it is (health,
// breaker, leases, SoupSession), starts the new ones and drops the removed ones: they take no
// new call, stop their health checks, and are freed when the last lease on them (a live call or
// session) ends.
//
// Threads: main loop only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "workers/worker.h"
#include "workers/worker_lease.h"

namespace rtgw::workers {

class WorkerPool {
 public:
  explicit WorkerPool(const config::Config& config);

  // A lease on a worker of `model` among the available ones not in `tried` (least live calls
  // first, under max_calls; the built-in worker when no remote one is configured and nothing
  // was tried); empty when none is left.
  WorkerLease pick(const std::string& model, const std::vector<std::string>& tried = {});
  // Starts every remote worker's health checks (main loop running).
  void start_health_checks();
  // A reload: the workers of `config` from now on (see above). Returns the workers it dropped
  // that still have live calls or sessions.
  std::vector<std::shared_ptr<Worker>> apply(const config::Config& config);
  // At least one worker (or a built-in) could take a call now.
  bool any_available() const;
  // Every remote worker's first health check has answered (the service's readiness waits).
  bool health_checked() const;
  std::vector<std::shared_ptr<Worker>> all_remote() const;
  // Registers an in-process signaller (the built-in echo worker) for a provider kind.
  void set_builtin(const std::string& provider, std::shared_ptr<UpstreamSignaller> signaller);

 private:
  struct ModelWorkers {
    std::vector<std::shared_ptr<Worker>> remote;
    std::vector<std::string> builtin_providers;
  };
  std::map<std::string, ModelWorkers> models_;
  std::map<std::string, std::shared_ptr<UpstreamSignaller>> builtins_;
  bool checking_ = false;  // start_health_checks() ran: a worker added by a reload starts its own
};

}  // namespace rtgw::workers
