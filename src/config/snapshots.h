// SPDX-License-Identifier: MIT
// The running configuration as immutable, generation-numbered snapshots.
//
// Owns: the current snapshot (`std::shared_ptr<const Config>`, generation 1 at start-up, +1 per
// applied reload) and the snapshots a reload retired, kept alive for kRetainSeconds so a
// reference taken from current() on the main loop before a reload stays valid while the request
// that took it waits (an admission's Redis round trip). `ConfigView` is what a service keeps
// instead of a `const Config&`: it reads the current snapshot each time it decides something
// new, or a fixed Config (unit tests, tools).
//
// A live call or session does not read it: its settings (policy, prices, limits) are copied from
// the snapshot current at its admission, so a reload never changes what it started with.
//
// Threads: main loop only (the reload and every reader run there).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <utility>

#include "config/config.h"

namespace rtgw::config {

class Snapshots {
 public:
  // How long a retired snapshot stays alive after the reload that replaced it.
  static constexpr std::int64_t kRetainSeconds = 60;

  explicit Snapshots(Config initial)
      : current_(std::make_shared<const Config>(std::move(initial))) {}

  const Config& current() const { return *current_; }
  std::shared_ptr<const Config> snapshot() const { return current_; }
  std::uint64_t generation() const { return generation_; }

  // Makes `next` current (generation + 1) at monotonic time `now_us`; frees the retired snapshots
  // older than kRetainSeconds. Returns the new generation.
  std::uint64_t replace(Config next, std::int64_t now_us);
  // Snapshots retired and still kept (tests).
  std::size_t retained() const { return retired_.size(); }

 private:
  std::shared_ptr<const Config> current_;
  std::uint64_t generation_ = 1;
  std::deque<std::pair<std::int64_t, std::shared_ptr<const Config>>> retired_;
};

// A service's handle on the config: the current snapshot of a `Snapshots`, or one fixed Config.
// The constructors are implicit so a service constructed with a `const Config&` (unit tests)
// keeps compiling; a referent must outlive the view, a temporary Config is owned by it.
class ConfigView {
 public:
  ConfigView(const Config& fixed) : fixed_(&fixed) {}                 // NOLINT(runtime/explicit)
  ConfigView(const Snapshots& snapshots) : snapshots_(&snapshots) {}  // NOLINT(runtime/explicit)
  ConfigView(Config&& owned)                                          // NOLINT(runtime/explicit)
      : owned_(std::make_shared<const Config>(std::move(owned))), fixed_(owned_.get()) {}

  // The config to decide with now. Do not keep the reference past the current main-loop turn
  // (a reload may replace it; see Snapshots::kRetainSeconds).
  const Config& current() const { return snapshots_ ? snapshots_->current() : *fixed_; }
  // The current snapshot, to hold (a live call or session; a lambda that waits). A fixed Config
  // the view does not own comes without ownership (its owner keeps it alive).
  std::shared_ptr<const Config> snapshot() const {
    if (snapshots_) return snapshots_->snapshot();
    if (owned_) return owned_;
    return std::shared_ptr<const Config>(std::shared_ptr<const Config>(), fixed_);
  }

 private:
  std::shared_ptr<const Config> owned_;
  const Config* fixed_ = nullptr;
  const Snapshots* snapshots_ = nullptr;
};

}  // namespace rtgw::config
