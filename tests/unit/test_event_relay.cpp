// SPDX-License-Identifier: MIT
// events::EventRelay and events::PendingQueue, the event logic both transports share, driven by a
// fake transport: queue bounds, decisions (block → error event, end_call), turn records, and the
// late-usage wait at hang-up (ended by the usage, by its bound, or not started at all).
#include <glib.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/json.h"
#include "events/event_relay.h"

namespace rtgw::events {
namespace {

struct FakeTransport : EventRelay::Transport {
  std::vector<std::string> errors;
  std::vector<std::string> upstream;
  std::vector<PolicyDecision> decisions;
  std::vector<usage::UsageRecord> turns;
  std::vector<std::string> policy_ends;
  std::vector<std::string> waits_over;
  bool upstream_open = true;

  void send_error_to_client(const std::string& event) override { errors.push_back(event); }
  bool send_cancel_upstream(const std::string& event) override {
    if (!upstream_open) return false;
    upstream.push_back(event);
    return true;
  }
  void OnRelayDecision(const PolicyDecision& d) override { decisions.push_back(d); }
  void OnRelayTurn(const usage::UsageRecord& r) override { turns.push_back(r); }
  void OnRelayPolicyEnd(const std::string& reason) override { policy_ends.push_back(reason); }
  void OnRelayWaitOver(const std::string& reason) override { waits_over.push_back(reason); }
};

template <typename Pred>
bool spin_until(Pred done, int ms = 3000) {
  gint64 deadline = g_get_monotonic_time() + gint64{ms} * 1000;
  while (!done() && g_get_monotonic_time() < deadline) g_main_context_iteration(nullptr, FALSE);
  return done();
}

const TurnIds kIds{"rtc_1", "webrtc", "team-a", "gpt-realtime", "w1"};

TEST(PendingQueue, BoundedInBytesAndTakenInOrder) {
  PendingQueue q(10);
  EXPECT_TRUE(q.push("12345"));
  EXPECT_TRUE(q.push("6789"));
  EXPECT_FALSE(q.push("ab"));  // 11 bytes: refused, nothing queued
  EXPECT_EQ(q.bytes(), 9);
  EXPECT_TRUE(q.push("a"));
  auto all = q.take();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], "12345");
  EXPECT_EQ(all[2], "a");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0);
  EXPECT_TRUE(q.push("0123456789"));
  q.clear();
  EXPECT_EQ(q.bytes(), 0);
}

TEST(RelayTimes, PercentilesInMicrosecondsOverTheLastSamples) {
  RelayTimes times;
  EXPECT_EQ(json::to_string(times.json().node().get()),
            R"({"count":0,"p50":null,"p90":null,"max":null})");
  for (int i = 1; i <= 100; ++i) times.record(i * 1000);  // 1..100 µs
  EXPECT_EQ(json::to_string(times.json().node().get()),
            R"({"count":100,"p50":51.0,"p90":91.0,"max":100.0})");
  // Once full, the oldest samples make room: only the last kSamples count for percentiles.
  for (std::size_t i = 0; i < RelayTimes::kSamples; ++i) times.record(7000);
  EXPECT_EQ(json::to_string(times.json().node().get()),
            R"({"count":356,"p50":7.0,"p90":7.0,"max":7.0})");
}

TEST(EventRelay, BlockBecomesAnErrorEventAndEndCallEnds) {
  FakeTransport t;
  EventRelay relay(3000, &t);
  PolicyDecision filter;
  filter.action = "filter";
  relay.on_decision(filter);
  EXPECT_TRUE(t.errors.empty());
  PolicyDecision block;
  block.action = "block";
  block.reason = "too_large";
  block.event_id = "c1";
  block.message = "too big";
  block.end_call = true;
  relay.on_decision(block);
  ASSERT_EQ(t.errors.size(), 1u);
  auto node = json::parse(t.errors[0]);
  ASSERT_TRUE(node);
  JsonObject* error = json_object_get_object_member(json_node_get_object(node.get()), "error");
  EXPECT_STREQ(json_object_get_string_member(error, "code"), "event_too_large");
  EXPECT_STREQ(json_object_get_string_member(error, "event_id"), "c1");
  EXPECT_EQ(t.decisions.size(), 2u);
  ASSERT_EQ(t.policy_ends.size(), 1u);
  EXPECT_EQ(t.policy_ends[0], "policy: too big");
  std::string events = json::to_string(relay.events_json(true).node().get());
  EXPECT_NE(events.find(R"("blocked":1)"), std::string::npos) << events;
  EXPECT_NE(events.find(R"("filtered":1)"), std::string::npos) << events;
}

TEST(EventRelay, TurnsCarryTheCallsIdsAndSum) {
  FakeTransport t;
  EventRelay relay(3000, &t);
  usage::UsageRecord r;
  r.total_tokens = 8;
  relay.on_turn(r, kIds);
  relay.on_turn(r, kIds);
  ASSERT_EQ(t.turns.size(), 2u);
  EXPECT_EQ(t.turns[0].call_id, "rtc_1");
  EXPECT_EQ(t.turns[0].transport, "webrtc");
  EXPECT_EQ(t.turns[0].key_name, "team-a");
  EXPECT_EQ(t.turns[0].model, "gpt-realtime");
  EXPECT_EQ(t.turns[0].worker, "w1");
  std::string usage = json::to_string(relay.usage_json().node().get());
  EXPECT_NE(usage.find(R"("turns":2)"), std::string::npos) << usage;
  EXPECT_TRUE(t.waits_over.empty());
}

TEST(EventRelay, LateUsageWaitEndsWithTheUsage) {
  FakeTransport t;
  EventRelay relay(3000, &t);
  EXPECT_FALSE(relay.begin_late_usage_wait("client left", 0));  // nothing open: end now
  EXPECT_TRUE(t.upstream.empty());
  ASSERT_TRUE(relay.begin_late_usage_wait("client left", 1));
  EXPECT_TRUE(relay.waiting_for_usage());
  ASSERT_EQ(t.upstream.size(), 1u);
  EXPECT_EQ(t.upstream[0], R"({"type":"response.cancel"})");
  relay.on_turn({}, kIds);
  ASSERT_EQ(t.waits_over.size(), 1u);
  EXPECT_EQ(t.waits_over[0], "client left (late usage metered)");
  EXPECT_FALSE(relay.waiting_for_usage());
  g_usleep(20000);
  while (g_main_context_iteration(nullptr, FALSE)) {
  }
  EXPECT_EQ(t.waits_over.size(), 1u);  // the bound was cancelled
}

TEST(EventRelay, LateUsageWaitIsBounded) {
  FakeTransport t;
  EventRelay relay(50, &t);
  ASSERT_TRUE(relay.begin_late_usage_wait("client left", 2));
  EXPECT_TRUE(spin_until([&] { return !t.waits_over.empty(); }));
  EXPECT_EQ(t.waits_over[0], "client left (no late response.done)");
  EXPECT_FALSE(relay.waiting_for_usage());
}

TEST(EventRelay, NoWaitWhenTheUpstreamIsNotOpenOrTheCallStops) {
  FakeTransport t;
  t.upstream_open = false;
  EventRelay relay(50, &t);
  EXPECT_FALSE(relay.begin_late_usage_wait("client left", 1));
  t.upstream_open = true;
  ASSERT_TRUE(relay.begin_late_usage_wait("client left", 1));
  relay.stop();
  g_usleep(100000);
  while (g_main_context_iteration(nullptr, FALSE)) {
  }
  EXPECT_TRUE(t.waits_over.empty());
}

}  // namespace
}  // namespace rtgw::events
