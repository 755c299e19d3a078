// SPDX-License-Identifier: MIT
// Fuzz target `traceparent`: the W3C traceparent parser (telemetry/trace_context.h). Input: the
// header's value, as a client sends it on POST /v1/realtime/calls or the WebSocket upgrade.
//
// Invariants checked:
// - a parsed value has a 32-digit trace id and a 16-digit parent id, lower-case hex, neither all
//   zero;
// - it was at least 55 characters once trimmed, and its ids are the input's own;
// - formatting the parsed ids as version 00 parses back to the same ids and flags.
#include <string>

#include "fuzz_util.h"
#include "telemetry/trace_context.h"

using namespace rtgw::telemetry;

namespace {

void check_id(const std::string& id, std::size_t digits, std::string_view from) {
  if (id.size() != digits) rtgw::fuzz::fail("id length", from);
  if (id.find_first_not_of("0123456789abcdef") != std::string::npos)
    rtgw::fuzz::fail("id is not lower-case hex", from);
  if (id.find_first_not_of('0') == std::string::npos) rtgw::fuzz::fail("all-zero id", from);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = rtgw::fuzz::as_view(data, size);
  auto parsed = parse_traceparent(in);
  if (!parsed) return 0;
  check_id(parsed->trace_id, 32, in);
  check_id(parsed->parent_id, 16, in);
  if (in.find(parsed->trace_id) == std::string_view::npos ||
      in.find(parsed->parent_id) == std::string_view::npos)
    rtgw::fuzz::fail("ids not taken from the input", in);
  std::string again = format_traceparent(parsed->trace_id, parsed->parent_id, parsed->flags);
  auto round = parse_traceparent(again);
  if (!round || round->trace_id != parsed->trace_id || round->parent_id != parsed->parent_id ||
      round->flags != parsed->flags)
    rtgw::fuzz::fail("format does not parse back", again);
  return 0;
}
