// SPDX-License-Identifier: MIT
#include "console/spend_series.h"

namespace rtgw::console {

template <int N>
void SpendSeries::Ring<N>::add(std::int64_t p, double v) {
  std::size_t i = static_cast<std::size_t>(p % N);
  if (period[i] != p) {  // a bucket of an older period: reuse it
    period[i] = p;
    usd[i] = 0;
  }
  usd[i] += v;
}

template <int N>
std::vector<double> SpendSeries::Ring<N>::window(std::int64_t current) const {
  std::vector<double> out(N, 0.0);
  for (int back = 0; back < N; ++back) {
    std::int64_t p = current - back;
    if (p < 0) break;
    std::size_t i = static_cast<std::size_t>(p % N);
    if (period[i] == p) out[N - 1 - back] = usd[i];
  }
  return out;
}

void SpendSeries::add(const std::string& key, const std::string& model, double cost_usd,
                      std::int64_t now) {
  if (!(cost_usd > 0) || now < 0) return;  // unpriced or free turns draw nothing
  auto id = std::make_pair(key, model);
  auto it = series_.find(id);
  if (it == series_.end()) {
    // Bounded: past kMaxSeries pairs, new ones share one series (kMaxSeries + 1 at most).
    if (series_.size() >= kMaxSeries) id = {"(other)", "(other)"};
    it = series_.try_emplace(id).first;
  }
  it->second.minutes.add(now / 60, cost_usd);
  it->second.hours.add(now / 3600, cost_usd);
}

std::vector<SpendSeries::Series> SpendSeries::collect(std::int64_t now, bool hour) const {
  std::vector<Series> out;
  for (const auto& [id, pair] : series_) {
    Series s{id.first, id.second, 0,
             hour ? pair.minutes.window(now / 60) : pair.hours.window(now / 3600)};
    for (double v : s.buckets) s.total_usd += v;
    if (s.total_usd > 0) out.push_back(std::move(s));
  }
  return out;
}

std::vector<SpendSeries::Series> SpendSeries::last_hour(std::int64_t now) const {
  return collect(now, true);
}

std::vector<SpendSeries::Series> SpendSeries::last_day(std::int64_t now) const {
  return collect(now, false);
}

}  // namespace rtgw::console
