// SPDX-License-Identifier: MIT
#include "usage/budget_period.h"

#include <glib.h>

#include <cmath>

namespace rtgw::usage {

std::optional<std::int64_t> parse_budget_duration(const std::string& text) {
  if (text.size() < 2 || text.size() > 12) return std::nullopt;
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return std::nullopt;
  }
  std::int64_t n = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > kMaxBudgetDurationSeconds) return std::nullopt;  // before it can overflow
  }
  if (n <= 0 || n * unit > kMaxBudgetDurationSeconds) return std::nullopt;
  return n * unit;
}

std::int64_t period_start(double unix_time, std::int64_t seconds) {
  auto t = static_cast<std::int64_t>(std::floor(unix_time));
  std::int64_t q = t / seconds;
  if (t % seconds < 0) q--;  // floor for times before the epoch
  return q * seconds;
}

double unix_now() { return static_cast<double>(g_get_real_time()) / 1e6; }

}  // namespace rtgw::usage
