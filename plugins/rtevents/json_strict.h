// SPDX-License-Identifier: MIT
// The strict JSON validator: the one gate every JSON text the gateway reads passes first.
//
// Why: json-glib 1.6 (which builds the gateway's trees) is laxer than JSON. It reads `/* */`
// comments, `'…'` strings, octal and short `\u` escapes, and recurses without a depth bound, so a
// `"` inside a comment hid brackets from the old bracket counter and one request overflowed the
// stack (issue 21). The lenient event reader (json.h) accepts what lenient upstream parsers accept.
// Neither may see text this validator refuses: src/common/json.cpp (`rtgw::json::parse`, used for
// bodies, sessions, tokens, the config and the beta translation) and rteventfilter (every client
// event, both transports) call it first.
//
// Accepts exactly RFC 8259 JSON text: one value (any type) with optional whitespace (space, tab,
// LF, CR) around it, strings of valid UTF-8 without raw control characters, RFC 8259's escapes
// only, numbers without leading zeros, NaN or Infinity, no comments, no single quotes, no
// trailing commas, no BOM, nothing after the value; arrays and objects nested at most
// `max_depth` deep. Duplicate member names are JSON (RFC 8259 only says SHOULD be unique) and
// pass: the readers after it decide (the event reader sees every copy).
//
// One departure that repairs instead of refusing, as before: an escaped lone surrogate (`\udc00`,
// or `\ud800` not followed by a low-surrogate escape) is valid JSON text but no character;
// json-glib decodes it into bytes that are not UTF-8. The result then carries a copy of the text
// with each such escape replaced by `\uFFFD` (same length, so offsets hold), as the event reader
// decodes it.
//
// Iterative (an explicit stack bounded by max_depth, no recursion), linear in the text, no
// allocation beyond the stack unless a lone surrogate is repaired. Thread-safety: pure function.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "vocab.h"

namespace rtgw::rtevents::strict_json {

// The SPEC's bound on nesting (arrays and objects): 64 levels pass, 65 do not (vocab.h).
inline constexpr int kMaxDepth = kJsonMaxDepth;

struct Result {
  bool ok = false;
  std::size_t offset = 0;     // the byte where the text stopped being JSON (when !ok)
  const char* reason = "";    // what was wrong there (a static string), when !ok
  bool too_deep = false;      // !ok because of the nesting bound
  int max_depth = kMaxDepth;  // the bound it was checked against
  // Set when ok and a lone surrogate escape was replaced: the text to hand to a parser.
  std::optional<std::string> repaired;

  // "<reason> (at byte N)", or "" when ok.
  std::string message() const;
};

// `json_glib`: also refuse what json-glib 1.6 would read as a different value, for text a json-glib
// tree is built from (rtgw::json::parse): an integer literal beyond 64 bits (json-glib wraps it,
// 99999999999999999999 became -1) and a `\u0000` escape (json-glib cuts the string there).
// Events (read by the span-preserving reader, which keeps both) do not need it.
Result check(std::string_view text, int max_depth = kMaxDepth, bool json_glib = false);

}  // namespace rtgw::rtevents::strict_json
