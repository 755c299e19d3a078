// SPDX-License-Identifier: MIT
// Default caps sized from the process's open-file limit.
//
// Owns: the figures a call, a set-up, an HTTP connection and the process itself cost in file
// descriptors (measured: docs/security.md, "Default caps and file descriptors"), and the one
// function that turns an open-file limit into the caps an operator did not set: open
// connections, live calls and sessions, calls and sessions per key (for keys without their own
// `max_concurrent_calls`), and call set-ups in progress, globally and per key. A cap the config
// sets explicitly is kept as is (0 stays "no limit" where it meant that before).
//
// Threads: pure functions; called on the main thread at start-up (and by --check-config).
#pragma once

#include <cstdint>

#include "config/config.h"

namespace rtgw::config {

// Measured on Debian 12, GStreamer 1.22 (docs/security.md): descriptors the process holds with
// no call (GLib, GStreamer, libsoup, the listener, logs, a worker pool), plus headroom for
// what libraries open briefly (DNS, /proc reads, the usage report's file).
inline constexpr int kReservedFds = 64;
// One call, set up (answered, ICE not connected) or connected, with the built-in echo worker
// (its leg is in this process: the costlier case). Measured 42–44 with the echo worker and 30–31
// with a remote worker on a host with two non-loopback addresses (each leg binds a UDP socket
// and an ICE-TCP listener per address and component); rounded up. More addresses cost more:
// webrtc.ice_interfaces, ice_tcp and ice_ipv6 cut it.
inline constexpr int kFdsPerCall = 48;
// Share of the descriptors left after the reserve that HTTP connections may take (one each).
inline constexpr int kConnectionShareDivisor = 4;
inline constexpr int kMaxConnectionsCeiling = 1024;  // the former fixed default
// A ceiling on sized max_calls whatever the fd limit: each call also costs ~18 threads, ~2.3 MiB
// and ~4 % of a core (README "Performance"), so a huge fd limit alone says nothing more.
inline constexpr int kMaxCallsCeiling = 1000;
// The most the soft limit is raised to (a hard limit of "unlimited" or 2^30 would make every
// descriptor table scan, e.g. a spawned child's close-all, needlessly long).
inline constexpr std::uint64_t kFdLimitCeiling = 1 << 20;

struct SizedCaps {
  int max_connections = 0;
  int max_calls = 0;
  int max_calls_per_key = 0;
  int max_setups = 0;
  int max_setups_per_key = 0;
};

// The caps an open-file limit of `fd_limit` allows (documented in docs/security.md).
SizedCaps size_caps(std::uint64_t fd_limit);

// Resolves every cap left at LimitsConfig::kAuto (and keys' max_concurrent_calls left unset)
// from `fd_limit`, and records the limit and which caps were sized in `config.limits`.
void apply_sized_caps(Config& config, std::uint64_t fd_limit);

}  // namespace rtgw::config
