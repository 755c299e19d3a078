// SPDX-License-Identifier: MIT
#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rtgw {

void random_bytes(std::span<std::byte> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    // Flags 0: the urandom pool, blocking only until it is initialised (never after boot).
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    // Never fall back to a predictable generator: secrets and ids depend on this.
    std::fprintf(stderr, "realtime-gateway: getrandom() failed: %s; refusing to go on\n",
                 n < 0 ? std::strerror(errno) : "no bytes");
    std::abort();
  }
}

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  random_bytes(std::as_writable_bytes(std::span<char>(s.data(), s.size())));
  return s;
}

std::string random_hex(std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string raw = random_bytes((digits + 1) / 2);
  std::string out;
  out.reserve(digits);
  for (std::size_t i = 0; i < digits; i++) {
    auto byte = static_cast<unsigned char>(raw[i / 2]);
    out += kHex[(i % 2 == 0 ? byte >> 4 : byte) & 0x0F];
  }
  return out;
}

std::string random_id(std::string_view prefix, std::size_t digits) {
  std::string id(prefix);
  id += random_hex(digits);
  return id;
}

std::uint32_t random_u32() {
  std::uint32_t v = 0;
  random_bytes(std::as_writable_bytes(std::span<std::uint32_t>(&v, 1)));
  return v;
}

std::uint32_t random_u32_between(std::uint32_t lo, std::uint32_t hi) {
  if (lo >= hi) return lo;
  std::uint64_t span = static_cast<std::uint64_t>(hi) - lo + 1;
  if (span > UINT32_MAX) return random_u32();
  // Reject the top partial range so every value is equally likely.
  std::uint32_t limit = UINT32_MAX - static_cast<std::uint32_t>((UINT32_MAX % span + 1) % span);
  std::uint32_t v;
  do v = random_u32();
  while (v > limit);
  return lo + static_cast<std::uint32_t>(v % span);
}

}  // namespace rtgw
