// SPDX-License-Identifier: MIT
// Budget reservations: what a `response.create` may spend before its turn is metered.
//
// Owns: each key's open reservations (one per response.create let through, an estimate of its
// turn in tokens and US dollars), each key's recent turn sizes (the estimate when the model has
// no ceiling), and the admission rule. A budget flag set only after a turn was metered let every
// response.create already in flight through (issue 21: 50 back to back one token below a 1,000
// token budget all ran, 6,999 tokens). Now:
//
// - the estimate E of one turn is the model's `max_turn_tokens` when configured (a ceiling),
//   else the key's average over its last kRecentTurns metered responses on this instance, else
//   kDefaultEstimateTokens; in US dollars, the key's recent average cost, else E tokens at the
//   model's fallback price (usage/pricing.h: fallback_per_million, else its highest price).
// - a response.create is let through when spent + reserved + E stays within every budget the
//   key has (budget_tokens, budget_usd). Otherwise, while the key is not over a budget, only as
//   the key's one open response (no other reservation open, on any instance that has told
//   Redis); else it is refused (`insufficient_quota`).
// - a reservation is released when its response's turn is metered (its spend counted at the same
//   moment), when the upstream refuses the request (an `error` naming its event_id), when no
//   response starts for it within kUnstartedTtlUs, and when the call or session ends (the
//   Reservation handle's destructor).
//
// Bound (docs/security.md "Budgets: what they guarantee"): with a ceiling, a key's spend stays
// below budget + one ceiling per instance (below budget + one ceiling with one instance, or with
// Redis up and the others' reservations known); with the average, the same plus what admitted
// turns exceed their estimate.
//
// Threads: main loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace rtgw::usage {

// A held reservation: released (once) when reset or destroyed. Move-only.
class Reservation {
 public:
  Reservation() = default;
  explicit Reservation(std::function<void()> release) : release_(std::move(release)) {}
  Reservation(Reservation&& o) noexcept : release_(std::exchange(o.release_, nullptr)) {}
  Reservation& operator=(Reservation&& o) noexcept {
    if (this != &o) {
      reset();
      release_ = std::exchange(o.release_, nullptr);
    }
    return *this;
  }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { reset(); }
  void reset() {
    if (auto release = std::exchange(release_, nullptr)) release();
  }
  explicit operator bool() const { return static_cast<bool>(release_); }

 private:
  std::function<void()> release_;
};

// Asks for a reservation for one response.create of `key_name` on gateway model `model`;
// nullopt: refused, `*why` says why (the error event's message).
using ResponseGate = std::function<std::optional<Reservation>(
    const std::string& key_name, const std::string& model, std::string* why)>;

struct TurnEstimate {
  std::int64_t tokens = 0;
  double usd = 0;
};

// What is open against a key: reservations' sum and count.
struct Held {
  std::int64_t tokens = 0;
  double usd = 0;
  int count = 0;
};

struct Spend {
  std::int64_t tokens = 0;
  double usd = 0;
};

struct Budgets {
  std::optional<std::int64_t> tokens;
  std::optional<double> usd;
};

enum class Admission {
  kFits,     // spent + reserved + the estimate stays within every budget
  kLastOne,  // within one estimate of a budget: let through as the key's one open response
  kRefused,  // over a budget, or the key already has an open response at the edge
};

// The rule (pure).
Admission admit_response(const Budgets& budgets, const Spend& spent, const Held& held,
                         const TurnEstimate& estimate);

class ReservationBook : public std::enable_shared_from_this<ReservationBook> {
 public:
  static constexpr std::size_t kRecentTurns = 16;
  static constexpr std::int64_t kDefaultEstimateTokens = 4096;
  static constexpr std::int64_t kUnstartedTtlUs = 30'000'000;

  // The estimate for `key_name`: `ceiling_tokens` when set, else the recent average, else
  // kDefaultEstimateTokens; `usd_per_million` (the model's fallback price; none: unpriced) turns
  // a token estimate into dollars when there is no cost history.
  TurnEstimate estimate(const std::string& key_name, std::optional<std::int64_t> ceiling_tokens,
                        std::optional<double> usd_per_million) const;
  // What this instance holds open for `key_name`.
  Held held(const std::string& key_name) const;
  // Opens a reservation; `on_release` runs once when it is released (e.g. the cluster's copy).
  Reservation hold(const std::string& key_name, const TurnEstimate& estimate,
                   std::function<void()> on_release = {});
  // A metered response turn of `key_name` (the history the average comes from).
  void note_turn(const std::string& key_name, std::int64_t tokens, std::optional<double> usd);
  std::size_t open_reservations() const { return open_.size(); }

 private:
  struct Open {
    std::string key_name;
    TurnEstimate estimate;
    std::function<void()> on_release;
  };
  void release(std::uint64_t id);

  std::map<std::uint64_t, Open> open_;
  std::uint64_t next_id_ = 1;
  struct History {
    std::deque<std::int64_t> tokens;
    std::deque<double> usd;  // priced turns only
  };
  std::map<std::string, History> recent_;
};

}  // namespace rtgw::usage
