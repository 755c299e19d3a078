// SPDX-License-Identifier: MIT
// Saturating arithmetic for token and cost totals.
//
// Owns: the one rule every token or US-dollar accumulation follows (a key's total, a call's
// running usage, the log and table replays, the cluster's unflushed deltas, the meter's element
// counters): a sum never wraps and never goes down. Adding a negative or non-finite amount adds
// nothing; a sum past the type's range stays at its maximum. A signed 64-bit total that wrapped
// (an upstream reporting 9223372036854775807 tokens) used to turn a key's spend negative and so
// reset its budget.
//
// Also the bound on one turn's count: a worker that reports more than kMaxTurnTokens in any
// token field of one turn is reporting nonsense (no model turn comes near 10^9 tokens); the
// meter counts that field at the cap and flags the turn as invalid usage (usage/pricing.h, the
// relay logs it). Counting at the cap rather than refusing the turn means bad usage can only
// make a budget trip sooner, never later.
//
// Threads: any (pure, header-only).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace rtgw::usage {

// Per turn and per token field (input_tokens, output_tokens, total_tokens, each detail).
inline constexpr std::int64_t kMaxTurnTokens = 1'000'000'000;

// total + n, with n < 0 counted as 0 and the sum held at INT64_MAX instead of wrapping.
constexpr std::int64_t saturating_add(std::int64_t total, std::int64_t n) {
  if (n <= 0) return total;
  std::int64_t sum = 0;
  if (__builtin_add_overflow(total, n, &sum)) return std::numeric_limits<std::int64_t>::max();
  return sum;
}

// The same for unsigned counters (the elements' guint64 totals).
constexpr std::uint64_t saturating_add(std::uint64_t total, std::uint64_t n) {
  std::uint64_t sum = 0;
  if (__builtin_add_overflow(total, n, &sum)) return std::numeric_limits<std::uint64_t>::max();
  return sum;
}

// US dollars: a NaN, infinite or negative amount adds nothing; the sum stays finite.
inline double saturating_add(double total, double n) {
  if (!std::isfinite(n) || n <= 0) return total;
  double sum = total + n;
  return std::isfinite(sum) ? sum : std::numeric_limits<double>::max();
}

// `a += n`, saturating (any of the three types above).
template <typename T>
inline void add_to(T& total, T n) {
  total = saturating_add(total, n);
}

// One turn's token field: clamped to [0, kMaxTurnTokens]; `*clamped` set when it was above.
constexpr std::int64_t clamp_turn_tokens(std::int64_t n, bool* clamped) {
  if (n <= 0) return 0;
  if (n > kMaxTurnTokens) {
    if (clamped) *clamped = true;
    return kMaxTurnTokens;
  }
  return n;
}

}  // namespace rtgw::usage
