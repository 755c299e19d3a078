// SPDX-License-Identifier: MIT
// The process's open-file limit (RLIMIT_NOFILE).
//
// Owns: raising the soft limit to the hard one at start-up (bounded by
// config::kFdLimitCeiling), and the figures for the start-up log. The common soft limit of 1024
// is far below what a call costs at any load (about 24 descriptors each, docs/security.md), and
// running out of descriptors makes GLib abort (a GWakeup it cannot create is fatal); the default
// caps are sized from the raised limit (config/capacity.h).
//
// Threads: main thread, at start-up, before any other thread exists.
#pragma once

#include <cstdint>
#include <string>

namespace rtgw::app {

struct FdLimit {
  std::uint64_t soft_before = 0;
  std::uint64_t hard = 0;  // kUnlimited when the hard limit is RLIM_INFINITY
  std::uint64_t soft = 0;  // after the raise (soft_before when it failed or was not needed)
  std::string error;       // why the raise failed ("" = fine)
  static constexpr std::uint64_t kUnlimited = ~std::uint64_t{0};
  // "open files: soft limit 1024 raised to 524288 (hard limit 524288)" and the like.
  std::string describe() const;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (capped) and reports what it did.
FdLimit raise_fd_limit();

}  // namespace rtgw::app
