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

#include <cstdint>
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

class WebSocket {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnSocketText(WebSocket& socket, std::string text) = 0;
    virtual void OnSocketBinary(WebSocket& socket, std::size_t bytes) = 0;
    // The connection is closed: `code` is the peer's close code (1006 when it vanished without a
    // close frame), `reason` its reason.
    virtual void OnSocketClosed(WebSocket& socket, int code, const std::string& reason) = 0;
  };

  // Takes a reference to `connection`. A message above `max_message_bytes` closes the connection
  // with 1009 and is not reported.
  WebSocket(SoupWebsocketConnection* connection, std::uint64_t max_message_bytes,
            Listener* listener);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  bool open() const;
  // False when the connection is not open (the message is not sent).
  bool send_text(const std::string& text);
  // Starts the close handshake (no-op when already closing or closed).
  void close(int code, const std::string& reason);
  std::string protocol() const;

 private:
  static constexpr std::uint64_t kHardLimitFactor = 4;

  Ref<SoupWebsocketConnection> connection_;
  Listener* listener_;
  std::uint64_t max_message_bytes_;
  std::vector<SignalConnection> signals_;
  bool closed_reported_ = false;
};

}  // namespace rtgw
