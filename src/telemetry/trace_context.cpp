// SPDX-License-Identifier: MIT
#include "telemetry/trace_context.h"

#include <cstdio>

#include "common/random.h"

namespace rtgw::telemetry {
namespace {

bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// `n` lower-case hex digits at `text[at]`.
bool hex_run(std::string_view text, std::size_t at, std::size_t n) {
  if (text.size() < at + n) return false;
  for (std::size_t i = at; i < at + n; i++)
    if (!lower_hex(text[i])) return false;
  return true;
}

bool all_zero(std::string_view digits) { return digits.find_first_not_of('0') == digits.npos; }

// A random id of `digits` hex digits that is not all zero (the spec's invalid value).
std::string nonzero_id(std::size_t digits) {
  for (;;) {
    std::string id = random_hex(digits);
    if (!all_zero(id)) return id;
  }
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view header) {
  // HTTP's optional whitespace around a field value.
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t'))
    header.remove_prefix(1);
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t'))
    header.remove_suffix(1);
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55.
  constexpr std::size_t kLength = 55;
  if (header.size() < kLength) return std::nullopt;
  if (!hex_run(header, 0, 2) || header[2] != '-' || !hex_run(header, 3, 32) || header[35] != '-' ||
      !hex_run(header, 36, 16) || header[52] != '-' || !hex_run(header, 53, 2))
    return std::nullopt;
  std::string_view version = header.substr(0, 2);
  if (version == "ff") return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append "-" and more, which this
  // parser does not understand and ignores (the spec's forward compatibility).
  if (header.size() > kLength && (version == "00" || header[kLength] != '-')) return std::nullopt;
  TraceParent parent;
  parent.trace_id = std::string(header.substr(3, 32));
  parent.parent_id = std::string(header.substr(36, 16));
  if (all_zero(parent.trace_id) || all_zero(parent.parent_id)) return std::nullopt;
  parent.flags = static_cast<std::uint8_t>(hex_value(header[53]) * 16 + hex_value(header[54]));
  return parent;
}

std::string format_traceparent(const std::string& trace_id, const std::string& span_id,
                               std::uint8_t flags) {
  char tail[3];
  std::snprintf(tail, sizeof tail, "%02x", flags);
  return "00-" + trace_id + "-" + span_id + "-" + tail;
}

std::string new_trace_id() { return nonzero_id(32); }

std::string new_span_id() { return nonzero_id(16); }

}  // namespace rtgw::telemetry
