// SPDX-License-Identifier: MIT
// WebSocket::close with the codes libsoup 3.2 will not send (1012-1014): the close frame is
// written behind libsoup, so it must start at a frame boundary, never inside a frame libsoup has
// only partly written to a peer that reads slowly. The peer here is the raw other end of a socket
// pair whose send buffer is small; the test reads it as a client would and parses every frame.
#include <gio/gio.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "common/ref.h"
#include "common/websocket.h"

namespace rtgw {
namespace {

struct Frame {
  int opcode = 0;
  std::string payload;
};

// Frames parsed from a server's (unmasked) bytes; nullopt when the bytes are not whole, valid
// frames (a close frame written inside another frame makes them so).
std::optional<std::vector<Frame>> parse_frames(const std::string& bytes) {
  std::vector<Frame> frames;
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 2) return std::nullopt;
    auto b0 = static_cast<unsigned char>(bytes[at]);
    auto b1 = static_cast<unsigned char>(bytes[at + 1]);
    if ((b0 & 0x70) || (b1 & 0x80)) return std::nullopt;  // reserved bits, or masked
    int opcode = b0 & 0x0F;
    if (opcode != 0x1 && opcode != 0x2 && opcode != 0x8 && opcode != 0x9 && opcode != 0xA)
      return std::nullopt;
    std::uint64_t length = b1 & 0x7F;
    std::size_t header = 2;
    if (length == 126 || length == 127) {
      std::size_t n = length == 126 ? 2 : 8;
      if (bytes.size() - at < 2 + n) return std::nullopt;
      length = 0;
      for (std::size_t i = 0; i < n; i++)
        length = (length << 8) | static_cast<unsigned char>(bytes[at + 2 + i]);
      header += n;
    }
    if (bytes.size() - at - header < length) return std::nullopt;
    frames.push_back({opcode, bytes.substr(at + header, length)});
    at += header + length;
  }
  return frames;
}

struct Listener : WebSocket::Listener {
  void OnSocketText(WebSocket&, std::string) override {}
  void OnSocketBinary(WebSocket&, std::size_t) override {}
  void OnSocketClosed(WebSocket&, int, const std::string&) override {}
  void OnSocketOverflow(WebSocket&, std::uint64_t, std::uint64_t) override {}
};

// A server-side libsoup connection over one end of a socket pair; the test reads the other end.
class Pair {
 public:
  explicit Pair(int send_buffer_bytes) {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    peer_ = fds[1];
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &send_buffer_bytes, sizeof send_buffer_bytes);
    setsockopt(peer_, SOL_SOCKET, SO_RCVBUF, &send_buffer_bytes, sizeof send_buffer_bytes);
    auto socket = Ref<GSocket>::adopt(g_socket_new_from_fd(fds[0], nullptr));
    auto stream =
        Ref<GSocketConnection>::adopt(g_socket_connection_factory_create_connection(socket.get()));
    auto uri =
        Ref<GUri>::adopt(g_uri_parse("ws://127.0.0.1/v1/realtime", G_URI_FLAGS_NONE, nullptr));
    connection_ = Ref<SoupWebsocketConnection>::adopt(
        soup_websocket_connection_new(G_IO_STREAM(stream.get()), uri.get(),
                                      SOUP_WEBSOCKET_CONNECTION_SERVER, nullptr, nullptr, nullptr));
  }
  ~Pair() { ::close(peer_); }
  SoupWebsocketConnection* connection() const { return connection_.get(); }

  // Reads what the server wrote, slowly (a peer that does not keep up), while the main loop
  // runs, until the bytes end with a close frame or `ms` pass.
  std::string read_until_close(int ms) {
    std::string bytes;
    gint64 deadline = g_get_monotonic_time() + gint64{ms} * 1000;
    while (g_get_monotonic_time() < deadline) {
      while (g_main_context_iteration(nullptr, FALSE)) {
      }
      char chunk[4096];
      ssize_t n = recv(peer_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) bytes.append(chunk, static_cast<std::size_t>(n));
      if (n == 0) break;
      auto frames = parse_frames(bytes);
      if (frames && !frames->empty() && frames->back().opcode == 0x8) break;
      g_usleep(n > 0 ? 200 : 1000);
    }
    return bytes;
  }

 private:
  int peer_ = -1;
  Ref<SoupWebsocketConnection> connection_;
};

int close_code_of(const Frame& f) {
  if (f.payload.size() < 2) return 1005;
  return (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]);
}

TEST(WebSocketClose, ACloseLibsoupWillNotSendWaitsForTheFrameLibsoupIsWriting) {
  Pair pair(4096);
  Listener listener;
  WebSocket socket(pair.connection(), 1 << 20, &listener);
  socket.limit_outgoing(16 << 20);
  // Far more than the socket takes at once: libsoup writes part of the frame and keeps the rest.
  std::string big(512 * 1024, 'a');
  for (std::size_t i = 0; i < big.size(); i += 1000) big[i] = static_cast<char>('b' + i % 20);
  ASSERT_TRUE(socket.send_text(big));
  socket.close(close_code::kTryAgainLater, "try again later");
  // Nothing more goes out while the close waits for the boundary.
  EXPECT_FALSE(socket.open());
  EXPECT_FALSE(socket.send_text("after the close"));
  std::string bytes = pair.read_until_close(10000);
  auto frames = parse_frames(bytes);
  ASSERT_TRUE(frames) << "the bytes are not whole frames (" << bytes.size() << " bytes)";
  ASSERT_GE(frames->size(), 2u);
  EXPECT_EQ((*frames)[0].opcode, 0x1);
  EXPECT_TRUE((*frames)[0].payload == big) << "the text frame was cut or mixed";
  EXPECT_EQ((*frames)[1].opcode, 0x8);
  EXPECT_EQ(close_code_of((*frames)[1]), 1013);
  EXPECT_EQ((*frames)[1].payload.substr(2), "try again later");
}

TEST(WebSocketClose, AtABoundaryTheCloseGoesAtOnceAfterWhatWasSent) {
  Pair pair(1 << 16);
  Listener listener;
  WebSocket socket(pair.connection(), 1 << 20, &listener);
  ASSERT_TRUE(socket.send_text(R"({"type":"error"})"));
  socket.close(1012, "service restart");
  std::string bytes = pair.read_until_close(5000);
  auto frames = parse_frames(bytes);
  ASSERT_TRUE(frames);
  ASSERT_GE(frames->size(), 2u);
  EXPECT_EQ((*frames)[0].payload, R"({"type":"error"})");
  EXPECT_EQ(close_code_of((*frames)[1]), 1012);
  EXPECT_EQ((*frames)[1].payload.substr(2), "service restart");
}

TEST(WebSocketClose, TheWaitOutlivesTheSocketObject) {
  Pair pair(4096);
  Listener listener;
  std::string big(256 * 1024, 'z');
  {
    WebSocket socket(pair.connection(), 1 << 20, &listener);
    socket.limit_outgoing(16 << 20);
    ASSERT_TRUE(socket.send_text(big));
    socket.close(1014, "bad gateway");
  }  // gone while the close waits: the wait runs on by itself
  std::string bytes = pair.read_until_close(10000);
  auto frames = parse_frames(bytes);
  ASSERT_TRUE(frames);
  ASSERT_GE(frames->size(), 2u);
  EXPECT_TRUE((*frames)[0].payload == big);
  EXPECT_EQ(close_code_of((*frames)[1]), 1014);
}

}  // namespace
}  // namespace rtgw
