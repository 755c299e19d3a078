// SPDX-License-Identifier: MIT
#include "workers/worker_pool.h"

namespace rtgw::workers {

WorkerPool::WorkerPool(const config::Config& config) {
  for (const auto& model : config.models) {
    ModelWorkers& mw = models_[model.name];
    for (const auto& worker : model.workers) {
      if (worker.provider == "echo")
        mw.builtin_providers.push_back(worker.provider);
      else
        mw.remote.push_back(std::make_shared<Worker>(worker));
    }
  }
}

void WorkerPool::set_builtin(const std::string& provider,
                             std::shared_ptr<UpstreamSignaller> signaller) {
  builtins_[provider] = std::move(signaller);
}

const std::vector<std::shared_ptr<Worker>>& WorkerPool::workers_of(const std::string& model) const {
  static const std::vector<std::shared_ptr<Worker>> none;
  auto it = models_.find(model);
  return it == models_.end() ? none : it->second.remote;
}

std::shared_ptr<UpstreamSignaller> WorkerPool::pick(const std::string& model) {
  auto it = models_.find(model);
  if (it == models_.end()) return nullptr;
  std::shared_ptr<Worker> best;
  for (const auto& w : it->second.remote) {
    if (w->config().max_calls > 0 && w->live_calls() >= w->config().max_calls) continue;
    if (!best || w->live_calls() < best->live_calls()) best = w;
  }
  if (best) return best;
  for (const auto& provider : it->second.builtin_providers)
    if (auto b = builtins_.find(provider); b != builtins_.end()) return b->second;
  return nullptr;
}

}  // namespace rtgw::workers
