// SPDX-License-Identifier: MIT
#include "cluster/peer_client.h"

#include <utility>

#include "common/main_thread.h"
#include "common/websocket.h"
#include "events/element_messages.h"

namespace rtgw::cluster {
namespace {

constexpr guint kPeerTimeoutSeconds = 5;

std::string error_text(GError* e) { return e ? e->message : "unknown error"; }

}  // namespace

// Client socket <-> owner's socket. Both are rtgw::WebSocket, for their bounds: message size
// (1009) and what waits towards a peer that does not read (OnSocketOverflow).
struct PeerClient::Relay : public WebSocket::Listener {
  Relay(PeerClient* pc, SoupWebsocketConnection* client_connection,
        SoupWebsocketConnection* owner_connection, const RelayLimits& limits)
      : owner_client(pc),
        client(client_connection, limits.max_message_bytes, this),
        owner(owner_connection, limits.max_message_bytes, this),
        idle_timeout_seconds(limits.idle_timeout_seconds),
        last_message_us(g_get_monotonic_time()) {
    client.limit_outgoing(limits.max_outgoing_bytes);
    owner.limit_outgoing(limits.max_outgoing_bytes);
    if (idle_timeout_seconds > 0)
      idle_timer = run_every_seconds(1, [this] {
        gint64 idle_us = g_get_monotonic_time() - last_message_us;
        if (idle_us < gint64{idle_timeout_seconds} * G_USEC_PER_SEC) return true;
        end(nullptr, close_code::kNormal,
            "idle timeout: no message for " + std::to_string(idle_timeout_seconds) + " s");
        return false;
      });
  }

  WebSocket& other(WebSocket& from) { return &from == &client ? owner : client; }

  void OnSocketText(WebSocket& from, std::string text) override {
    last_message_us = g_get_monotonic_time();
    other(from).send_text(text);
  }
  void OnSocketBinary(WebSocket& from, std::size_t bytes) override {
    last_message_us = g_get_monotonic_time();
    // As the owner's sideband answers it: events are JSON text.
    if (&from == &client)
      client.send_text(events::make_error_event(
          "invalid_request_error", "binary_not_supported",
          "a binary message of " + std::to_string(bytes) +
              " bytes was not relayed: realtime events are JSON text messages"));
    else
      g_message("cluster: sideband relay: dropped a binary message of %zu bytes from the owner",
                bytes);
  }
  void OnSocketClosed(WebSocket& from, int code, const std::string& reason) override {
    end(&from, sendable_close_code(code) ? code : close_code::kNormal, reason);
  }
  void OnSocketOverflow(WebSocket& slow, std::uint64_t backlog, std::uint64_t limit) override {
    std::string what = std::string(&slow == &client ? "the sideband client" : "the owner") +
                       " does not read: " + std::to_string(backlog) + " bytes wait for it (limit " +
                       std::to_string(limit) + ")";
    g_warning("cluster: sideband relay: %s; closing", what.c_str());
    if (&slow == &client)
      client.send_text(
          events::make_error_event("invalid_request_error", "slow_consumer", what + "; closing"));
    slow.close(close_code::kPolicyViolation, what);
    end(&slow, close_code::kNormal, what);
  }

  // Closes both sides (`from`, already closing, passes its code on to the other); the relay is
  // dropped from the loop, not from inside a signal.
  void end(WebSocket* from, int code, const std::string& reason) {
    if (done) return;
    done = true;
    idle_timer.cancel();
    if (from)
      other(*from).close(code, reason);
    else {
      client.close(code, reason);
      owner.close(code, reason);
    }
    PeerClient* pc = owner_client;
    std::weak_ptr<bool> alive = pc->alive_;
    post_to_main([pc, alive, self = this] {
      if (alive.lock()) pc->finished(self);
    });
  }

  PeerClient* owner_client;
  WebSocket client;
  WebSocket owner;
  int idle_timeout_seconds;
  gint64 last_message_us;
  SourceGuard idle_timer;
  bool done = false;
};

PeerClient::PeerClient(std::string internal_secret, RelayLimits relay_limits)
    : secret_(std::move(internal_secret)), relay_limits_(relay_limits) {
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
  relays_.push_back(std::make_unique<Relay>(this, client, owner, relay_limits_));
}

}  // namespace rtgw::cluster
