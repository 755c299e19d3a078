// SPDX-License-Identifier: MIT
#include "http/client_watch.h"

#include <sys/socket.h>

#include <cerrno>
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
    source_ = Ref<GSource>::adopt(
        g_socket_create_source(socket, GIOCondition(G_IO_IN | G_IO_HUP | G_IO_ERR), nullptr));
    g_source_set_callback(source_.get(), G_SOURCE_FUNC(&ClientWatch::on_socket_ready), this,
                          nullptr);
    g_source_attach(source_.get(), nullptr);
  }
}

ClientWatch::~ClientWatch() {
  if (source_) g_source_destroy(source_.get());
}

gboolean ClientWatch::on_socket_ready(GSocket* socket, GIOCondition, gpointer data) {
  auto* self = static_cast<ClientWatch*>(data);
  char byte = 0;
  ssize_t n = recv(g_socket_get_fd(socket), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n > 0) return G_SOURCE_REMOVE;  // more bytes (a pipelined request): still there
  self->gone();                       // end of file, or the connection broke
  return G_SOURCE_REMOVE;             // `self` may be gone now
}

void ClientWatch::gone() {
  if (!on_gone_) return;
  // The callback may destroy this watch: run it from the stack.
  auto fn = std::exchange(on_gone_, nullptr);
  fn();
}

}  // namespace rtgw::http
