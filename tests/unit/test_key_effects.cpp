// SPDX-License-Identifier: MIT
// The effects of a key change while calls run (issue 25 item 3):
// - a revoked key's WebSocket session gets the `error` event invalid_api_key and close 1008, its
//   outcome key_revoked (a real session over a socket pair, its frames read from the other end);
// - CallAccounting::end_key with auth.revoke_ends_calls true and false;
// - the Redis key channel: two Cluster instances on a real redis-server (started here), a
//   publication of one heard by the other within 1 s, and again after Redis restarts.
#include <gio/gio.h>
#include <glib.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "accounting/call_accounting.h"
#include "cluster/cluster.h"
#include "common/json.h"
#include "common/ref.h"
#include "sessions/session_registry.h"
#include "sessions/websocket_session.h"

namespace rtgw {
namespace {

// Turns the default main context until `done` or `timeout_ms` passed; true when done.
bool spin_until(const std::function<bool()>& done, int timeout_ms) {
  const gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;
  while (!done()) {
    if (g_get_monotonic_time() > deadline) return false;
    g_main_context_iteration(nullptr, FALSE);
    g_usleep(1000);
  }
  return true;
}

struct Listener : relay::SessionListener {
  int ended = 0;
  void OnSessionEnded(relay::WebSocketSession&) override { ended++; }
};

// A server-side WebSocket over one end of a socket pair; the test reads the other end.
class SocketPair {
 public:
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    peer_fd_ = fds[1];
    auto socket = Ref<GSocket>::adopt(g_socket_new_from_fd(fds[0], nullptr));
    auto stream =
        Ref<GSocketConnection>::adopt(g_socket_connection_factory_create_connection(socket.get()));
    auto uri =
        Ref<GUri>::adopt(g_uri_parse("ws://127.0.0.1/v1/realtime", G_URI_FLAGS_NONE, nullptr));
    connection_ = Ref<SoupWebsocketConnection>::adopt(
        soup_websocket_connection_new(G_IO_STREAM(stream.get()), uri.get(),
                                      SOUP_WEBSOCKET_CONNECTION_SERVER, nullptr, nullptr, nullptr));
  }
  ~SocketPair() { close(peer_fd_); }
  SoupWebsocketConnection* connection() const { return connection_.get(); }
  // Reads what arrived so far (non-blocking).
  void drain() {
    char buf[4096];
    ssize_t n;
    while ((n = read(peer_fd_, buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(n));
  }
  // The server's frames (unmasked) received so far: {opcode, payload}.
  std::vector<std::pair<int, std::string>> frames() const {
    std::vector<std::pair<int, std::string>> out;
    size_t at = 0;
    while (at + 2 <= received.size()) {
      int opcode = static_cast<unsigned char>(received[at]) & 0x0f;
      size_t len = static_cast<unsigned char>(received[at + 1]) & 0x7f;
      size_t head = 2;
      if (len == 126) {
        if (at + 4 > received.size()) break;
        len = (static_cast<unsigned char>(received[at + 2]) << 8) |
              static_cast<unsigned char>(received[at + 3]);
        head = 4;
      }
      if (at + head + len > received.size()) break;
      out.emplace_back(opcode, received.substr(at + head, len));
      at += head + len;
    }
    return out;
  }
  std::string received;

 private:
  int peer_fd_ = -1;
  Ref<SoupWebsocketConnection> connection_;
};

TEST(KeyRevoked, ASessionGetsInvalidApiKeyThenClose1008) {
  SocketPair pair;
  Listener listener;
  relay::SessionIdentity identity{"ws_1", "team-a", "gpt-realtime", "upstream-model", "w1"};
  relay::WebSocketSession session(identity, relay::SessionSettings{}, workers::WorkerLease(),
                                  pair.connection(), 1 << 20, &listener);
  session.end_key_revoked("invalid_api_key", "the API key 'team-a' was revoked");
  ASSERT_TRUE(spin_until(
      [&] {
        pair.drain();
        return pair.frames().size() >= 2;
      },
      5000))
      << pair.received.size() << " bytes";
  auto frames = pair.frames();
  ASSERT_EQ(frames[0].first, 1) << "a text frame first";
  auto event = json::parse(frames[0].second);
  ASSERT_TRUE(event) << frames[0].second;
  JsonObject* obj = json_node_get_object(event.get());
  EXPECT_STREQ(json_object_get_string_member(obj, "type"), "error");
  JsonObject* error = json_object_get_object_member(obj, "error");
  EXPECT_STREQ(json_object_get_string_member(error, "code"), "invalid_api_key");
  EXPECT_STREQ(json_object_get_string_member(error, "message"), "the API key 'team-a' was revoked");
  ASSERT_EQ(frames[1].first, 8) << "then the close";
  ASSERT_GE(frames[1].second.size(), 2u);
  EXPECT_EQ((static_cast<unsigned char>(frames[1].second[0]) << 8) |
                static_cast<unsigned char>(frames[1].second[1]),
            1008);
  EXPECT_NE(frames[1].second.find("key_revoked"), std::string::npos) << frames[1].second;
  EXPECT_EQ(session.outcome(), "key_revoked");
  spin_until([&] { return listener.ended == 1; }, 2000);
  EXPECT_EQ(listener.ended, 1);
}

// --------------------------------------------------------------------------- Redis key channel

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A redis-server of the test's own on a free loopback port, no persistence.
class RedisServer {
 public:
  explicit RedisServer(int port) : port_(port) {}
  ~RedisServer() { stop(); }
  bool start() {
    std::string port = std::to_string(port_);
    const char* argv[] = {
        "/usr/bin/redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
        "--appendonly",          "no",     nullptr};
    proc_ = Ref<GSubprocess>::adopt(
        g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE, nullptr));
    return static_cast<bool>(proc_);
  }
  void stop() {
    if (!proc_) return;
    g_subprocess_force_exit(proc_.get());
    g_subprocess_wait(proc_.get(), nullptr, nullptr);
    proc_.reset();
  }
  int port() const { return port_; }

 private:
  int port_;
  Ref<GSubprocess> proc_;
};

config::Config cluster_config(int port, const std::string& instance) {
  config::Config c;
  c.cluster.enabled = true;
  c.cluster.redis_host = "127.0.0.1";
  c.cluster.redis_port = port;
  c.cluster.instance_id = instance;
  c.cluster.advertise_url = "http://127.0.0.1:1";
  c.cluster.internal_secret = "a-long-enough-secret";
  c.cluster.lease_seconds = 4;
  return c;
}

TEST(KeyChannel, APublicationReachesTheOtherInstanceWithinASecondAlsoAfterARedisRestart) {
  if (!g_file_test("/usr/bin/redis-server", G_FILE_TEST_IS_EXECUTABLE))
    GTEST_SKIP() << "no /usr/bin/redis-server";
  RedisServer redis(free_port());
  ASSERT_TRUE(redis.start());
  auto a = std::make_shared<cluster::Cluster>(cluster_config(redis.port(), "gw-a"));
  auto b = std::make_shared<cluster::Cluster>(cluster_config(redis.port(), "gw-b"));
  std::vector<std::string> heard_a, heard_b;
  a->on_key_change([&](const std::string& alias) { heard_a.push_back(alias); });
  b->on_key_change([&](const std::string& alias) { heard_b.push_back(alias); });
  a->start();
  b->start();
  ASSERT_TRUE(spin_until([&] { return a->redis_up() && b->key_channel_up(); }, 10000));

  gint64 sent = g_get_monotonic_time();
  a->publish_key_change("vk-0123456789ab");
  ASSERT_TRUE(spin_until([&] { return !heard_b.empty(); }, 1000)) << "not heard within 1 s";
  EXPECT_LT(g_get_monotonic_time() - sent, 1000000);
  EXPECT_EQ(heard_b, std::vector<std::string>{"vk-0123456789ab"});
  // The publisher hears its own too (one path for every instance).
  ASSERT_TRUE(spin_until([&] { return !heard_a.empty(); }, 1000));
  EXPECT_EQ(heard_a.back(), "vk-0123456789ab");

  // Redis restarts: the subscription comes back (and says changes may have been missed).
  redis.stop();
  ASSERT_TRUE(spin_until([&] { return !b->key_channel_up() && !a->redis_up(); }, 5000));
  heard_b.clear();
  ASSERT_TRUE(redis.start());
  ASSERT_TRUE(spin_until([&] { return a->redis_up() && b->key_channel_up(); }, 10000))
      << "the subscription never came back";
  ASSERT_TRUE(spin_until([&] { return !heard_b.empty(); }, 1000));
  EXPECT_EQ(heard_b.front(), "") << "a resubscription drops every cached key";
  sent = g_get_monotonic_time();
  a->publish_key_change("team-a");
  ASSERT_TRUE(spin_until([&] { return heard_b.size() >= 2; }, 1000)) << "not heard within 1 s";
  EXPECT_LT(g_get_monotonic_time() - sent, 1000000);
  EXPECT_EQ(heard_b.back(), "team-a");
}

TEST(KeyChannel, APublicationMadeBeforeRedisAnswersIsSentWhenItDoes) {
  if (!g_file_test("/usr/bin/redis-server", G_FILE_TEST_IS_EXECUTABLE))
    GTEST_SKIP() << "no /usr/bin/redis-server";
  RedisServer redis(free_port());
  ASSERT_TRUE(redis.start());
  auto b = std::make_shared<cluster::Cluster>(cluster_config(redis.port(), "gw-b"));
  std::vector<std::string> heard_b;
  b->on_key_change([&](const std::string& alias) { heard_b.push_back(alias); });
  b->start();
  ASSERT_TRUE(spin_until([&] { return b->key_channel_up(); }, 10000));
  auto a = std::make_shared<cluster::Cluster>(cluster_config(redis.port(), "gw-a"));
  a->start();
  ASSERT_FALSE(a->redis_up());  // connecting: the publication waits
  a->publish_key_change("vk-while-down");
  ASSERT_TRUE(spin_until([&] { return !heard_b.empty(); }, 10000));
  EXPECT_EQ(heard_b, std::vector<std::string>{"vk-while-down"});
}

}  // namespace
}  // namespace rtgw
