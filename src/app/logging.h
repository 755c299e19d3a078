// SPDX-License-Identifier: MIT
// Log output.
//
// Owns: the process's GLib log writer. Plain text by default; with `log_json` (RTGW_LOG_JSON=1)
// one JSON object per line with time, level, domain, message and, for call lines (messages that
// start with "[rtc_…]"), a separate `call_id`. Nothing here logs SDP bodies or keys: callers never
// pass them. Either way every message is escaped (common/log_text.h): control characters and bytes
// that are not UTF-8 never reach the log raw, so no peer-supplied string can forge a line.
//
// Threads: any. GLib calls the writer from whichever thread logs (GStreamer's included); each
// line is written whole, in one stdio call.
#pragma once

namespace rtgw::app {

void install_log_writer(bool json);

}  // namespace rtgw::app
