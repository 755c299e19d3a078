// SPDX-License-Identifier: MIT
// The HTTP server's connections: accepted here, bounded here, handed to libsoup.
//
// Owns: the listening socket (an Acceptor that backs off; libsoup gets each connection through
// soup_server_accept_iostream), the count of open connections (`limits.max_connections`: one more
// is answered 503 and closed), the header deadline (`limits.header_timeout_seconds`, from the
// accept or the start of a request until its headers are in), the body idle deadline
// (`limits.idle_timeout_seconds` without a body byte) and refusing a request without reading the
// rest of it (`refuse()`: the response is written on the stolen connection, which is closed
// shortly after).
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

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ref.h"
#include "config/config.h"
#include "http/acceptor.h"

namespace rtgw::http {

class ConnectionGuard {
 public:
  ConnectionGuard(SoupServer* server, const config::LimitsConfig& limits);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // Listens on `address`; throws std::runtime_error. Returns the bound port.
  int listen(GSocketAddress* address);
  void stop();

  // The request's headers are in (called from the early handler): its body, if any, must keep
  // arriving (a stall of idle_timeout_seconds closes the connection).
  void headers_received(SoupServerMessage* msg);
  // A body chunk arrived.
  void body_progress(SoupServerMessage* msg);

  // Answers `msg` with `status` and `body` (plus the response headers already set on `msg`),
  // `Connection: close`, without reading the rest of the request, and closes the connection.
  // Safe from the early handler and from a got-chunk handler.
  void refuse(SoupServerMessage* msg, int status, const std::string& content_type,
              const std::string& body);

  // The socket under `msg`'s connection; nullptr when unknown. (libsoup's own
  // soup_server_message_get_socket() returns none for connections handed over as a stream.)
  GSocket* socket_of(SoupServerMessage* msg);

  size_t open_connections() const { return connections_.size(); }

 private:
  enum class State { kHeaders, kBody, kBusy, kClosing };
  struct Connection {
    GSocketConnection* stream;  // weak: libsoup owns it
    std::string remote;
    State state = State::kHeaders;
    gint64 deadline_us = 0;  // 0 = none
  };

  static void on_request_started(SoupServer*, SoupServerMessage* msg, gpointer data);
  static void on_request_read(SoupServer*, SoupServerMessage* msg, gpointer data);
  static void on_stream_finalized(gpointer data, GObject* where_the_object_was);
  void accept(GSocketConnection* stream);
  void forget(GSocketConnection* stream);
  Connection* find(SoupServerMessage* msg);
  void sweep();

  SoupServer* server_;  // owns this guard's owner
  config::LimitsConfig limits_;
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
