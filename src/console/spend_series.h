// SPDX-License-Identifier: MIT
// Spend per key and model over the last hour and the last day, for the operator console.
//
// Owns: an in-memory time series of priced turns' cost_usd, in per-minute buckets for the last
// hour and per-hour buckets for the last day, per (key, model) pair. Memory is bounded: at most
// kMaxSeries pairs (a pair seen after that is counted under key "(other)", model "(other)") of
// 60 + 24 buckets each. Nothing is persisted: a restart starts from zero (the durable figures are
// the usage log, the ledger and GET /v1/usage). Pure (the caller passes the time), testable.
//
// Threads: main loop only (fed by the accounting, read by the console stream).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rtgw::console {

class SpendSeries {
 public:
  static constexpr std::size_t kMaxSeries = 64;
  static constexpr int kMinutes = 60;  // the hour's buckets
  static constexpr int kHours = 24;    // the day's buckets

  // A turn of `key` on `model` cost `cost_usd` at unix second `now`.
  void add(const std::string& key, const std::string& model, double cost_usd, std::int64_t now);

  struct Series {
    std::string key;
    std::string model;
    double total_usd = 0;         // over the window
    std::vector<double> buckets;  // oldest first; the last is the current minute or hour
  };
  // The pairs with spend in the window ending at `now`, by key then model.
  std::vector<Series> last_hour(std::int64_t now) const;
  std::vector<Series> last_day(std::int64_t now) const;
  std::size_t series_count() const { return series_.size(); }

 private:
  // A ring of buckets, each stamped with the period (minute or hour number) it holds: a stale
  // stamp reads as zero, so nothing has to be swept.
  template <int N>
  struct Ring {
    std::array<double, N> usd{};
    std::array<std::int64_t, N> period{};
    void add(std::int64_t p, double v);
    std::vector<double> window(std::int64_t current) const;
  };
  struct Pair {
    Ring<kMinutes> minutes;
    Ring<kHours> hours;
  };
  std::vector<Series> collect(std::int64_t now, bool hour) const;

  std::map<std::pair<std::string, std::string>, Pair> series_;
};

}  // namespace rtgw::console
