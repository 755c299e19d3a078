// SPDX-License-Identifier: MIT
// A sideband control socket on a live WebRTC call (`GET /v1/realtime?call_id=`).
//
// Owns: the control WebSocket and its attachment to the call (a `calls::CallTap`): the call's
// server events go out on the socket as the client gets them; events the socket sends enter the
// call's client event path, so the call's policy and meter treat them as the client's own. The
// socket is closed with 1000 when the call ends; closing the socket leaves the call alone.
//
// Threads: main loop only. It never deletes itself: `on_end` runs (posted) when it is over.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "calls/call.h"
#include "common/main_thread.h"
#include "common/websocket.h"

namespace rtgw::relay {

class Sideband : public WebSocket::Listener, public calls::CallTap {
 public:
  Sideband(std::string id, calls::Call& call, SoupWebsocketConnection* connection,
           std::uint64_t max_message_bytes, std::function<void(Sideband&)> on_end);
  ~Sideband() override;
  Sideband(const Sideband&) = delete;
  Sideband& operator=(const Sideband&) = delete;

  const std::string& id() const { return id_; }
  const std::string& call_id() const { return call_id_; }
  // Closes the socket (the call goes on).
  void end(int code, const std::string& reason);

  // WebSocket::Listener
  void OnSocketText(WebSocket& socket, std::string text) override;
  void OnSocketBinary(WebSocket& socket, std::size_t bytes) override;
  void OnSocketClosed(WebSocket& socket, int code, const std::string& reason) override;
  void OnSocketOverflow(WebSocket& socket, std::uint64_t backlog, std::uint64_t limit) override;
  // calls::CallTap
  void OnCallServerEvent(const std::string& text) override;
  void OnCallEnded(const std::string& reason) override;

 private:
  void detach();

  std::string id_;
  calls::Call* call_;  // null once detached (the call ended or the socket closed)
  std::string call_id_;
  WebSocket socket_;
  std::function<void(Sideband&)> on_end_;
  bool ended_ = false;
  Lifetime lifetime_;
};

}  // namespace rtgw::relay
