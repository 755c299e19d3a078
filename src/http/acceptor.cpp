// SPDX-License-Identifier: MIT
#include "http/acceptor.h"

#include <gio/gnetworking.h>

#include <algorithm>
#include <stdexcept>

namespace rtgw::http {

Acceptor::Acceptor(OnConnection on_connection) : on_connection_(std::move(on_connection)) {}

Acceptor::~Acceptor() { stop(); }

int Acceptor::listen(GSocketAddress* address) {
  listener_ = Ref<GSocketListener>::adopt(g_socket_listener_new());
  // GSocketListener's default backlog is 10: a burst of connects overflows it and waits 1 s for
  // the SYN retransmit. The system default (SOMAXCONN, capped by net.core.somaxconn) instead; it
  // must be set before the address is added.
  g_socket_listener_set_backlog(listener_.get(), SOMAXCONN);
  UniqueError err;
  Ref<GSocketAddress> effective;
  if (!g_socket_listener_add_address(listener_.get(), address, G_SOCKET_TYPE_STREAM,
                                     G_SOCKET_PROTOCOL_TCP, nullptr, effective.out(),
                                     ErrorOut(err)))
    throw std::runtime_error(err ? err->message : "cannot listen");
  cancellable_ = Ref<GCancellable>::adopt(g_cancellable_new());
  accept_next();
  return g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective.get()));
}

void Acceptor::stop() {
  if (!listener_) return;
  resume_.cancel();
  g_cancellable_cancel(cancellable_.get());
  g_socket_listener_close(listener_.get());
  listener_.reset();
  lifetime_.end();  // the cancelled accept's callback finds nobody
}

void Acceptor::accept_next() {
  if (!listener_) return;
  auto ready = async_ready([alive = lifetime_.watch(), this](GObject* source, GAsyncResult* r) {
    if (!alive) {
      // Stopped: finish the accept so that a connection it took is closed, not leaked.
      auto conn = Ref<GSocketConnection>::adopt(
          g_socket_listener_accept_finish(G_SOCKET_LISTENER(source), r, nullptr, nullptr));
      if (conn) g_io_stream_close(G_IO_STREAM(conn.get()), nullptr, nullptr);
      return;
    }
    on_accepted(source, r);
  });
  g_socket_listener_accept_async(listener_.get(), cancellable_.get(), ready.callback,
                                 ready.user_data);
}

void Acceptor::on_accepted(GObject* source, GAsyncResult* result) {
  UniqueError err;
  auto conn = Ref<GSocketConnection>::adopt(
      g_socket_listener_accept_finish(G_SOCKET_LISTENER(source), result, nullptr, ErrorOut(err)));
  if (!conn) {
    if (err && g_error_matches(err.get(), G_IO_ERROR, G_IO_ERROR_CANCELLED)) return;
    on_failure(err.get());
    return;
  }
  if (pause_ms_ && unlogged_) {
    g_message("accepting connections again (%llu more accept failure(s) since the last line)",
              static_cast<unsigned long long>(unlogged_));
    unlogged_ = 0;
  }
  pause_ms_ = 0;
  on_connection_(conn.get());
  accept_next();
}

void Acceptor::on_failure(const GError* error) {
  ++failures_;
  pause_ms_ = pause_ms_ ? std::min(pause_ms_ * 2, kLongestPauseMs) : kFirstPauseMs;
  const bool out_of_fds =
      error && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES);
  gint64 now = g_get_monotonic_time();
  if (logged_us_ == 0 || now - logged_us_ >= kLogEveryUs) {
    g_warning(
        "cannot accept a connection: %s%s; not accepting for %u ms (%llu more failure(s) "
        "since the last line; logged at most every %lld s)",
        error ? error->message : "unknown error",
        out_of_fds ? " (the process is out of file descriptors: see limits.max_calls and "
                     "limits.max_connections)"
                   : "",
        pause_ms_, static_cast<unsigned long long>(unlogged_),
        static_cast<long long>(kLogEveryUs / G_USEC_PER_SEC));
    logged_us_ = now;
    unlogged_ = 0;
  } else {
    ++unlogged_;
  }
  resume_ = run_after_ms(pause_ms_, [this] {
    resume_.forget();  // fired: it removes itself
    accept_next();
  });
}

}  // namespace rtgw::http
