// SPDX-License-Identifier: MIT
#include "usage/pq.h"

#include <algorithm>

namespace rtgw::usage {

PgConnectParams::PgConnectParams(const std::string& conninfo, const std::string& application_name,
                                 std::chrono::milliseconds timeout, const Keepalives& keepalives) {
  auto seconds = std::max<long long>(1, std::chrono::ceil<std::chrono::seconds>(timeout).count());
  auto user_timeout = std::max<long long>(keepalives.min_user_timeout.count(), timeout.count());
  values_ = {application_name,
             std::to_string(seconds),
             "1",
             std::to_string(keepalives.idle_s),
             std::to_string(keepalives.interval_s),
             std::to_string(keepalives.count),
             std::to_string(user_timeout),
             conninfo};
  for (std::size_t i = 0; i < values_.size(); ++i) value_pointers_[i] = values_[i].c_str();
  value_pointers_.back() = nullptr;
}

}  // namespace rtgw::usage
