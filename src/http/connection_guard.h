// SPDX-License-Identifier: MIT
// The HTTP server's connections: accepted here, bounded here, handed to libsoup.
//
// Owns: the listening socket (an Acceptor with the system's listen backlog, SOMAXCONN, that backs
// off when the process is out of descriptors, http/acceptor.h; libsoup gets each connection through
// soup_server_accept_iostream), the count of open connections (`limits.max_connections`: one more
// is answered 503 and closed), the share of them kept for privileged requests (below), the header
// deadline (`limits.header_timeout_seconds`, from the accept or the start of a request until its
// headers are in), the body deadlines (idle: `limits.idle_timeout_seconds` without a body byte;
// total: `limits.body_timeout_seconds` from the headers; rate: `limits.min_body_bytes_per_second`
// after a 2 s grace), the WebSocket frame filter under each connection
// (http/websocket_frame_limit.h) and refusing a request without reading the rest of it (`refuse()`:
// the response is written on the stolen connection, which is closed shortly after).
//
// Reserved connections: a request is privileged when it carries a valid key or token or asks for
// /healthz or /readyz (the route layer decides, from the headers). Other requests may hold at
// most max_connections - `limits.reserved_connections` connections; past that they are answered
// 503 `too_many_connections` as soon as their headers are in, so slow unauthenticated clients
// never take the last slots. A connection accepted into the reserved share gets at most 2 s for
// its headers (a probe or an SDK sends them at once).
//
// Why libsoup does not listen itself: libsoup 3.2.3 (Debian 12) leaks the socket of every
// keep-alive connection the client closes (CLOSE-WAIT for good; fixed upstream by d20c6601 in
// 3.3), and it has no header or idle deadline. A SoupServer without listeners of its own closes
// every connection once its response is written, which cannot leak, and the gateway says so with
// `Connection: close` (no HTTP keep-alive; WebSocket upgrades are unaffected). A connection that
// misses a deadline is shut down (both ways): libsoup then reads EOF and frees it as it does for
// a client that went away mid-request.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ref.h"
#include "config/config.h"
#include "http/acceptor.h"
#include "http/tls_identity.h"
#include "http/websocket_frame_limit.h"

namespace rtgw::http {

class ConnectionGuard {
 public:
  // `max_websocket_message_bytes`: the bound on a whole WebSocket message, fragments included.
  ConnectionGuard(SoupServer* server, const config::LimitsConfig& limits,
                  std::uint64_t max_websocket_message_bytes);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;
  // HTTPS: each accepted connection is wrapped in a GTlsServerConnection with the identity's
  // certificate of the moment (below the WebSocket frame filter, which reads plaintext).
  void use_tls(const TlsIdentity* identity) { tls_ = identity; }

  // Listens on `address`; throws std::runtime_error. Returns the bound port.
  int listen(GSocketAddress* address);
  void stop();

  // The request's headers are in (called from the early handler): its body, if any, must keep
  // arriving (idle, total and rate deadlines). `privileged`: see "Reserved connections".
  // `websocket`: a WebSocket handshake, whose frames the filter bounds from now on (any other
  // request's bytes pass it untouched). False when an unprivileged request finds its share
  // full: the caller refuses it (503).
  bool headers_received(SoupServerMessage* msg, bool privileged, bool websocket);
  // A body chunk of `bytes` arrived.
  void body_progress(SoupServerMessage* msg, std::size_t bytes);
  // `msg` became `socket`: a message that crosses the frame bound closes it with 1009.
  void websocket_upgraded(SoupServerMessage* msg, SoupWebsocketConnection* socket);

  // Answers `msg` with `status` and `body` (plus the response headers already set on `msg`),
  // `Connection: close`, without reading the rest of the request, and closes the connection.
  // Safe from the early handler and from a got-chunk handler.
  void refuse(SoupServerMessage* msg, int status, const std::string& content_type,
              const std::string& body);

  // The socket under `msg`'s connection; nullptr when unknown. (libsoup's own
  // soup_server_message_get_socket() returns none for connections handed over as a stream.)
  GSocket* socket_of(SoupServerMessage* msg);

  size_t open_connections() const { return connections_.size(); }
  // Connections held by unprivileged requests.
  size_t unprivileged_connections() const { return unprivileged_; }

 private:
  enum class State { kHeaders, kBody, kBusy, kClosing };
  struct Connection {
    GSocketConnection* stream;  // weak: libsoup owns it
    std::string remote;
    State state = State::kHeaders;
    gint64 deadline_us = 0;  // header or body idle deadline; 0 = none
    // The body (state kBody): when its headers came in, its total deadline, bytes so far.
    gint64 body_start_us = 0;
    gint64 body_deadline_us = 0;
    std::uint64_t body_bytes = 0;
    bool classified = false;    // headers_received() ran
    bool unprivileged = false;  // counted in unprivileged_
    std::shared_ptr<FrameLimitState> frames;
  };

  static void on_request_started(SoupServer*, SoupServerMessage* msg, gpointer data);
  static void on_request_read(SoupServer*, SoupServerMessage* msg, gpointer data);
  static void on_stream_finalized(gpointer data, GObject* where_the_object_was);
  void accept(GSocketConnection* stream);
  void forget(GSocketConnection* stream);
  Connection* find(SoupServerMessage* msg);
  void sweep();
  // Why `c` must be closed now ("" = it may go on).
  const char* missed_deadline(const Connection& c, gint64 now) const;
  size_t unprivileged_limit() const;

  SoupServer* server_;  // owns this guard's owner
  config::LimitsConfig limits_;
  std::uint64_t max_websocket_message_bytes_;
  const TlsIdentity* tls_ = nullptr;  // owned by the server; null: plain HTTP
  size_t unprivileged_ = 0;
  size_t closing_ = 0;  // connections in state kClosing
  std::unique_ptr<Acceptor> acceptor_;
  SignalConnection request_started_;
  SignalConnection request_read_;
  SourceGuard sweep_timer_;
  std::map<GSocketConnection*, Connection> connections_;
  std::map<std::string, GSocketConnection*> by_remote_;
  // Refused connections: written and shut down for writing, closed at `close_at_us` (a short
  // linger so the client reads the answer before the close resets what it still sends).
  struct Lingering {
    Ref<GIOStream> stream;
    gint64 close_at_us;
  };
  std::vector<Lingering> lingering_;
};

}  // namespace rtgw::http
