// SPDX-License-Identifier: MIT
#include "common/websocket.h"

namespace rtgw {

std::string clip_close_reason(const std::string& reason) {
  constexpr std::size_t kMaxReasonBytes = 123;
  if (reason.size() <= kMaxReasonBytes) return reason;
  std::size_t end = kMaxReasonBytes;
  // Back off continuation bytes (10xxxxxx) so a multi-byte character is never split.
  while (end > 0 && (static_cast<unsigned char>(reason[end]) & 0xC0) == 0x80) end--;
  return reason.substr(0, end);
}

bool sendable_close_code(int code) {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

WebSocket::WebSocket(SoupWebsocketConnection* connection, std::uint64_t max_message_bytes,
                     Listener* listener)
    : connection_(Ref<SoupWebsocketConnection>::retain(connection)), listener_(listener) {
  soup_websocket_connection_set_max_incoming_payload_size(connection, max_message_bytes);
  // Newer libsoup also bounds a whole fragmented message separately.
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(connection), "max-total-message-size"))
    g_object_set(connection, "max-total-message-size", static_cast<guint64>(max_message_bytes),
                 nullptr);
  gulong id = g_signal_connect(
      connection, "message",
      G_CALLBACK(+[](SoupWebsocketConnection*, gint type, GBytes* message, gpointer data) {
        auto* self = static_cast<WebSocket*>(data);
        gsize size = 0;
        const auto* bytes = static_cast<const char*>(g_bytes_get_data(message, &size));
        if (type == SOUP_WEBSOCKET_DATA_TEXT)
          self->listener_->OnSocketText(*self, std::string(bytes ? bytes : "", size));
        else
          self->listener_->OnSocketBinary(*self, size);
      }),
      this);
  signals_.emplace_back(connection, id);
  id = g_signal_connect(connection, "closed",
                        G_CALLBACK(+[](SoupWebsocketConnection* c, gpointer data) {
                          auto* self = static_cast<WebSocket*>(data);
                          if (self->closed_reported_) return;
                          self->closed_reported_ = true;
                          int code = soup_websocket_connection_get_close_code(c);
                          const char* reason = soup_websocket_connection_get_close_data(c);
                          self->listener_->OnSocketClosed(*self, code ? code : 1006,
                                                          reason ? reason : "");
                        }),
                        this);
  signals_.emplace_back(connection, id);
  id = g_signal_connect(connection, "error",
                        G_CALLBACK(+[](SoupWebsocketConnection*, GError* error, gpointer) {
                          // libsoup closes the connection itself after a protocol error (e.g.
                          // 1009 for a message above the limit); "closed" follows.
                          g_message("websocket error: %s", error ? error->message : "?");
                        }),
                        nullptr);
  signals_.emplace_back(connection, id);
}

WebSocket::~WebSocket() {
  signals_.clear();
  if (!connection_) return;
  auto state = soup_websocket_connection_get_state(connection_.get());
  if (state == SOUP_WEBSOCKET_STATE_CLOSED) return;
  if (state == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(connection_.get(), close_code::kGoingAway, nullptr);
  // Keep the connection until its close handshake ends (libsoup bounds it), so the peer gets
  // the close frame even though nobody listens any more.
  SoupWebsocketConnection* lingering = connection_.release();
  g_signal_connect(lingering, "closed",
                   G_CALLBACK(+[](SoupWebsocketConnection* c, gpointer) { g_object_unref(c); }),
                   nullptr);
}

bool WebSocket::open() const {
  return connection_ &&
         soup_websocket_connection_get_state(connection_.get()) == SOUP_WEBSOCKET_STATE_OPEN;
}

bool WebSocket::send_text(const std::string& text) {
  if (!open()) return false;
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(text.data(), text.size()));
  soup_websocket_connection_send_message(connection_.get(), SOUP_WEBSOCKET_DATA_TEXT, bytes.get());
  return true;
}

void WebSocket::close(int code, const std::string& reason) {
  if (!open()) return;
  std::string clipped = clip_close_reason(reason);
  soup_websocket_connection_close(connection_.get(), static_cast<gushort>(code),
                                  clipped.empty() ? nullptr : clipped.c_str());
}

std::string WebSocket::protocol() const {
  const char* p = connection_ ? soup_websocket_connection_get_protocol(connection_.get()) : nullptr;
  return p ? p : "";
}

}  // namespace rtgw
