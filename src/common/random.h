// SPDX-License-Identifier: MIT
// Cryptographically secure random bytes and ids, from the kernel (getrandom(2)).
//
// Owns: nothing; every secret and every public id the gateway makes (token secrets, call,
// session and event ids, SSRCs) comes from here. getrandom is retried on EINTR and short reads;
// if the kernel refuses (e.g. ENOSYS), the process aborts with a message: there is no fallback
// to a predictable generator.
//
// Threads: any (getrandom is thread safe; no state is kept).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace rtgw {

// Fills `out` with random bytes. Blocks only until the kernel's pool is initialised at boot.
void random_bytes(std::span<std::byte> out);
// `n` random bytes as a string (binary).
std::string random_bytes(std::size_t n);
// `digits` random lower-case hex digits (each carries 4 bits).
std::string random_hex(std::size_t digits);
// `prefix` followed by `digits` random lower-case hex digits, e.g. random_id("rtc_", 32).
std::string random_id(std::string_view prefix, std::size_t digits);
std::uint32_t random_u32();
// Uniform in [lo, hi] (inclusive, lo <= hi), without modulo bias.
std::uint32_t random_u32_between(std::uint32_t lo, std::uint32_t hi);

}  // namespace rtgw
