// SPDX-License-Identifier: MIT
// Virtual key secrets: making one and the only form of it that is ever stored.
//
// Owns: the key format (`sk-rtgw-` + base64url, no padding, of 32 bytes from getrandom(2) via
// common/random.h: 43 characters after the prefix) and its digest (SHA-256, lower-case hex, from
// GLib's GChecksum). The table, the mirror, the audit and the logs hold the digest or nothing;
// the key itself is shown once, in the answer that made it.
//
// Threads: any (pure functions apart from the kernel's randomness).
#pragma once

#include <string>

namespace rtgw::keys {

inline constexpr const char* kKeyPrefix = "sk-rtgw-";

// A new key: kKeyPrefix + base64url(32 random bytes).
std::string generate_key();
// SHA-256 of `key`, 64 lower-case hex digits.
std::string hash_key(const std::string& key);

}  // namespace rtgw::keys
