// SPDX-License-Identifier: MIT
#include "usage/budget_reservations.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "usage/saturating.h"

namespace rtgw::usage {

Admission admit_response(const Budgets& budgets, const Spend& spent, const Held& held,
                         const TurnEstimate& estimate) {
  bool over = false;
  bool fits = true;
  if (budgets.tokens) {
    over = over || spent.tokens >= *budgets.tokens;
    std::int64_t after = saturating_add(saturating_add(spent.tokens, held.tokens), estimate.tokens);
    fits = fits && after <= *budgets.tokens;
  }
  if (budgets.usd) {
    over = over || spent.usd >= *budgets.usd;
    double after = saturating_add(saturating_add(spent.usd, held.usd), estimate.usd);
    fits = fits && after <= *budgets.usd;
  }
  if (over) return Admission::kRefused;
  if (fits) return Admission::kFits;
  return held.count == 0 ? Admission::kLastOne : Admission::kRefused;
}

TurnEstimate ReservationBook::estimate(const std::string& key_name,
                                       std::optional<std::int64_t> ceiling_tokens,
                                       std::optional<double> usd_per_million) const {
  TurnEstimate e;
  auto it = recent_.find(key_name);
  const History* h = it == recent_.end() ? nullptr : &it->second;
  if (ceiling_tokens) {
    e.tokens = *ceiling_tokens;
  } else if (h && !h->tokens.empty()) {
    std::int64_t sum = 0;
    for (std::int64_t t : h->tokens) add_to(sum, t);
    e.tokens = std::max<std::int64_t>(1, sum / static_cast<std::int64_t>(h->tokens.size()));
  } else {
    e.tokens = kDefaultEstimateTokens;
  }
  if (!usd_per_million) return e;  // an unpriced model's turns add nothing to budget_usd
  double from_tokens = static_cast<double>(e.tokens) * *usd_per_million / 1e6;
  if (!ceiling_tokens && h && !h->usd.empty()) {
    double sum = 0;
    for (double u : h->usd) add_to(sum, u);
    e.usd = sum / static_cast<double>(h->usd.size());
  } else {
    e.usd = from_tokens;
  }
  return e;
}

Held ReservationBook::held(const std::string& key_name) const {
  Held h;
  for (const auto& [id, open] : open_) {
    if (open.key_name != key_name) continue;
    add_to(h.tokens, open.estimate.tokens);
    add_to(h.usd, open.estimate.usd);
    h.count++;
  }
  return h;
}

Reservation ReservationBook::hold(const std::string& key_name, const TurnEstimate& estimate,
                                  std::function<void()> on_release) {
  std::uint64_t id = next_id_++;
  open_[id] = {key_name, estimate, std::move(on_release)};
  return Reservation([weak = weak_from_this(), id] {
    if (auto self = weak.lock()) self->release(id);
  });
}

void ReservationBook::release(std::uint64_t id) {
  auto it = open_.find(id);
  if (it == open_.end()) return;
  std::function<void()> on_release = std::move(it->second.on_release);
  open_.erase(it);
  if (on_release) on_release();
}

void ReservationBook::note_turn(const std::string& key_name, std::int64_t tokens,
                                std::optional<double> usd) {
  History& h = recent_[key_name];
  h.tokens.push_back(std::max<std::int64_t>(0, tokens));
  if (h.tokens.size() > kRecentTurns) h.tokens.pop_front();
  if (usd && std::isfinite(*usd)) {
    h.usd.push_back(std::max(0.0, *usd));
    if (h.usd.size() > kRecentTurns) h.usd.pop_front();
  }
}

}  // namespace rtgw::usage
