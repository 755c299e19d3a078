// SPDX-License-Identifier: MIT
#include "common/websocket.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>
#include <vector>

#include "common/main_thread.h"

namespace rtgw {

void OutgoingBacklog::sync(bool writable, std::optional<std::uint64_t> written_total) {
  if (!written_total) {
    // No byte count: a writable socket means libsoup's queue is being emptied right now.
    if (writable) queued_ = taken_ = 0;
    return;
  }
  if (!base_written_ || *written_total < *base_written_) {
    base_written_ = written_total;
    taken_ = 0;
    return;
  }
  taken_ = *written_total - *base_written_;
  if (taken_ >= queued_) {
    // Everything queued is in the kernel: start over, which also drops what the count cannot
    // tell apart (TLS records, pings and pongs libsoup sent itself).
    queued_ = taken_ = 0;
    base_written_ = written_total;
  }
}

bool OutgoingBacklog::admit(std::uint64_t bytes) {
  if (backlog() + bytes > limit_) return false;
  queued_ += bytes;
  return true;
}

std::uint64_t websocket_frame_bytes(std::uint64_t payload, bool masked) {
  std::uint64_t header = 2;
  if (payload >= 65536)
    header += 8;
  else if (payload >= 126)
    header += 2;
  return header + (masked ? 4 : 0) + payload;
}

namespace {

// The TCP socket under a connection's stream (through TLS and libsoup's wrappers), or -1.
int find_socket_fd(GIOStream* stream) {
  auto current = Ref<GIOStream>::retain(stream);
  for (int level = 0; level < 4 && current; level++) {
    if (G_IS_SOCKET_CONNECTION(current.get()))
      return g_socket_get_fd(g_socket_connection_get_socket(G_SOCKET_CONNECTION(current.get())));
    GIOStream* base = nullptr;
    for (const char* property : {"base-io-stream", "base-iostream"}) {
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(current.get()), property)) {
        g_object_get(current.get(), property, &base, nullptr);
        break;
      }
    }
    current = Ref<GIOStream>::adopt(base);
  }
  return -1;
}

// Bytes the kernel has taken from the application on `fd` since it connected: acknowledged by
// the peer plus still in the send queue.
std::optional<std::uint64_t> kernel_written(int fd) {
  if (fd < 0) return std::nullopt;
  struct tcp_info info = {};
  socklen_t length = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 ||
      length < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)
    return std::nullopt;
  int unsent = 0;
  if (ioctl(fd, SIOCOUTQ, &unsent) != 0 || unsent < 0) return std::nullopt;
  return info.tcpi_bytes_acked + static_cast<std::uint64_t>(unsent);
}

// Keeps the connection until its close handshake ends (libsoup bounds it), so the peer gets the
// close frame even when nobody holds the connection any more.
void linger_until_closed(SoupWebsocketConnection* c) {
  if (soup_websocket_connection_get_state(c) == SOUP_WEBSOCKET_STATE_CLOSED) return;
  g_object_ref(c);
  g_signal_connect(c, "closed", G_CALLBACK(+[](SoupWebsocketConnection* closed, gpointer) {
                     g_object_unref(closed);
                   }),
                   nullptr);
}

}  // namespace

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
    : connection_(Ref<SoupWebsocketConnection>::retain(connection)),
      listener_(listener),
      max_message_bytes_(max_message_bytes) {
  // libsoup drops a connection whose frame exceeds its own limit without a close frame (the peer
  // sees 1006), so the limit the peer is told about (1009) is ours, checked per message; libsoup's
  // only bounds memory, well above it.
  guint64 hard_limit = max_message_bytes * kHardLimitFactor;
  soup_websocket_connection_set_max_incoming_payload_size(connection, hard_limit);
  // Newer libsoup also bounds a whole fragmented message separately.
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(connection), "max-total-message-size"))
    g_object_set(connection, "max-total-message-size", hard_limit, nullptr);
  gulong id = g_signal_connect(
      connection, "message",
      G_CALLBACK(+[](SoupWebsocketConnection*, gint type, GBytes* message, gpointer data) {
        auto* self = static_cast<WebSocket*>(data);
        gsize size = 0;
        const auto* bytes = static_cast<const char*>(g_bytes_get_data(message, &size));
        if (size > self->max_message_bytes_) {
          self->close(close_code::kMessageTooBig,
                      "message of " + std::to_string(size) + " bytes exceeds the limit of " +
                          std::to_string(self->max_message_bytes_) + " bytes");
          return;
        }
        if (type == SOUP_WEBSOCKET_DATA_TEXT)
          self->listener_->OnSocketText(*self, std::string(bytes ? bytes : "", size));
        else
          self->listener_->OnSocketBinary(*self, size);
      }),
      this);
  signals_.emplace_back(connection, id);
  id = g_signal_connect(
      connection, "closed", G_CALLBACK(+[](SoupWebsocketConnection* c, gpointer data) {
        auto* self = static_cast<WebSocket*>(data);
        if (self->closed_reported_) return;
        self->closed_reported_ = true;
        int code = soup_websocket_connection_get_close_code(c);
        const char* reason = soup_websocket_connection_get_close_data(c);
        self->listener_->OnSocketClosed(*self, code ? code : 1006, reason ? reason : "");
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
  socket_fd_ = find_socket_fd(soup_websocket_connection_get_io_stream(connection));
  // Extensions (permessage-deflate) change the bytes on the wire: count by writability then.
  bool exact = socket_fd_ >= 0 && !soup_websocket_connection_get_extensions(connection);
  if (!exact) socket_fd_ = -1;
  backlog_.sync(false, kernel_written(socket_fd_));
}

WebSocket::~WebSocket() {
  signals_.clear();
  if (!connection_) return;
  auto state = soup_websocket_connection_get_state(connection_.get());
  if (state == SOUP_WEBSOCKET_STATE_CLOSED) return;
  if (close_wait_) {
    // A close waits for a frame boundary: it runs on by itself (bounded) and keeps the
    // connection until the handshake ends.
    close_wait_.forget();
    return;
  }
  if (state == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close(connection_.get(), close_code::kGoingAway, nullptr);
  // Keep the connection until its close handshake ends (libsoup bounds it), so the peer gets
  // the close frame even though nobody listens any more.
  linger_until_closed(connection_.get());
}

bool WebSocket::open() const {
  return connection_ && !close_wait_ &&
         soup_websocket_connection_get_state(connection_.get()) == SOUP_WEBSOCKET_STATE_OPEN;
}

bool WebSocket::send_text(const std::string& text) {
  if (!open()) return false;
  if (!overflowing_) {
    GOutputStream* out =
        g_io_stream_get_output_stream(soup_websocket_connection_get_io_stream(connection_.get()));
    bool writable = G_IS_POLLABLE_OUTPUT_STREAM(out) &&
                    g_pollable_output_stream_is_writable(G_POLLABLE_OUTPUT_STREAM(out));
    backlog_.sync(writable, kernel_written(socket_fd_));
    bool masked = soup_websocket_connection_get_connection_type(connection_.get()) ==
                  SOUP_WEBSOCKET_CONNECTION_CLIENT;
    if (!backlog_.admit(websocket_frame_bytes(text.size(), masked))) {
      if (overflowed_) return false;
      overflowed_ = true;
      std::uint64_t backlog = backlog_.backlog();
      g_warning("websocket: the peer does not read: %" G_GUINT64_FORMAT
                " bytes wait for it (bound %" G_GUINT64_FORMAT "); closing with 1008",
                static_cast<guint64>(backlog), static_cast<guint64>(backlog_.limit()));
      overflowing_ = true;
      listener_->OnSocketOverflow(*this, backlog, backlog_.limit());
      overflowing_ = false;
      close(close_code::kPolicyViolation,
            "peer not reading: over " + std::to_string(backlog_.limit()) + " bytes queued");
      return false;
    }
  }
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(text.data(), text.size()));
  soup_websocket_connection_send_message(connection_.get(), SOUP_WEBSOCKET_DATA_TEXT, bytes.get());
  return true;
}

namespace {

// The codes libsoup 3.2 itself puts in a close frame; for any other it sends 1002 instead.
bool libsoup_sends(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

GOutputStream* output_of(SoupWebsocketConnection* c) {
  return g_io_stream_get_output_stream(soup_websocket_connection_get_io_stream(c));
}

// Whether libsoup still holds bytes of a frame it could not write yet. libsoup writes one queued
// frame at a time and, while any is left (a part of one included), keeps a pollable output source
// on its stream, which polls the socket for G_IO_OUT on the main context; with an empty queue it
// has none, and nothing else in the gateway waits to write on a WebSocket's socket. So when the
// main context polls the socket for input alone, every byte libsoup was given is in the kernel:
// the stream is at a frame boundary. (g_main_context_query only copies the context's poll
// records; called on the main loop between iterations' polls it changes nothing they use.)
bool libsoup_mid_frame(SoupWebsocketConnection* c) {
  int fd = find_socket_fd(soup_websocket_connection_get_io_stream(c));
  if (fd < 0) return false;  // unknown: the writability check alone decides
  GMainContext* context = g_main_context_get_thread_default();
  if (!context) context = g_main_context_default();
  std::vector<GPollFD> fds(32);
  gint n =
      g_main_context_query(context, G_MAXINT, nullptr, fds.data(), static_cast<gint>(fds.size()));
  if (n > static_cast<gint>(fds.size())) {
    fds.resize(static_cast<std::size_t>(n));
    n = g_main_context_query(context, G_MAXINT, nullptr, fds.data(), n);
  }
  for (gint i = 0; i < n && i < static_cast<gint>(fds.size()); i++)
    if (fds[static_cast<std::size_t>(i)].fd == fd &&
        (fds[static_cast<std::size_t>(i)].events & G_IO_OUT))
      return true;
  return false;
}

// A frame of our own may go now: libsoup is between frames and the socket has room (a writable
// TCP socket takes at least a third of its send buffer, far more than a close frame's 131 bytes,
// so the frame goes whole).
bool at_frame_boundary(SoupWebsocketConnection* c) {
  GOutputStream* out = output_of(c);
  return G_IS_POLLABLE_OUTPUT_STREAM(out) &&
         g_pollable_output_stream_is_writable(G_POLLABLE_OUTPUT_STREAM(out)) &&
         !libsoup_mid_frame(c);
}

// Writes a close frame with a code libsoup refuses (a server's frames are not masked), at a frame
// boundary, then lets libsoup run the closing handshake with an empty close frame, which a peer
// that already has ours ignores.
void write_close_frame(SoupWebsocketConnection* c, int code, const std::string& reason) {
  std::string frame;
  frame += static_cast<char>(0x88);  // FIN + close
  frame += static_cast<char>(2 + reason.size());
  frame += static_cast<char>((code >> 8) & 0xFF);
  frame += static_cast<char>(code & 0xFF);
  frame += reason;
  UniqueError err;
  gssize written = g_pollable_output_stream_write_nonblocking(
      G_POLLABLE_OUTPUT_STREAM(output_of(c)), frame.data(), frame.size(), nullptr, ErrorOut(err));
  if (err)
    g_message("websocket: close frame %d not written: %s", code, err->message);
  else if (written != static_cast<gssize>(frame.size()))
    g_warning("websocket: close frame %d written in part (%" G_GSSIZE_FORMAT " of %zu bytes)", code,
              written, frame.size());
  soup_websocket_connection_close(c, SOUP_WEBSOCKET_CLOSE_NO_STATUS, nullptr);
}

}  // namespace

void WebSocket::close(int code, const std::string& reason) {
  if (!open()) return;
  std::string clipped = clip_close_reason(reason);
  SoupWebsocketConnection* c = connection_.get();
  bool server =
      soup_websocket_connection_get_connection_type(c) == SOUP_WEBSOCKET_CONNECTION_SERVER;
  if (!sendable_close_code(code) || (!libsoup_sends(code) && !server)) code = close_code::kNormal;
  if (libsoup_sends(code)) {
    soup_websocket_connection_close(c, static_cast<gushort>(code),
                                    clipped.empty() ? nullptr : clipped.c_str());
    return;
  }
  // libsoup 3.2 refuses the codes IANA registered after RFC 6455 (1012 service restart, 1013
  // try again later, 1014 bad gateway) and has no way to queue a frame of ours, so that close
  // frame is written on its stream directly, and only at a frame boundary: never while libsoup
  // holds part of a frame (a peer that does not read fast), or the frame would land inside it.
  // Until then nothing more is sent (open() is false) and the wait is polled, bounded; past the
  // bound the close goes through libsoup with 1011.
  if (at_frame_boundary(c)) {
    write_close_frame(c, code, clipped);
    return;
  }
  const gint64 deadline = g_get_monotonic_time() + gint64{kCloseBoundaryWaitMs} * 1000;
  close_wait_ =
      run_every_ms(kCloseBoundaryPollMs, [connection = connection_, code, clipped, deadline] {
        SoupWebsocketConnection* c = connection.get();
        if (soup_websocket_connection_get_state(c) != SOUP_WEBSOCKET_STATE_OPEN) return false;
        if (at_frame_boundary(c)) {
          write_close_frame(c, code, clipped);
        } else if (g_get_monotonic_time() >= deadline) {
          g_warning(
              "websocket: the peer took no bytes for %d ms: close %d not sent at a frame "
              "boundary; closing with 1011",
              kCloseBoundaryWaitMs, code);
          soup_websocket_connection_close(c, close_code::kInternalError,
                                          clipped.empty() ? nullptr : clipped.c_str());
        } else {
          return true;
        }
        linger_until_closed(c);
        return false;
      });
}

std::string WebSocket::protocol() const {
  const char* p = connection_ ? soup_websocket_connection_get_protocol(connection_.get()) : nullptr;
  return p ? p : "";
}

}  // namespace rtgw
