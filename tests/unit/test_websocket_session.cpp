// SPDX-License-Identifier: MIT
// relay::WebSocketSession as the WebSocket adapter over events/: a metered turn leaves the session
// priced by its EventRelay (the one place a turn is priced), with the session's ids, so the
// accounting records the cost it was handed.
#include <gio/gio.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/json.h"
#include "common/ref.h"
#include "sessions/websocket_session.h"

namespace rtgw::relay {
namespace {

// The session's relay reports its turns here (the report path); the session's listener only
// hears that the session ended.
struct RecordingListener : SessionListener, events::RelayObserver {
  std::vector<usage::UsageRecord> turns;
  void OnRelayTurn(const usage::UsageRecord& record) override { turns.push_back(record); }
  void OnRelayDecision(const events::PolicyDecision&) override {}
  void OnSessionEnded(WebSocketSession&) override {}
};

// A server-side WebSocket over one end of a socket pair (no HTTP, no network); the other end is
// kept open for the test's life.
class SocketPair {
 public:
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    peer_fd_ = fds[1];
    GSocket* raw = g_socket_new_from_fd(fds[0], nullptr);
    EXPECT_NE(raw, nullptr);
    auto socket = Ref<GSocket>::adopt(raw);
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

 private:
  int peer_fd_ = -1;
  Ref<SoupWebsocketConnection> connection_;
};

config::Pricing text_prices() {
  config::Pricing p;
  p.text_input = 4.0;
  p.text_output = 16.0;
  return p;
}

usage::UsageRecord text_turn(const std::string& response_id) {
  usage::UsageRecord r;
  r.usage_present = true;
  r.response_id = response_id;
  r.input_tokens = 1000;
  r.input_text_tokens = 1000;
  r.output_tokens = 500;
  r.output_text_tokens = 500;
  r.total_tokens = 1500;
  return r;
}

const SessionIdentity kIdentity{"ws_1", "team-a", "gpt-realtime", "upstream-model", "w1"};

TEST(WebSocketSession, ATurnRecordCarriesTheCostItsRelayPriced) {
  SocketPair pair;
  RecordingListener listener;
  SessionSettings settings;
  settings.pricing = text_prices();
  settings.relay_observer = &listener;
  WebSocketSession session(kIdentity, settings, workers::WorkerLease(), pair.connection(), 1 << 20,
                           &listener);
  session.OnPathTurn(text_turn("resp_1"));
  session.OnPathTurn(text_turn("resp_2"));
  ASSERT_EQ(listener.turns.size(), 2u);
  const usage::UsageRecord& record = listener.turns[0];
  ASSERT_TRUE(record.cost_usd.has_value());
  EXPECT_DOUBLE_EQ(*record.cost_usd, (1000 * 4.0 + 500 * 16.0) / 1e6);
  EXPECT_EQ(record.call_id, "ws_1");
  EXPECT_EQ(record.transport, "websocket");
  EXPECT_EQ(record.key_name, "team-a");
  EXPECT_EQ(record.model, "gpt-realtime");
  EXPECT_EQ(record.worker, "w1");
  // The session's running cost is the sum of the same priced turns.
  auto described = json::parse(json::to_string(session.describe().node().get()));
  ASSERT_TRUE(described);
  JsonObject* usage = json_object_get_object_member(json_node_get_object(described.get()), "usage");
  ASSERT_NE(usage, nullptr);
  EXPECT_DOUBLE_EQ(json_object_get_double_member(usage, "cost_usd"),
                   2 * (1000 * 4.0 + 500 * 16.0) / 1e6);
}

TEST(WebSocketSession, WithoutAPriceTableATurnCarriesNoCost) {
  SocketPair pair;
  RecordingListener listener;
  SessionSettings settings;
  settings.relay_observer = &listener;
  WebSocketSession session(kIdentity, settings, workers::WorkerLease(), pair.connection(), 1 << 20,
                           &listener);
  usage::UsageRecord turn = text_turn("resp_1");
  turn.cost_usd = 1.0;  // whatever came in, the relay's price (none) is what leaves
  session.OnPathTurn(turn);
  ASSERT_EQ(listener.turns.size(), 1u);
  EXPECT_FALSE(listener.turns[0].cost_usd.has_value());
}

}  // namespace
}  // namespace rtgw::relay
