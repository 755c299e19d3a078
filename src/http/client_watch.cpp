// SPDX-License-Identifier: MIT
#include "http/client_watch.h"

#include <poll.h>

#include <utility>

namespace rtgw::http {

ClientWatch::ClientWatch(SoupServerMessage* msg, GSocket* socket, std::function<void()> on_gone)
    : on_gone_(std::move(on_gone)) {
  gulong id =
      g_signal_connect(msg, "disconnected", G_CALLBACK(+[](SoupServerMessage*, gpointer data) {
                         static_cast<ClientWatch*>(data)->gone();
                       }),
                       this);
  disconnected_ = SignalConnection(msg, id);
  if (socket) {
    // Not G_IO_IN: bytes the client pipelines after its request would keep it readable (a busy
    // loop), and they say nothing about the client leaving. POLLRDHUP (Linux) is its FIN, even
    // behind unread bytes; GLib passes the bit through to poll().
    source_ = Ref<GSource>::adopt(
        g_socket_create_source(socket, GIOCondition(G_IO_HUP | G_IO_ERR | POLLRDHUP), nullptr));
    g_source_set_callback(source_.get(), G_SOURCE_FUNC(&ClientWatch::on_socket_ready), this,
                          nullptr);
    g_source_attach(source_.get(), nullptr);
  }
}

ClientWatch::~ClientWatch() {
  if (source_) g_source_destroy(source_.get());
}

gboolean ClientWatch::on_socket_ready(GSocket*, GIOCondition condition, gpointer data) {
  auto* self = static_cast<ClientWatch*>(data);
  if (!(condition & (G_IO_HUP | G_IO_ERR | POLLRDHUP))) return G_SOURCE_CONTINUE;
  self->gone();            // the client closed (or half-closed), or the connection broke
  return G_SOURCE_REMOVE;  // `self` may be gone now
}

void ClientWatch::gone() {
  if (!on_gone_) return;
  // The callback may destroy this watch: run it from the stack.
  auto fn = std::exchange(on_gone_, nullptr);
  fn();
}

}  // namespace rtgw::http
