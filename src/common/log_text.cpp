// SPDX-License-Identifier: MIT
#include "common/log_text.h"

#include <cstdio>

namespace rtgw {
namespace {

// Length of the valid UTF-8 sequence at `i`, or 0 (no overlongs, surrogates or > U+10FFFF).
std::size_t utf8_length(std::string_view t, std::size_t i, unsigned* code_point) {
  const auto b = [&](std::size_t k) -> unsigned {
    return i + k < t.size() ? static_cast<unsigned char>(t[i + k]) : 0x100u;
  };
  const auto cont = [&](std::size_t k) { return b(k) >= 0x80 && b(k) <= 0xBF; };
  const unsigned c = b(0);
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  std::size_t n = 0;
  if (c >= 0xC2 && c <= 0xDF && cont(1))
    n = 2;
  else if (c == 0xE0 && b(1) >= 0xA0 && b(1) <= 0xBF && cont(2))
    n = 3;
  else if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && cont(1) && cont(2))
    n = 3;
  else if (c == 0xED && b(1) >= 0x80 && b(1) <= 0x9F && cont(2))
    n = 3;
  else if (c == 0xF0 && b(1) >= 0x90 && b(1) <= 0xBF && cont(2) && cont(3))
    n = 4;
  else if (c >= 0xF1 && c <= 0xF3 && cont(1) && cont(2) && cont(3))
    n = 4;
  else if (c == 0xF4 && b(1) >= 0x80 && b(1) <= 0x8F && cont(2) && cont(3))
    n = 4;
  if (n == 0) return 0;
  unsigned cp = c & (0xFFu >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (b(k) & 0x3F);
  *code_point = cp;
  return n;
}

bool is_control(unsigned cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

// Appends `text` escaped; `quote` also escapes `"` and `\`.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  char buf[8];
  for (std::size_t i = 0; i < text.size();) {
    unsigned cp = 0;
    const std::size_t n = utf8_length(text, i, &cp);
    if (n == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(text[i]));
      out += buf;
      ++i;
      continue;
    }
    if (is_control(cp)) {
      if (cp == '\n')
        out += "\\n";
      else if (cp == '\r')
        out += "\\r";
      else if (cp == '\t')
        out += "\\t";
      else if (cp < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02X", cp), out += buf;
      else
        std::snprintf(buf, sizeof buf, "\\u%04X", cp), out += buf;
    } else if (quote && (cp == '"' || cp == '\\')) {
      out += '\\';
      out += static_cast<char>(cp);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
}

}  // namespace

bool log_text_needs_escape(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    unsigned cp = 0;
    const std::size_t n = utf8_length(text, i, &cp);
    if (n == 0 || is_control(cp)) return true;
    i += n;
  }
  return false;
}

std::string escape_log_text(std::string_view text) {
  if (!log_text_needs_escape(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  append_escaped(out, text, false);
  return out;
}

std::string log_quote(std::string_view text, std::size_t max_bytes) {
  const bool clipped = text.size() > max_bytes;
  if (clipped) text = text.substr(0, max_bytes);
  std::string out = "\"";
  append_escaped(out, text, true);
  out += '"';
  if (clipped) out += "\xE2\x80\xA6";  // …
  return out;
}

}  // namespace rtgw
