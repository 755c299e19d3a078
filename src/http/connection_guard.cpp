// SPDX-License-Identifier: MIT
#include "http/connection_guard.h"

#include <gio/gio.h>
#include <gio/gnetworking.h>

#include <algorithm>
#include <stdexcept>

#include "http/http_error.h"

namespace rtgw::http {
namespace {

constexpr guint kSweepMs = 250;
constexpr gint64 kLingerUs = 2 * G_USEC_PER_SEC;
constexpr size_t kMaxLingering = 256;      // beyond this, refused connections close at once
constexpr int kReservedHeaderSeconds = 2;  // headers deadline of a connection in the reserve
constexpr gint64 kBodyRateGraceUs = 2 * G_USEC_PER_SEC;  // before the minimum body rate applies

// Lingering connections hold a descriptor each: never more than a quarter of the connection cap
// (sized from the open-file limit, config/capacity.h), so refusals cannot fill the fd table.
size_t max_lingering(int max_connections) {
  return std::clamp<size_t>(static_cast<size_t>(std::max(max_connections, 0)) / 4, 16,
                            kMaxLingering);
}

std::string address_key(GSocketAddress* address) {
  if (!address || !G_IS_INET_SOCKET_ADDRESS(address)) return {};
  auto* inet = G_INET_SOCKET_ADDRESS(address);
  UniqueStr ip(g_inet_address_to_string(g_inet_socket_address_get_address(inet)));
  return std::string(ip.get()) + "|" + std::to_string(g_inet_socket_address_get_port(inet));
}

struct WeakSocket {
  explicit WeakSocket(SoupWebsocketConnection* socket) { g_weak_ref_init(&ref, socket); }
  ~WeakSocket() { g_weak_ref_clear(&ref); }
  WeakSocket(const WeakSocket&) = delete;
  WeakSocket& operator=(const WeakSocket&) = delete;
  GWeakRef ref;
};

std::string raw_response(int status, SoupMessageHeaders* extra, const std::string& content_type,
                         const std::string& body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                    soup_status_get_phrase(static_cast<guint>(status)) + "\r\n";
  if (extra) {
    SoupMessageHeadersIter iter;
    soup_message_headers_iter_init(&iter, extra);
    const char* name = nullptr;
    const char* value = nullptr;
    while (soup_message_headers_iter_next(&iter, &name, &value)) {
      if (g_ascii_strcasecmp(name, "Content-Length") == 0 ||
          g_ascii_strcasecmp(name, "Content-Type") == 0 ||
          g_ascii_strcasecmp(name, "Connection") == 0 ||
          g_ascii_strcasecmp(name, "Transfer-Encoding") == 0)
        continue;
      out += std::string(name) + ": " + value + "\r\n";
    }
  }
  out += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
  return out;
}

}  // namespace

ConnectionGuard::ConnectionGuard(SoupServer* server, const config::LimitsConfig& limits,
                                 std::uint64_t max_websocket_message_bytes)
    : server_(server), limits_(limits), max_websocket_message_bytes_(max_websocket_message_bytes) {
  request_started_ = SignalConnection(
      server_, g_signal_connect(server_, "request-started",
                                G_CALLBACK(&ConnectionGuard::on_request_started), this));
  request_read_ = SignalConnection(
      server_, g_signal_connect(server_, "request-read",
                                G_CALLBACK(&ConnectionGuard::on_request_read), this));
}

ConnectionGuard::~ConnectionGuard() {
  stop();
  for (auto& [stream, c] : connections_)
    g_object_weak_unref(G_OBJECT(stream), &ConnectionGuard::on_stream_finalized, this);
  connections_.clear();
  by_remote_.clear();
  for (auto& l : lingering_) g_io_stream_close(l.stream.get(), nullptr, nullptr);
  lingering_.clear();
}

int ConnectionGuard::listen(GSocketAddress* address) {
  acceptor_ = std::make_unique<Acceptor>([this](GSocketConnection* stream) { accept(stream); });
  int port = acceptor_->listen(address);
  sweep_timer_ = SourceGuard(g_timeout_add(
      kSweepMs,
      [](gpointer data) -> gboolean {
        static_cast<ConnectionGuard*>(data)->sweep();
        return G_SOURCE_CONTINUE;
      },
      this));
  return port;
}

void ConnectionGuard::stop() {
  if (!acceptor_) return;
  acceptor_->stop();
  sweep_timer_.cancel();
  acceptor_.reset();
}

void ConnectionGuard::accept(GSocketConnection* stream) {
  GSocket* socket = g_socket_connection_get_socket(stream);
  // Connections being closed (refused, or past a deadline) do not count: they go within 2 s.
  const size_t active = connections_.size() - closing_;
  if (active >= static_cast<size_t>(limits_.max_connections)) {
    // Over the limit: a short answer, and the connection goes (libsoup never sees it).
    std::string body = HttpError(503, "server_error", "too_many_connections",
                                 "the gateway has " + std::to_string(limits_.max_connections) +
                                     " open connections (limits.max_connections)")
                           .body();
    std::string response = raw_response(503, nullptr, "application/json", body);
    g_socket_set_blocking(socket, FALSE);
    g_socket_send(socket, response.data(), response.size(), nullptr, nullptr);
    g_socket_shutdown(socket, FALSE, TRUE, nullptr);
    auto held = Ref<GIOStream>::retain(G_IO_STREAM(stream));
    if (lingering_.size() < max_lingering(limits_.max_connections))
      lingering_.push_back({std::move(held), g_get_monotonic_time() + kLingerUs / 2});
    else
      g_io_stream_close(held.get(), nullptr, nullptr);
    return;
  }
  g_socket_set_option(socket, IPPROTO_TCP, TCP_NODELAY, TRUE, nullptr);
  auto local = Ref<GSocketAddress>::adopt(g_socket_connection_get_local_address(stream, nullptr));
  auto remote = Ref<GSocketAddress>::adopt(g_socket_connection_get_remote_address(stream, nullptr));
  if (!local || !remote) {
    g_io_stream_close(G_IO_STREAM(stream), nullptr, nullptr);
    return;
  }
  Connection c{stream, address_key(remote.get())};
  int header_seconds = limits_.header_timeout_seconds;
  if (active >= unprivileged_limit())  // in the reserve: a probe sends at once
    header_seconds = std::min(header_seconds, kReservedHeaderSeconds);
  c.deadline_us = g_get_monotonic_time() + gint64{header_seconds} * G_USEC_PER_SEC;
  c.frames = std::make_shared<FrameLimitState>(max_websocket_message_bytes_);
  // HTTPS: TLS over the socket, the frame filter over TLS (it reads WebSocket frames in the
  // clear). The handshake runs on libsoup's first read, inside the header deadline.
  Ref<GIOStream> transport = Ref<GIOStream>::retain(G_IO_STREAM(stream));
  if (tls_) {
    UniqueError tls_error;
    transport = Ref<GIOStream>::adopt(G_IO_STREAM(g_tls_server_connection_new(
        G_IO_STREAM(stream), tls_->certificate(), ErrorOut(tls_error))));
    if (!transport) {
      g_warning("TLS: cannot serve a connection: %s",
                tls_error ? tls_error->message : "no TLS backend");
      g_io_stream_close(G_IO_STREAM(stream), nullptr, nullptr);
      return;
    }
  }
  // libsoup reads the connection through the frame filter (http/websocket_frame_limit.h).
  Ref<GIOStream> filtered = wrap_with_frame_limit(transport.get(), c.frames);
  by_remote_[c.remote] = stream;
  connections_[stream] = std::move(c);
  g_object_weak_ref(G_OBJECT(stream), &ConnectionGuard::on_stream_finalized, this);
  UniqueError err;
  // libsoup takes its own reference (the filter holds the connection); the service drops its
  // one when this handler returns.
  if (!soup_server_accept_iostream(server_, filtered.get(), local.get(), remote.get(),
                                   ErrorOut(err)))
    g_io_stream_close(filtered.get(), nullptr, nullptr);
}

void ConnectionGuard::on_stream_finalized(gpointer data, GObject* where_the_object_was) {
  static_cast<ConnectionGuard*>(data)->forget(
      reinterpret_cast<GSocketConnection*>(where_the_object_was));
}

void ConnectionGuard::forget(GSocketConnection* stream) {
  auto it = connections_.find(stream);
  if (it == connections_.end()) return;
  if (it->second.unprivileged) unprivileged_--;
  if (it->second.state == State::kClosing) closing_--;
  auto r = by_remote_.find(it->second.remote);
  if (r != by_remote_.end() && r->second == stream) by_remote_.erase(r);
  connections_.erase(it);
}

ConnectionGuard::Connection* ConnectionGuard::find(SoupServerMessage* msg) {
  auto r = by_remote_.find(address_key(soup_server_message_get_remote_address(msg)));
  if (r == by_remote_.end()) return nullptr;
  auto it = connections_.find(r->second);
  return it == connections_.end() ? nullptr : &it->second;
}

GSocket* ConnectionGuard::socket_of(SoupServerMessage* msg) {
  Connection* c = find(msg);
  return c ? g_socket_connection_get_socket(c->stream) : nullptr;
}

void ConnectionGuard::on_request_started(SoupServer*, SoupServerMessage* msg, gpointer data) {
  auto* self = static_cast<ConnectionGuard*>(data);
  if (Connection* c = self->find(msg); c && c->state != State::kClosing) {
    c->state = State::kHeaders;
    c->deadline_us =
        g_get_monotonic_time() + gint64{self->limits_.header_timeout_seconds} * G_USEC_PER_SEC;
  }
}

size_t ConnectionGuard::unprivileged_limit() const {
  int reserved = std::max(limits_.reserved_connections, 0);
  return static_cast<size_t>(std::max(limits_.max_connections - reserved, 0));
}

bool ConnectionGuard::headers_received(SoupServerMessage* msg, bool privileged, bool websocket) {
  Connection* c = find(msg);
  if (c && c->frames) c->frames->expect_frames(websocket);
  if (!c || c->state == State::kClosing) return true;
  if (!c->classified) {
    c->classified = true;
    if (!privileged) {
      if (unprivileged_ >= unprivileged_limit()) return false;
      c->unprivileged = true;
      unprivileged_++;
    }
  }
  gint64 now = g_get_monotonic_time();
  c->state = State::kBody;
  c->deadline_us = now + gint64{limits_.idle_timeout_seconds} * G_USEC_PER_SEC;
  c->body_start_us = now;
  c->body_deadline_us = now + gint64{limits_.body_timeout_seconds} * G_USEC_PER_SEC;
  c->body_bytes = 0;
  return true;
}

void ConnectionGuard::body_progress(SoupServerMessage* msg, std::size_t bytes) {
  if (Connection* c = find(msg); c && c->state == State::kBody) {
    c->deadline_us = g_get_monotonic_time() + gint64{limits_.idle_timeout_seconds} * G_USEC_PER_SEC;
    c->body_bytes += bytes;
  }
}

void ConnectionGuard::websocket_upgraded(SoupServerMessage* msg, SoupWebsocketConnection* socket) {
  Connection* c = find(msg);
  if (!c || !c->frames) return;
  // A weak reference: the socket owns (through its stream) the state that holds this.
  auto weak = std::make_shared<WeakSocket>(socket);
  std::string remote = c->remote;
  c->frames->arm([weak, remote](std::uint64_t size, std::uint64_t limit) {
    auto socket = Ref<SoupWebsocketConnection>::adopt(
        static_cast<SoupWebsocketConnection*>(g_weak_ref_get(&weak->ref)));
    if (!socket || soup_websocket_connection_get_state(socket.get()) != SOUP_WEBSOCKET_STATE_OPEN)
      return;
    g_message("websocket %s: a message reached %" G_GUINT64_FORMAT
              " bytes in its fragments, over the bound of %" G_GUINT64_FORMAT "; closing with 1009",
              remote.c_str(), static_cast<guint64>(size), static_cast<guint64>(limit));
    std::string reason = "message exceeds the limit of " + std::to_string(limit) + " bytes";
    soup_websocket_connection_close(socket.get(), 1009, reason.c_str());
  });
}

void ConnectionGuard::on_request_read(SoupServer*, SoupServerMessage* msg, gpointer data) {
  // The whole request is in: the handler may take its time (a call waits for its worker, a
  // WebSocket lives on), so no deadline from here.
  auto* self = static_cast<ConnectionGuard*>(data);
  if (Connection* c = self->find(msg); c && c->state != State::kClosing) {
    c->state = State::kBusy;
    c->deadline_us = 0;
  }
}

void ConnectionGuard::refuse(SoupServerMessage* msg, int status, const std::string& content_type,
                             const std::string& body) {
  std::string response =
      raw_response(status, soup_server_message_get_response_headers(msg), content_type, body);
  Connection* c = find(msg);
  GSocketConnection* socket_stream = c ? c->stream : nullptr;
  // libsoup lets go of the connection (as for a WebSocket): nothing more of the request is read.
  auto stream = Ref<GIOStream>::adopt(soup_server_message_steal_connection(msg));
  if (!stream) return;
  // A small answer into an empty send buffer; never wait for a client that does not read.
  if (socket_stream) {
    GSocket* socket = g_socket_connection_get_socket(socket_stream);
    g_socket_set_blocking(socket, FALSE);
    g_socket_send(socket, response.data(), response.size(), nullptr, nullptr);
    g_socket_shutdown(socket, FALSE, TRUE, nullptr);
  }
  if (c) {
    if (c->state != State::kClosing) closing_++;
    c->state = State::kClosing;
    c->deadline_us = 0;
  }
  if (lingering_.size() < max_lingering(limits_.max_connections))
    lingering_.push_back({std::move(stream), g_get_monotonic_time() + kLingerUs});
  else
    g_io_stream_close(stream.get(), nullptr, nullptr);
}

void ConnectionGuard::sweep() {
  gint64 now = g_get_monotonic_time();
  for (auto it = lingering_.begin(); it != lingering_.end();) {
    if (now < it->close_at_us) {
      ++it;
      continue;
    }
    g_io_stream_close(it->stream.get(), nullptr, nullptr);
    it = lingering_.erase(it);
  }
  std::vector<GSocketConnection*> closed;
  for (auto& [stream, c] : connections_) {
    if (g_io_stream_is_closed(G_IO_STREAM(stream))) {
      closed.push_back(stream);
      continue;
    }
    const char* missed = missed_deadline(c, now);
    if (!missed) continue;
    // Missed its deadline: shut it down both ways. libsoup, which is reading it, sees EOF and
    // disconnects it as for a client that went away.
    g_debug("closing HTTP connection %s: %s", c.remote.c_str(), missed);
    g_socket_shutdown(g_socket_connection_get_socket(stream), TRUE, TRUE, nullptr);
    closing_++;
    c.state = State::kClosing;
    c.deadline_us = 0;
  }
  for (GSocketConnection* stream : closed) {
    g_object_weak_unref(G_OBJECT(stream), &ConnectionGuard::on_stream_finalized, this);
    forget(stream);
  }
}

const char* ConnectionGuard::missed_deadline(const Connection& c, gint64 now) const {
  if (c.deadline_us != 0 && now >= c.deadline_us)
    return c.state == State::kHeaders ? "header deadline passed" : "body idle deadline passed";
  if (c.state != State::kBody) return nullptr;
  if (now >= c.body_deadline_us) return "body total deadline passed";
  // The body must keep min_body_bytes_per_second on average once the grace is over: 1 byte
  // every 20 s no longer holds a connection.
  gint64 late = now - c.body_start_us - kBodyRateGraceUs;
  if (limits_.min_body_bytes_per_second > 0 && late > 0 &&
      static_cast<double>(c.body_bytes) < static_cast<double>(limits_.min_body_bytes_per_second) *
                                              static_cast<double>(late) / G_USEC_PER_SEC)
    return "body below the minimum rate";
  return nullptr;
}

}  // namespace rtgw::http
