// SPDX-License-Identifier: MIT
// A call's or session's hold on one worker, from the pick to its end.
//
// Owns: one load slot of the worker (its live-call count, which max_calls bounds) and, when the
// worker's breaker is half-open and this is the call let through, the probe slot. It is the
// only code that acquires or gives back either: `WorkerPool::pick` takes a lease, the set-up
// settles it once (`settle`: success closes the breaker, a worker failure counts against the
// worker and re-opens a half-open breaker, a client-side error or a cancel is neutral and hands
// the probe slot back), `fail_over` settles a failed lease and moves to a lease on the next
// worker, and destroying the lease gives the load slot back (an unsettled lease is settled
// neutral first). So no path, cancel included, can keep a worker out of rotation.
//
// Scale-out: the lease talks to its worker only through `UpstreamSignaller`'s protected
// admission interface (try_admit / settle / release). A cluster-wide implementation (e.g.
// Redis counts per worker, per key and global, with a TTL so a dead gateway's leases expire)
// overrides those three and keeps this type and every caller as they are. try_admit answers
// synchronously today; a remote store would either answer from a locally held share of the
// cluster's slots or turn `WorkerPool::pick` into a callback, with the lease unchanged.
//
// Threads: main loop only (the worker's counters and breaker are main-loop state).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "workers/upstream_signaller.h"

namespace rtgw::workers {

// Something a call or session holds for exactly as long as its worker lease, e.g. its lease in
// the cluster's counts (cluster/cluster.h). It follows the lease through a fail-over.
class LeaseAttachment {
 public:
  virtual ~LeaseAttachment() = default;
};

class WorkerLease {
 public:
  // An empty lease: no worker.
  WorkerLease() = default;
  // Takes a lease on `signaller` if it admits one more call now; an empty lease otherwise.
  static WorkerLease acquire(std::shared_ptr<UpstreamSignaller> signaller);

  WorkerLease(WorkerLease&& other) noexcept;
  WorkerLease& operator=(WorkerLease&& other) noexcept;
  WorkerLease(const WorkerLease&) = delete;
  WorkerLease& operator=(const WorkerLease&) = delete;
  // Settles neutral if still unsettled, then gives the load slot back.
  ~WorkerLease();

  explicit operator bool() const { return signaller_ != nullptr; }
  UpstreamSignaller* operator->() const { return signaller_.get(); }
  UpstreamSignaller& operator*() const { return *signaller_; }
  const std::shared_ptr<UpstreamSignaller>& signaller() const { return signaller_; }
  // This lease holds the worker's half-open probe slot (until settled).
  bool probe() const { return probe_; }
  bool settled() const { return settled_; }

  // The set-up's outcome; only the first call counts (later ones, and any on an empty lease,
  // are ignored).
  void settle(SetupOutcome outcome);
  // Settles with what `failure` means for the worker: a worker failure, or neutral.
  void settle(const UpstreamFailure& failure);
  // Gives everything back now (neutral if unsettled), the attachment included; the lease is
  // empty afterwards.
  void reset();
  // Attaches `attachment`, destroyed with the lease (or moved to the next by fail_over).
  void attach(std::unique_ptr<LeaseAttachment> attachment) { attachment_ = std::move(attachment); }
  std::unique_ptr<LeaseAttachment> detach() { return std::move(attachment_); }

 private:
  explicit WorkerLease(std::shared_ptr<UpstreamSignaller> signaller, bool probe)
      : signaller_(std::move(signaller)), probe_(probe) {}

  std::shared_ptr<UpstreamSignaller> signaller_;
  bool probe_ = false;
  bool settled_ = false;
  std::unique_ptr<LeaseAttachment> attachment_;
};

// A lease on the next worker of the model that has not been tried (empty: none left).
using FailoverFn = std::function<WorkerLease(const std::vector<std::string>& tried)>;

// After `failure` of the lease's worker during set-up (a call's offer or a session's socket):
// settles `lease` (a worker failure counts against the worker, a client error is neutral) and,
// for a worker failure, replaces it with a lease on the next worker. True when `lease` now
// holds that next worker; false when the failure stands (the request's fault, or none left),
// `lease` then still holding the settled worker until the call or session ends.
bool fail_over(const UpstreamFailure& failure, WorkerLease& lease, std::vector<std::string>& tried,
               const FailoverFn& next_worker, const std::string& log_id);

}  // namespace rtgw::workers
