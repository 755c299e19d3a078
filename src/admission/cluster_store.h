// SPDX-License-Identifier: MIT
// The cluster's counts as admission's store: a slot is a lease in Redis (cluster/cluster.h).
// Redis unreachable (kLocal) admits; this instance's own counts then decide.
//
// Threads: main loop only; answers later on the main loop (the Cluster's rule).
#pragma once

#include "admission/count_store.h"
#include "cluster/cluster.h"

namespace rtgw::admission {

class ClusterCountStore : public CountStore {
 public:
  explicit ClusterCountStore(cluster::Cluster& cluster) : cluster_(cluster) {}
  void take(const StoreAsk& ask, Answer done) override;

 private:
  cluster::Cluster& cluster_;
};

}  // namespace rtgw::admission
