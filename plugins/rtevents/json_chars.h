// SPDX-License-Identifier: MIT
// The character classes JSON's grammar is written in (RFC 8259): shared by the strict validator
// (json_strict.h) and the event reader (json.h), so both read white space, digits and `\uXXXX`
// escapes alike.
//
// Threads: any (pure, header-only).
#pragma once

#include <cstddef>
#include <string_view>

namespace rtgw::rtevents::json_chars {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four hex digits at `at` (a `\u` escape's), or -1 if they are not there.
inline int hex4(std::string_view text, std::size_t at) {
  if (at + 4 > text.size()) return -1;
  int v = 0;
  for (std::size_t i = at; i < at + 4; ++i) {
    const int d = hex_value(text[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace rtgw::rtevents::json_chars
