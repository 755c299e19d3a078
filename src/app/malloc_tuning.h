// SPDX-License-Identifier: MIT
// glibc malloc settings that only take effect at exec time (GLIBC_TUNABLES).
//
// Owns: deciding the GLIBC_TUNABLES value the gateway runs with, and re-executing the binary
// once so glibc reads it. Why: every relayed call brings ~14 threads (webrtcbin's), and glibc's
// per-thread cache (tcache: up to 7 freed chunks of each size up to 1032 bytes per thread)
// keeps freed memory in each of them; much of it is freed by another thread than the one that
// allocated it (a packet received in one thread, sent from another), so it piles up in the
// sending threads' caches. Capping the cached size at 64 bytes measured 2.15 -> 1.87 MiB RSS per
// relayed call (tests/bench/README.md, "Memory per call"). glibc reads tunables only when a
// program starts: mallopt() has no tcache parameter, hence the re-exec.
//
// RTGW_MALLOC_TCACHE_MAX (bytes, default 64; "glibc" keeps glibc's own 1032) chooses the cap;
// an operator's own glibc.malloc.tcache_max or tcache_count in GLIBC_TUNABLES wins.
//
// Threads: main thread, first thing in main(), before any other thread exists.
#pragma once

#include <optional>
#include <string>

namespace rtgw::app {

inline constexpr int kDefaultTcacheMaxBytes = 64;

// The cap RTGW_MALLOC_TCACHE_MAX asks for: nullopt for "glibc" (leave glibc's default), the
// default for unset or empty, or an error for anything but a number in [0, 1032] or "glibc".
struct TcacheChoice {
  std::optional<int> max_bytes;
  std::string error;  // "" = fine; otherwise the default is used and this is logged
};
TcacheChoice tcache_choice(const char* env_value);

// The GLIBC_TUNABLES value to run with, given the current one (nullptr: unset) and the cap, or
// nullopt when nothing is to change: no cap asked for, or the operator already set
// glibc.malloc.tcache_max or glibc.malloc.tcache_count (theirs wins).
std::optional<std::string> tunables_with_tcache_max(const char* current,
                                                    std::optional<int> max_bytes);

// What the process runs with, for the start-up log ("malloc: tcache_max 64 bytes
// (GLIBC_TUNABLES)" and the like).
std::string describe_malloc_tuning();

// Re-executes /proc/self/exe with argv and the extended GLIBC_TUNABLES when
// tunables_with_tcache_max() asks for a change; at most once (RTGW_MALLOC_REEXEC marks the new
// image), and not under a sanitizer or valgrind (their allocators are not glibc's). Returns when
// no re-exec was needed or it failed (the gateway then runs with glibc's defaults).
void apply_malloc_tunables(char** argv);

}  // namespace rtgw::app
