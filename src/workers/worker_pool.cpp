// SPDX-License-Identifier: MIT
#include "workers/worker_pool.h"

#include <algorithm>

#include "workers/providers/registry.h"

namespace rtgw::workers {

WorkerPool::WorkerPool(const config::Config& config) {
  for (const auto& model : config.models) {
    ModelWorkers& mw = models_[model.name];
    for (const auto& worker : model.workers) {
      // An in-process dialect (echo) is served by the signaller registered for its name.
      if (!providers::get(worker.provider).remote())
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

std::vector<std::shared_ptr<Worker>> WorkerPool::apply(const config::Config& config) {
  std::map<std::string, ModelWorkers> next;
  for (const auto& model : config.models) {
    ModelWorkers& mw = next[model.name];
    std::vector<std::shared_ptr<Worker>>* before = nullptr;
    if (auto it = models_.find(model.name); it != models_.end()) before = &it->second.remote;
    for (const auto& worker : model.workers) {
      if (!providers::get(worker.provider).remote()) {
        mw.builtin_providers.push_back(worker.provider);
        continue;
      }
      std::shared_ptr<Worker> kept;
      if (before)
        for (auto& w : *before)
          if (w && w->config() == worker) {
            kept = std::move(w);  // taken: a duplicate entry cannot claim it twice
            break;
          }
      if (!kept) {
        kept = std::make_shared<Worker>(worker);
        if (checking_) kept->start_health_checks();
      }
      mw.remote.push_back(std::move(kept));
    }
  }
  // What was not taken above is removed: no new call, no more health checks; its live calls
  // and sessions hold it (their leases) until they end.
  std::vector<std::shared_ptr<Worker>> draining;
  for (auto& [name, mw] : models_)
    for (auto& w : mw.remote) {
      if (!w) continue;
      w->retire();
      if (w->live_calls() > 0) draining.push_back(w);
    }
  models_ = std::move(next);
  return draining;
}

void WorkerPool::start_health_checks() {
  checking_ = true;
  for (auto& [name, mw] : models_)
    for (auto& w : mw.remote) w->start_health_checks();
}

bool WorkerPool::health_checked() const {
  for (const auto& [name, mw] : models_)
    for (const auto& w : mw.remote)
      if (!w->health_answered()) return false;
  return true;
}

bool WorkerPool::any_available() const {
  for (const auto& [name, mw] : models_) {
    for (const auto& provider : mw.builtin_providers)
      if (builtins_.count(provider)) return true;
    for (const auto& w : mw.remote)
      if (w->available()) return true;
  }
  return false;
}

std::vector<std::shared_ptr<Worker>> WorkerPool::all_remote() const {
  std::vector<std::shared_ptr<Worker>> out;
  for (const auto& [name, mw] : models_) out.insert(out.end(), mw.remote.begin(), mw.remote.end());
  return out;
}

WorkerLease WorkerPool::pick(const std::string& model, const std::vector<std::string>& tried) {
  auto it = models_.find(model);
  if (it == models_.end()) return {};
  std::vector<std::shared_ptr<Worker>> candidates;
  for (const auto& w : it->second.remote) {
    if (std::find(tried.begin(), tried.end(), w->name()) != tried.end()) continue;
    if (!w->has_capacity() || !w->available()) continue;
    candidates.push_back(w);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto& a, const auto& b) { return a->live_calls() < b->live_calls(); });
  for (const auto& w : candidates)
    if (auto lease = WorkerLease::acquire(w)) return lease;
  if (!tried.empty()) return {};
  for (const auto& provider : it->second.builtin_providers)
    if (auto b = builtins_.find(provider); b != builtins_.end())
      if (auto lease = WorkerLease::acquire(b->second)) return lease;
  return {};
}

}  // namespace rtgw::workers
