// SPDX-License-Identifier: MIT
#include "workers/upstream_signaller.h"

#include <glib.h>

namespace rtgw::workers {

std::shared_ptr<UpstreamSignaller> fail_over(const UpstreamFailure& failure,
                                             UpstreamSignaller& current,
                                             std::vector<std::string>& tried,
                                             const FailoverFn& next_worker,
                                             const std::string& log_id) {
  if (is_auth_failure(failure)) {
    current.report_setup(false);
    return nullptr;
  }
  if (!is_worker_failure(failure)) return nullptr;
  current.report_setup(false);
  tried.push_back(current.name());
  auto next = next_worker ? next_worker(tried) : nullptr;
  if (!next) return nullptr;
  g_message("[%s] worker %s failed (%s): trying %s", log_id.c_str(), current.name().c_str(),
            failure.message.c_str(), next->name().c_str());
  current.call_ended();
  next->call_started();
  return next;
}

}  // namespace rtgw::workers
