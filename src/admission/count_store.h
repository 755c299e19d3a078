// SPDX-License-Identifier: MIT
// Where admission takes a slot in counts shared beyond this instance.
//
// Owns: the interface (`CountStore`) and its local default (`LocalCountStore`: nothing shared,
// every ask is let through at once with no attachment; this instance's own counts decide, in
// admission/admission.h). Cluster mode plugs in `ClusterCountStore` (admission/cluster_store.h),
// so admission has no "if cluster" branch.
//
// Threads: main loop only. `take` answers on the main loop, at once (local) or later (a store
// behind the network); the answer's attachment is held for the call's or session's life.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "workers/worker_lease.h"

namespace rtgw::admission {

struct StoreAsk {
  std::string id;  // the call's or session's id
  std::string key_name;
  int key_limit = 0;     // the key's max_concurrent_calls (0: none)
  int global_limit = 0;  // the configured limits.max_calls (0: none, or sized per instance)
  bool call = false;     // a WebRTC call (its owner is recorded); else a WebSocket session
};

enum class StoreVerdict {
  kAdmitted,    // a slot is held (or the store cannot answer: the local counts decide)
  kKeyFull,     // the key is at its limit over every instance
  kGlobalFull,  // every instance together is at limits.max_calls
};

class CountStore {
 public:
  using Answer = std::function<void(StoreVerdict, std::unique_ptr<workers::LeaseAttachment> slot)>;
  virtual ~CountStore() = default;
  // Takes a slot for `ask`. Dropping `slot` gives it back, also when nobody waits any more.
  virtual void take(const StoreAsk& ask, Answer done) = 0;
};

// One instance: nothing is shared, so nothing to take; answers before `take` returns.
class LocalCountStore : public CountStore {
 public:
  void take(const StoreAsk&, Answer done) override { done(StoreVerdict::kAdmitted, nullptr); }
};

}  // namespace rtgw::admission
