// SPDX-License-Identifier: MIT
#include "config/snapshots.h"

namespace rtgw::config {

std::uint64_t Snapshots::replace(Config next, std::int64_t now_us) {
  constexpr std::int64_t kRetainUs = kRetainSeconds * 1000 * 1000;
  while (!retired_.empty() && now_us - retired_.front().first >= kRetainUs) retired_.pop_front();
  retired_.emplace_back(now_us, std::move(current_));
  current_ = std::make_shared<const Config>(std::move(next));
  return ++generation_;
}

}  // namespace rtgw::config
