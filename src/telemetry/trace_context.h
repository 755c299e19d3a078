// SPDX-License-Identifier: MIT
// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header read and
// written, and the ids of new traces and spans.
//
// Owns: nothing; pure functions. Ids are lower-case hex, as OTLP/JSON carries them (trace id 32
// digits, span id 16), from getrandom (common/random.h), never all zero.
//
// Threads: any.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rtgw::telemetry {

struct TraceParent {
  std::string trace_id;    // 32 lower-case hex digits, not all zero
  std::string parent_id;   // 16 lower-case hex digits, not all zero (the caller's span)
  std::uint8_t flags = 0;  // bit 0: sampled
};

// A `traceparent` header value, or nullopt when it is not one (the caller then starts a new
// trace, as the spec says a vendor must). Version 00 is exactly
// "00-<32 hex>-<16 hex>-<2 hex>"; a later version (not ff) may carry more after a '-', which is
// ignored. Upper-case hex, all-zero ids, version ff and surrounding junk are refused; optional
// whitespace around the value (HTTP's OWS) is not part of it and is trimmed.
std::optional<TraceParent> parse_traceparent(std::string_view header);
// "00-<trace_id>-<span_id>-<flags>".
std::string format_traceparent(const std::string& trace_id, const std::string& span_id,
                               std::uint8_t flags);

std::string new_trace_id();  // 32 hex digits
std::string new_span_id();   // 16 hex digits

}  // namespace rtgw::telemetry
