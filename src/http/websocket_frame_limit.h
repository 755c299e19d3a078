// SPDX-License-Identifier: MIT
// A bound on whole WebSocket messages, enforced on the bytes before libsoup assembles them.
//
// Owns: the frame limiter (pure logic: follows the frames of a client's byte stream and lets
// through at most `max_message_bytes` of any one message's fragments) and a filtering GIOStream
// that runs it under libsoup on an accepted connection.
//
// Why a stream under libsoup: libsoup 3.2.3 (Debian 12) bounds each frame
// (`max-incoming-payload-size`) but appends every fragment of a message to one buffer with no
// total bound, so 200 non-final 1 MiB fragments cost 200 MiB before any "message" signal. libsoup
// fixed that in 3.6 (`max-total-message-size`, commit db87805a, set by common/websocket.cpp when
// present); on 3.2 no signal or property sees a fragment before it is appended. The stream
// below libsoup does: the gateway hands libsoup each connection itself (http/connection_guard.h),
// so it can hand it this filter instead. The filter passes the HTTP request through, then parses
// the frame headers that follow (one request per connection: no keep-alive, so the frames of an
// upgraded connection start right after the request's blank line; a handshake with a body is
// refused before the upgrade). Once a message's fragments would exceed the bound it reports it
// (`on_trip`, posted to the main loop, where the owner closes the socket with 1009) and drops
// every data frame from then on; control frames (the client's close, pings) still pass, so the
// close handshake completes. The frame that crosses the bound never reaches libsoup: what libsoup
// holds for one message stays within the bound. Frame headers are held back until complete, so
// libsoup never sees half of a dropped frame.
//
// The filter sees the bytes on the wire: permessage-deflate (which libsoup 3.2 inflates per frame
// without bound) must be off on the server (http/server.cpp removes it), and a TLS listener, if
// one is added, must run the filter above its TLS layer.
//
// Threads: the limiter is plain data; the stream is read on the main loop (libsoup's), and
// `on_trip` runs there.
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/ref.h"

namespace rtgw::http {

class WebSocketFrameLimiter {
 public:
  explicit WebSocketFrameLimiter(std::uint64_t max_message_bytes)
      : max_message_bytes_(max_message_bytes) {}

  // Takes `size` bytes read from the peer; appends to `out` those that may go on to libsoup.
  void feed(const char* data, std::size_t size, std::string& out);
  // A message went past the bound: data frames are dropped from now on.
  bool tripped() const { return tripped_; }
  // The size the message reached with the frame that tripped the bound (saturates).
  std::uint64_t tripped_at() const { return tripped_at_; }
  std::uint64_t max_message_bytes() const { return max_message_bytes_; }
  // Whether the request's end (the blank line) was seen and frames are being followed.
  bool in_frames() const { return phase_ != Phase::kHttp; }

 private:
  enum class Phase { kHttp, kHeader, kPayload };
  void header_complete(std::string& out);

  std::uint64_t max_message_bytes_;
  Phase phase_ = Phase::kHttp;
  int blank_line_ = 0;  // how much of "\r\n\r\n" the last bytes matched
  std::string header_;  // the frame header read so far (at most 14 bytes)
  std::uint64_t payload_left_ = 0;
  bool pass_payload_ = true;
  std::uint64_t message_bytes_ = 0;  // of the message being received (fragments so far)
  bool tripped_ = false;
  std::uint64_t tripped_at_ = 0;
};

// What a filtered connection shares with its owner (the connection guard).
struct FrameLimitState {
  explicit FrameLimitState(std::uint64_t max_message_bytes) : limiter(max_message_bytes) {}
  WebSocketFrameLimiter limiter;
  // Called on the main loop once when the bound is crossed (or at once by arm() when it was
  // crossed before the upgrade completed). Empty until then: the report waits.
  std::function<void(std::uint64_t size, std::uint64_t limit)> on_trip;
  bool trip_pending = false;   // crossed, not reported yet
  bool trip_reported = false;  // reported
  // Sets `on_trip`; reports at once (posted) if the bound was already crossed.
  void arm(std::function<void(std::uint64_t, std::uint64_t)> fn);
  void report();
};

// `base` wrapped in the filter: its input passes through `state->limiter`, its output and close
// are the base's. The wrapper has a `base-io-stream` property (as libsoup's own wrappers do).
Ref<GIOStream> wrap_with_frame_limit(GIOStream* base, std::shared_ptr<FrameLimitState> state);

}  // namespace rtgw::http
