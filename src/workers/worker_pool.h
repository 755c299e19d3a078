// SPDX-License-Identifier: MIT
// The workers of every model, built once at start-up.
//
// Owns: one `Worker` (its own SoupSession) per configured remote worker, grouped by model, and
// the choice of a worker for a new call (least active calls among those under their max_calls).
//
// Threads: main loop only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "workers/worker.h"

namespace rtgw::workers {

class WorkerPool {
 public:
  explicit WorkerPool(const config::Config& config);

  // Picks a worker for `model`; nullptr when none has capacity (or none can be reached).
  std::shared_ptr<UpstreamSignaller> pick(const std::string& model);
  // Registers an in-process signaller (the built-in echo worker) for a provider kind.
  void set_builtin(const std::string& provider, std::shared_ptr<UpstreamSignaller> signaller);

  const std::vector<std::shared_ptr<Worker>>& workers_of(const std::string& model) const;

 private:
  struct ModelWorkers {
    std::vector<std::shared_ptr<Worker>> remote;
    std::vector<std::string> builtin_providers;
  };
  std::map<std::string, ModelWorkers> models_;
  std::map<std::string, std::shared_ptr<UpstreamSignaller>> builtins_;
};

}  // namespace rtgw::workers
