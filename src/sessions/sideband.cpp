// SPDX-License-Identifier: MIT
#include "sessions/sideband.h"

#include "common/main_thread.h"
#include "events/element_messages.h"

namespace rtgw::relay {

Sideband::Sideband(std::string id, calls::Call& call, SoupWebsocketConnection* connection,
                   std::uint64_t max_message_bytes, std::function<void(Sideband&)> on_end)
    : id_(std::move(id)),
      call_(&call),
      call_id_(call.id()),
      socket_(connection, max_message_bytes, this),
      on_end_(std::move(on_end)) {
  call_->add_tap(this);
  g_message("[%s] sideband %s attached", call_id_.c_str(), id_.c_str());
}

Sideband::~Sideband() { detach(); }

void Sideband::detach() {
  if (call_) call_->remove_tap(this);
  call_ = nullptr;
}

void Sideband::end(int code, const std::string& reason) {
  if (ended_) return;
  ended_ = true;
  detach();
  socket_.close(code, reason);
  g_message("[%s] sideband %s closed: %s", call_id_.c_str(), id_.c_str(), reason.c_str());
  post_if_alive(lifetime_.watch(), [this] {
    auto on_end = on_end_;  // the owner may destroy this object (and on_end_) in the call
    on_end(*this);
  });
}

void Sideband::OnSocketText(WebSocket&, std::string text) {
  if (!call_ || !call_->inject_client_event(text)) {
    socket_.send_text(
        events::make_error_event("invalid_request_error", "call_ended",
                                 "the call " + call_id_ + " is over; event not relayed"));
  }
}

void Sideband::OnSocketBinary(WebSocket&, std::size_t bytes) {
  socket_.send_text(events::make_error_event(
      "invalid_request_error", "binary_not_supported",
      "a binary message of " + std::to_string(bytes) +
          " bytes was not relayed: realtime events are JSON text messages"));
}

void Sideband::OnSocketClosed(WebSocket&, int code, const std::string&) {
  end(close_code::kNormal, "sideband closed by its client (" + std::to_string(code) + ")");
}

void Sideband::OnSocketOverflow(WebSocket&, std::uint64_t backlog, std::uint64_t limit) {
  std::string what = "the sideband client does not read: " + std::to_string(backlog) +
                     " bytes wait for it (limit " + std::to_string(limit) + ")";
  socket_.send_text(
      events::make_error_event("invalid_request_error", "slow_consumer", what + "; closing"));
  end(close_code::kPolicyViolation, what);
}

void Sideband::OnCallServerEvent(const std::string& text) { socket_.send_text(text); }

void Sideband::OnCallEnded(const std::string& reason) {
  call_ = nullptr;  // the call already forgot its taps
  end(close_code::kNormal, "call ended: " + reason);
}

}  // namespace rtgw::relay
