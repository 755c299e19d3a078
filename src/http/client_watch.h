// SPDX-License-Identifier: MIT
// Noticing that the client of a held-open request went away.
//
// Owns: watching the connection of a request whose response is pending (a paused
// SoupServerMessage, e.g. a call waiting for its worker). libsoup 3.2 reads nothing from such a
// connection, so it would only notice a closed one when writing the answer; this watch polls the
// socket for the peer's close (POLLRDHUP: its FIN, even behind bytes it pipelined after its
// request, which nobody reads while the response is pending) or an error, never consuming, and
// also follows libsoup's own "disconnected" signal.
//
// Threads: main loop only. `on_gone` runs at most once, on the main loop, never from inside the
// constructor; destroying the watch stops it.
#pragma once

#include <libsoup/soup.h>

#include <functional>

#include "common/ref.h"

namespace rtgw::http {

class ClientWatch {
 public:
  // `socket` is the connection's (see ConnectionGuard::socket_of); nullptr: libsoup's signal only.
  ClientWatch(SoupServerMessage* msg, GSocket* socket, std::function<void()> on_gone);
  ~ClientWatch();
  ClientWatch(const ClientWatch&) = delete;
  ClientWatch& operator=(const ClientWatch&) = delete;

 private:
  static gboolean on_socket_ready(GSocket* socket, GIOCondition condition, gpointer data);
  void gone();

  std::function<void()> on_gone_;
  Ref<GSource> source_;  // the socket watch, attached to the default context
  SignalConnection disconnected_;
};

}  // namespace rtgw::http
