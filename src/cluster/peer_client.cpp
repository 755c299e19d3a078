// SPDX-License-Identifier: MIT
#include "cluster/peer_client.h"

#include <utility>

#include "common/main_thread.h"

namespace rtgw::cluster {
namespace {

constexpr guint kPeerTimeoutSeconds = 5;

std::string error_text(GError* e) { return e ? e->message : "unknown error"; }

}  // namespace

struct PeerClient::Relay {
  PeerClient* owner_client = nullptr;
  Ref<SoupWebsocketConnection> client;
  Ref<SoupWebsocketConnection> owner;
  SignalConnection client_message, owner_message, client_closed, owner_closed;
  bool done = false;

  static void on_message(SoupWebsocketConnection* from, gint type, GBytes* message, gpointer data) {
    auto* r = static_cast<Relay*>(data);
    SoupWebsocketConnection* to = from == r->client.get() ? r->owner.get() : r->client.get();
    if (soup_websocket_connection_get_state(to) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_send_message(to, static_cast<SoupWebsocketDataType>(type), message);
  }
  static void on_closed(SoupWebsocketConnection* from, gpointer data) {
    auto* r = static_cast<Relay*>(data);
    if (r->done) return;
    r->done = true;
    SoupWebsocketConnection* to = from == r->client.get() ? r->owner.get() : r->client.get();
    gushort code = soup_websocket_connection_get_close_code(from);
    const char* reason = soup_websocket_connection_get_close_data(from);
    if (soup_websocket_connection_get_state(to) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(
          to, code ? code : static_cast<gushort>(SOUP_WEBSOCKET_CLOSE_NORMAL), reason);
    // Dropped from the loop, not from inside the signal.
    PeerClient* pc = r->owner_client;
    std::weak_ptr<bool> alive = pc->alive_;
    post_to_main([pc, alive, r] {
      if (alive.lock()) pc->finished(r);
    });
  }
};

PeerClient::PeerClient(std::string internal_secret) : secret_(std::move(internal_secret)) {
  session_ = Ref<SoupSession>::adopt(
      soup_session_new_with_options("timeout", kPeerTimeoutSeconds, "idle-timeout", 30,
                                    "user-agent", "realtime-gateway-peer", nullptr));
}

PeerClient::~PeerClient() {
  *alive_ = false;
  relays_.clear();
}

void PeerClient::finished(Relay* relay) {
  relays_.remove_if([relay](const std::unique_ptr<Relay>& r) { return r.get() == relay; });
}

Ref<SoupMessage> PeerClient::new_message(const char* method, const std::string& url,
                                         const std::string& authorization) const {
  auto message = Ref<SoupMessage>::adopt(soup_message_new(method, url.c_str()));
  if (!message) return message;
  SoupMessageHeaders* h = soup_message_get_request_headers(message.get());
  soup_message_headers_replace(h, kInternalHeader, secret_.c_str());
  if (!authorization.empty())
    soup_message_headers_replace(h, "Authorization", authorization.c_str());
  return message;
}

void PeerClient::forward(const std::string& method, const std::string& url,
                         const std::string& authorization,
                         std::function<void(const PeerResponse&)> done) {
  Ref<SoupMessage> message = new_message(method.c_str(), url, authorization);
  if (!message) {
    post_to_main([done, url] { done({0, {}, {}, "invalid peer URL " + url}); });
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  auto ready =
      async_ready([message, done = std::move(done), alive](GObject* source, GAsyncResult* result) {
        UniqueError err;
        auto bytes = Ref<GBytes>::adopt(
            soup_session_send_and_read_finish(SOUP_SESSION(source), result, ErrorOut(err)));
        if (!alive.lock()) return;
        PeerResponse r;
        if (!bytes) {
          r.error = error_text(err.get());
        } else {
          r.status = static_cast<int>(soup_message_get_status(message.get()));
          const char* type = soup_message_headers_get_content_type(
              soup_message_get_response_headers(message.get()), nullptr);
          r.content_type = type ? type : "application/json";
          gsize size = 0;
          auto* data = static_cast<const char*>(g_bytes_get_data(bytes.get(), &size));
          if (data) r.body.assign(data, size);
        }
        done(r);
      });
  soup_session_send_and_read_async(session_.get(), message.get(), G_PRIORITY_DEFAULT, nullptr,
                                   ready.callback, ready.user_data);
}

void PeerClient::open_socket(
    const std::string& url, const std::string& authorization,
    std::function<void(Ref<SoupWebsocketConnection>, const PeerResponse&)> done) {
  Ref<SoupMessage> message = new_message("GET", url, authorization);
  if (!message) {
    post_to_main([done, url] { done({}, {0, {}, {}, "invalid peer URL " + url}); });
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  auto ready =
      async_ready([message, done = std::move(done), alive](GObject* source, GAsyncResult* result) {
        UniqueError err;
        auto connection = Ref<SoupWebsocketConnection>::adopt(
            soup_session_websocket_connect_finish(SOUP_SESSION(source), result, ErrorOut(err)));
        if (!alive.lock()) return;
        PeerResponse r;
        if (!connection) {
          r.status = static_cast<int>(soup_message_get_status(message.get()));
          r.error = error_text(err.get());
          // libsoup keeps no body for a refused upgrade: the status says enough.
        }
        done(std::move(connection), r);
      });
  soup_session_websocket_connect_async(session_.get(), message.get(), nullptr, nullptr,
                                       G_PRIORITY_DEFAULT, nullptr, ready.callback,
                                       ready.user_data);
}

void PeerClient::relay(SoupWebsocketConnection* client, SoupWebsocketConnection* owner) {
  auto r = std::make_unique<Relay>();
  r->owner_client = this;
  r->client = Ref<SoupWebsocketConnection>::retain(client);
  r->owner = Ref<SoupWebsocketConnection>::retain(owner);
  // Relayed messages may be as large as the owner accepts.
  soup_websocket_connection_set_max_incoming_payload_size(client, 0);
  soup_websocket_connection_set_max_incoming_payload_size(owner, 0);
  Relay* raw = r.get();
  r->client_message = SignalConnection(
      client, g_signal_connect(client, "message", G_CALLBACK(&Relay::on_message), raw));
  r->owner_message = SignalConnection(
      owner, g_signal_connect(owner, "message", G_CALLBACK(&Relay::on_message), raw));
  r->client_closed = SignalConnection(
      client, g_signal_connect(client, "closed", G_CALLBACK(&Relay::on_closed), raw));
  r->owner_closed = SignalConnection(
      owner, g_signal_connect(owner, "closed", G_CALLBACK(&Relay::on_closed), raw));
  relays_.push_back(std::move(r));
}

}  // namespace rtgw::cluster
