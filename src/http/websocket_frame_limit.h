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
// so it can hand it this filter instead. The filter passes the HTTP request through, then follows
// the frame headers that come after it (one request per connection: no keep-alive, so the frames
// of an upgraded connection start right after the request's blank line, found as libsoup finds
// it; a handshake with a body is refused before the upgrade). It enforces only once the route
// layer has seen the headers of a WebSocket handshake; any other request's body passes
// untouched. Once a message's fragments would exceed the bound it reports it
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
  // The request's headers were parsed (libsoup's early handler): a WebSocket handshake has its
  // frames bounded from now on (what came after its headers meanwhile was followed, not held);
  // any other request is passed through untouched (its body is no frame).
  void expect_frames(bool websocket);
  // A message went past the bound: data frames are dropped from now on.
  bool tripped() const { return tripped_; }
  // The size the message reached with the frame that tripped the bound (saturates).
  std::uint64_t tripped_at() const { return tripped_at_; }
  std::uint64_t max_message_bytes() const { return max_message_bytes_; }
  // Not a WebSocket: every byte passes untouched from now on.
  bool passthrough() const { return mode_ == Mode::kOff; }
  // Whether the request's end (the blank line) was seen and frames are being followed.
  bool in_frames() const { return phase_ != Phase::kHttp; }

 private:
  enum class Phase { kHttp, kHeader, kPayload };
  // kFollow: not known yet whether frames follow: parsed, passed, never held or dropped.
  enum class Mode { kFollow, kEnforce, kOff };
  void http_byte(char c);
  void header_complete(std::string& out);
  void trip(std::uint64_t reached);

  std::uint64_t max_message_bytes_;
  Mode mode_ = Mode::kFollow;
  Phase phase_ = Phase::kHttp;
  // The end of the headers exactly as libsoup 3.2 finds it (soup-message-io-data.c): a line
  // "\n" or "\r\n" after a line feed, with at least 2 (3) bytes before it.
  std::uint64_t http_bytes_ = 0;     // bytes of the request so far
  std::uint64_t line_start_ = 0;     // offset of the current line
  char line_first_ = 0;              // its first byte
  bool previous_line_feed_ = false;  // the byte before the current line is '\n'
  std::string header_;               // the frame header read so far (at most 14 bytes)
  std::size_t header_passed_ = 0;    // of which already passed on (read while following)
  std::uint64_t payload_left_ = 0;
  bool pass_payload_ = true;
  std::uint64_t message_bytes_ = 0;  // of the message being received (fragments so far)
  bool over_while_following_ = false;
  bool tripped_ = false;
  std::uint64_t tripped_at_ = 0;
};

// What a filtered connection shares with its owner (the connection guard).
struct FrameLimitState : std::enable_shared_from_this<FrameLimitState> {
  explicit FrameLimitState(std::uint64_t max_message_bytes) : limiter(max_message_bytes) {}
  WebSocketFrameLimiter limiter;
  // Called on the main loop once when the bound is crossed (posted by arm() when it was crossed
  // before the upgrade completed). Empty until then: the report waits.
  std::function<void(std::uint64_t size, std::uint64_t limit)> on_trip;
  bool trip_pending = false;   // crossed, not reported yet
  bool trip_reported = false;  // reported
  // Sets `on_trip`; reports at once (posted) if the bound was already crossed.
  void arm(std::function<void(std::uint64_t, std::uint64_t)> fn);
  void report();
  // WebSocketFrameLimiter::expect_frames(), then a report (posted) if that tripped the bound.
  void expect_frames(bool websocket);
  // Called after feeding the limiter: posts a report once the bound is crossed.
  void check_trip();
};

// `base` wrapped in the filter: its input passes through `state->limiter`, its output and close
// are the base's. The wrapper has a `base-io-stream` property (as libsoup's own wrappers do).
Ref<GIOStream> wrap_with_frame_limit(GIOStream* base, std::shared_ptr<FrameLimitState> state);

}  // namespace rtgw::http
