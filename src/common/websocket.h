// SPDX-License-Identifier: MIT
// One WebSocket connection (libsoup), either end.
//
// Owns: a SoupWebsocketConnection and its signals: text messages and the close are reported to a
// listener on the main loop (libsoup emits them there), binary messages are reported as such.
// Sending and closing never throw; a close reason is cut to the protocol's 123 bytes on a UTF-8
// boundary. When the object goes away while the close handshake is still running, the
// connection is kept alive (bounded) until it finishes, so the peer always gets the close frame.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ref.h"

namespace rtgw {

// Close codes the gateway uses (RFC 6455, section 7.4.1).
namespace close_code {
constexpr int kNormal = 1000;
constexpr int kGoingAway = 1001;
constexpr int kPolicyViolation = 1008;
constexpr int kMessageTooBig = 1009;
constexpr int kInternalError = 1011;
constexpr int kTryAgainLater = 1013;
}  // namespace close_code

// A close reason within the 123 bytes a close frame can carry, cut on a UTF-8 boundary.
std::string clip_close_reason(const std::string& reason);
// Whether an endpoint may send `code` in a close frame (1005, 1006 and 1015 are reserved for
// reporting, never sent).
bool sendable_close_code(int code);

// What is queued towards a peer but not yet taken by the kernel, against a bound (pure logic).
//
// libsoup 3.2 queues every message without limit and exposes no buffered amount. It writes as
// soon as the socket takes bytes, so its own queue can only hold data while the socket is not
// writable. The accounting: bytes queued since the socket was last seen writable, less what the
// kernel took since then (TCP_INFO bytes_acked + SIOCOUTQ, a running total of bytes written).
// Without that total (not TCP) the estimate only errs high, and a writable socket resets it.
class OutgoingBacklog {
 public:
  explicit OutgoingBacklog(std::uint64_t limit) : limit_(limit) {}
  // Call before admit(): `writable` = the socket takes bytes now; `written_total` = bytes the
  // kernel has taken from the application over the connection's life (nullopt: unknown).
  void sync(bool writable, std::optional<std::uint64_t> written_total);
  // Counts `bytes` as queued and returns true, or returns false (nothing counted) when they
  // would take the backlog past the limit.
  bool admit(std::uint64_t bytes);
  std::uint64_t backlog() const { return queued_ - std::min(queued_, taken_); }
  std::uint64_t limit() const { return limit_; }
  void set_limit(std::uint64_t limit) { limit_ = limit; }

 private:
  std::uint64_t limit_;
  std::uint64_t queued_ = 0;  // since the last writable sync
  std::uint64_t taken_ = 0;   // by the kernel since then
  std::optional<std::uint64_t> base_written_;
};

// Bytes a WebSocket frame carrying `payload` bytes takes on the wire (no extension).
std::uint64_t websocket_frame_bytes(std::uint64_t payload, bool masked);

class WebSocket {
 public:
  // Default bound on what may wait towards a peer that does not read
  // (limits.max_outgoing_buffer_bytes).
  static constexpr std::uint64_t kDefaultMaxOutgoingBytes = 4 << 20;

  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnSocketText(WebSocket& socket, std::string text) = 0;
    virtual void OnSocketBinary(WebSocket& socket, std::size_t bytes) = 0;
    // The connection is closed: `code` is the peer's close code (1006 when it vanished without a
    // close frame), `reason` its reason.
    virtual void OnSocketClosed(WebSocket& socket, int code, const std::string& reason) = 0;
    // A message would take what waits towards the peer past the outgoing bound: the peer does
    // not read. Called once; sends made inside it (an error event) pass the bound. After it
    // the socket closes with 1008 unless the listener closed it already.
    virtual void OnSocketOverflow(WebSocket& socket, std::uint64_t backlog,
                                  std::uint64_t limit) = 0;
  };

  // Takes a reference to `connection`. A message above `max_message_bytes` closes the connection
  // with 1009 and is not reported.
  WebSocket(SoupWebsocketConnection* connection, std::uint64_t max_message_bytes,
            Listener* listener);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  bool open() const;
  // False when the connection is not open or over its outgoing bound (the message is not
  // sent; an overflow is reported to the listener, then the connection closes with 1008).
  bool send_text(const std::string& text);
  // Bound on what may wait towards the peer (kDefaultMaxOutgoingBytes unless set).
  void limit_outgoing(std::uint64_t bytes) { backlog_.set_limit(bytes); }
  std::uint64_t outgoing_backlog() const { return backlog_.backlog(); }
  // Starts the close handshake (no-op when already closing or closed). A code libsoup 3.2 will
  // not send (1012-1014) is written at a frame boundary: if libsoup is in the middle of a frame,
  // the close waits (nothing more is sent meanwhile, open() is false) until it is past it, at
  // most kCloseBoundaryWaitMs, then closes with 1011.
  void close(int code, const std::string& reason);
  static constexpr int kCloseBoundaryWaitMs = 2000;
  static constexpr guint kCloseBoundaryPollMs = 5;
  std::string protocol() const;

 private:
  static constexpr std::uint64_t kHardLimitFactor = 4;

  Ref<SoupWebsocketConnection> connection_;
  Listener* listener_;
  std::uint64_t max_message_bytes_;
  std::vector<SignalConnection> signals_;
  bool closed_reported_ = false;
  OutgoingBacklog backlog_{kDefaultMaxOutgoingBytes};
  bool overflowing_ = false;  // inside OnSocketOverflow: its sends pass the bound
  bool overflowed_ = false;
  int socket_fd_ = -1;      // the TCP socket under the connection (-1: not found)
  SourceGuard close_wait_;  // a 1012-1014 close waiting for a frame boundary
};

}  // namespace rtgw
