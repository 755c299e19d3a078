// SPDX-License-Identifier: MIT
#include "workers/worker_lease.h"

#include <glib.h>

#include <utility>

namespace rtgw::workers {

WorkerLease WorkerLease::acquire(std::shared_ptr<UpstreamSignaller> signaller) {
  if (!signaller) return {};
  bool probe = false;
  if (!signaller->try_admit(&probe)) return {};
  return WorkerLease(std::move(signaller), probe);
}

WorkerLease::WorkerLease(WorkerLease&& other) noexcept
    : signaller_(std::move(other.signaller_)),
      probe_(std::exchange(other.probe_, false)),
      settled_(std::exchange(other.settled_, false)),
      attachment_(std::move(other.attachment_)) {}

WorkerLease& WorkerLease::operator=(WorkerLease&& other) noexcept {
  if (this != &other) {
    reset();
    signaller_ = std::move(other.signaller_);
    probe_ = std::exchange(other.probe_, false);
    settled_ = std::exchange(other.settled_, false);
    attachment_ = std::move(other.attachment_);
  }
  return *this;
}

WorkerLease::~WorkerLease() { reset(); }

void WorkerLease::settle(SetupOutcome outcome) {
  if (!signaller_ || settled_) return;
  settled_ = true;
  signaller_->settle(outcome, probe_);
  probe_ = false;
}

void WorkerLease::settle(const UpstreamFailure& failure) {
  settle(is_worker_failure(failure) || is_auth_failure(failure) ? SetupOutcome::kWorkerFailure
                                                                : SetupOutcome::kNeutral);
}

void WorkerLease::reset() {
  attachment_.reset();
  if (!signaller_) return;
  settle(SetupOutcome::kNeutral);
  signaller_->release();
  signaller_.reset();
  settled_ = false;
}

bool fail_over(const UpstreamFailure& failure, WorkerLease& lease, std::vector<std::string>& tried,
               const FailoverFn& next_worker, const std::string& log_id) {
  lease.settle(failure);
  if (!is_worker_failure(failure)) return false;
  tried.push_back(lease->name());
  WorkerLease next = next_worker ? next_worker(tried) : WorkerLease();
  if (!next) return false;
  g_message("[%s] worker %s failed (%s): trying %s", log_id.c_str(), lease->name().c_str(),
            failure.message.c_str(), next->name().c_str());
  next.attach(lease.detach());
  lease = std::move(next);
  return true;
}

}  // namespace rtgw::workers
