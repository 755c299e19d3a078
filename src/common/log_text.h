// SPDX-License-Identifier: MIT
// Peer-supplied text made safe for the log (issue 21: a WebSocket close reason and a data channel
// label reached the log as they came, so a peer could start forged log lines).
//
// Owns nothing: pure helpers. The process's log writer (app/logging.h) runs every message through
// escape_log_text(), whatever its origin; call sites that put a peer's string into a message
// wrap it in log_quote() so where it starts and ends stays visible.
//
// Threads: any.
#pragma once

#include <string>
#include <string_view>

namespace rtgw {

// `text` with control characters (C0, DEL, C1, U+2028/U+2029) written as `\n`, `\r`, `\t`,
// `\xNN` or `\uNNNN`, and every byte that is not part of valid UTF-8 as `\xNN`. Text without any
// of them comes back unchanged.
std::string escape_log_text(std::string_view text);
// Whether escape_log_text() would change `text`.
bool log_text_needs_escape(std::string_view text);

// `"text"` with escape_log_text()'s escapes, and `"` and `\` escaped too, at most `max_bytes` of
// the input (then `…`).
std::string log_quote(std::string_view text, std::size_t max_bytes = 256);

}  // namespace rtgw
