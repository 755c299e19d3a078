// SPDX-License-Identifier: MIT
#include "admission/cluster_store.h"

#include <utility>

namespace rtgw::admission {

void ClusterCountStore::take(const StoreAsk& ask, Answer done) {
  cluster::AdmissionRequest request{ask.id, ask.key_name, ask.key_limit, ask.global_limit,
                                    ask.call};
  cluster_.admit(request, [done = std::move(done)](cluster::Verdict verdict,
                                                   std::unique_ptr<cluster::Lease> lease) {
    switch (verdict) {
      case cluster::Verdict::kKeyFull:
        done(StoreVerdict::kKeyFull, nullptr);
        return;
      case cluster::Verdict::kGlobalFull:
        done(StoreVerdict::kGlobalFull, nullptr);
        return;
      case cluster::Verdict::kAdmitted:
      case cluster::Verdict::kLocal:
        done(StoreVerdict::kAdmitted, std::move(lease));
        return;
    }
  });
}

}  // namespace rtgw::admission
