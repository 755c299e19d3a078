// SPDX-License-Identifier: MIT
// The gateway's worker pool as admission's WorkerSource (admission/admission.h).
//
// Threads: main loop only (the pool's state is main-loop state).
#pragma once

#include "admission/admission.h"
#include "workers/worker_pool.h"

namespace rtgw::admission {

class PoolWorkerSource : public WorkerSource {
 public:
  explicit PoolWorkerSource(workers::WorkerPool& pool) : pool_(pool) {}
  workers::WorkerLease pick(const std::string& model,
                            const std::vector<std::string>& tried) override {
    return pool_.pick(model, tried);
  }

 private:
  workers::WorkerPool& pool_;
};

}  // namespace rtgw::admission
