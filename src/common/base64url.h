// SPDX-License-Identifier: MIT
// base64url without padding (RFC 4648 section 5), over GLib's base64.
//
// Owns: nothing; the one encoder and decoder for the gateway's URL-safe secrets and tokens
// (virtual keys `sk-rtgw-...`, ephemeral tokens `ek_...`).
//
// Threads: any (pure functions).
#pragma once

#include <optional>
#include <string>

namespace rtgw {

// `bytes` (binary) as base64url, no `=` padding.
std::string base64url(const std::string& bytes);
// The bytes `text` encodes, or nullopt when it holds a character outside [A-Za-z0-9_-] (padding
// included) or does not decode.
std::optional<std::string> unbase64url(std::string text);

}  // namespace rtgw
