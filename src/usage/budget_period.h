// SPDX-License-Identifier: MIT
// Budget periods: a key's `budget_duration` ("30d", "12h", "3s") cuts its spend into periods; a
// budget counts only the spend of the current one.
//
// Periods are aligned on the unix epoch (1970-01-01T00:00:00Z): a key with a period of D seconds
// is in the period [floor(t / D) * D, that + D) at unix time t. Every instance computes the same
// period from its own clock, with nothing to coordinate (the cluster's Redis counters are keyed by
// that start, cluster/cluster.h).
//
// Owns: the duration syntax and the period arithmetic (pure functions, any thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rtgw::usage {

// The longest period accepted: 10 years.
inline constexpr std::int64_t kMaxBudgetDurationSeconds = 10LL * 366 * 86400;

// "<positive integer><unit>" with unit s, m, h or d ("30d", "3s"); nullopt for anything else
// (no unit, zero, a sign, spaces, fractions, over kMaxBudgetDurationSeconds).
std::optional<std::int64_t> parse_budget_duration(const std::string& text);

// The start (unix seconds) of the period of `seconds` holding `unix_time`. `seconds` > 0.
std::int64_t period_start(double unix_time, std::int64_t seconds);

// Now, in unix seconds (g_get_real_time).
double unix_now();

}  // namespace rtgw::usage
