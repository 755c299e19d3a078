// SPDX-License-Identifier: MIT
// events::EventRelay and events::PendingQueue, the event logic both transports share, driven by a
// fake transport: queue bounds, decisions (block → error event, end_call), turn records, and the
// late-usage wait at hang-up (ended by the usage, by its bound, or not started at all).
#include <glib.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "events/event_relay.h"

namespace rtgw::events {
namespace {

struct FakeTransport : EventRelay::Transport, RelayObserver {
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
  EventRelay relay(3000, &t, std::nullopt, &t);
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

// SPEC "Errors agents act on": the policy's budget block (the key went over during the call) is
// insufficient_quota, type and code, like the reservation gate's refusal; other blocks keep
// invalid_request_error.
TEST(EventRelay, ABudgetBlockIsInsufficientQuota) {
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
  PolicyDecision block;
  block.action = "block";
  block.reason = "budget";
  block.rule = "budget";
  block.event_id = "evt_over";
  block.message = "budget exceeded (budget_tokens or budget_usd): response.create is not allowed";
  relay.on_decision(block);
  block.reason = "denied_event";
  relay.on_decision(block);
  ASSERT_EQ(t.errors.size(), 2u);
  auto error_of = [&](std::size_t i) {
    auto node = json::parse(t.errors[i]);
    EXPECT_TRUE(node);
    JsonObject* root = json_node_get_object(node.get());
    EXPECT_STREQ(json_object_get_string_member(root, "type"), "error");
    JsonObject* e = json_object_get_object_member(root, "error");
    return std::make_pair(std::string(json_object_get_string_member(e, "type")),
                          std::string(json_object_get_string_member(e, "code")));
  };
  EXPECT_EQ(error_of(0),
            std::make_pair(std::string("insufficient_quota"), std::string("insufficient_quota")));
  EXPECT_EQ(error_of(1),
            std::make_pair(std::string("invalid_request_error"), std::string("policy_violation")));
  EXPECT_NE(t.errors[0].find(R"("event_id":"evt_over")"), std::string::npos) << t.errors[0];
}

TEST(EventRelay, TurnsCarryTheCallsIdsAndSum) {
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
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

// The one report path: turns and decisions go from the relay to its observer (the accounting),
// never through the transport; a relay without an observer reports nowhere and still works.
TEST(EventRelay, TurnsAndDecisionsGoToTheObserverAlone) {
  struct Observer : RelayObserver {
    std::vector<usage::UsageRecord> turns;
    std::vector<PolicyDecision> decisions;
    void OnRelayTurn(const usage::UsageRecord& r) override { turns.push_back(r); }
    void OnRelayDecision(const PolicyDecision& d) override { decisions.push_back(d); }
  } observer;
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &observer);
  usage::UsageRecord r;
  r.total_tokens = 8;
  relay.on_turn(r, kIds);
  PolicyDecision block;
  block.action = "block";
  block.reason = "denied_event";
  relay.on_decision(block);
  ASSERT_EQ(observer.turns.size(), 1u);
  EXPECT_EQ(observer.turns[0].call_id, "rtc_1");
  ASSERT_EQ(observer.decisions.size(), 1u);
  EXPECT_EQ(observer.decisions[0].reason, "denied_event");
  EXPECT_TRUE(t.turns.empty());
  EXPECT_TRUE(t.decisions.empty());
  EXPECT_EQ(t.errors.size(), 1u);  // the transport still carries the block's error event

  EventRelay silent(3000, &t);
  silent.on_turn(r, kIds);
  silent.on_decision(block);
  EXPECT_TRUE(t.turns.empty());
  EXPECT_EQ(t.errors.size(), 2u);
}

TEST(EventRelay, LateUsageWaitEndsWithTheUsage) {
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
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
  EventRelay relay(50, &t, std::nullopt, &t);
  ASSERT_TRUE(relay.begin_late_usage_wait("client left", 2));
  EXPECT_TRUE(spin_until([&] { return !t.waits_over.empty(); }));
  EXPECT_EQ(t.waits_over[0], "client left (no late response.done)");
  EXPECT_FALSE(relay.waiting_for_usage());
}

TEST(EventRelay, NoWaitWhenTheUpstreamIsNotOpenOrTheCallStops) {
  FakeTransport t;
  t.upstream_open = false;
  EventRelay relay(50, &t, std::nullopt, &t);
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

// ------------------------------------------------------------------ budget reservations

namespace rtgw::events {
namespace {

// One key with a budget of `budget` tokens of which `spent` are spent, over a ReservationBook as
// CallAccounting drives it.
struct BudgetFixture {
  std::shared_ptr<usage::ReservationBook> book = std::make_shared<usage::ReservationBook>();
  std::int64_t spent = 999;
  std::int64_t budget = 1000;
  usage::ResponseGate gate() {
    return [this](const std::string& key, const std::string&,
                  std::string* why) -> std::optional<usage::Reservation> {
      usage::TurnEstimate e = book->estimate(key, std::nullopt, std::nullopt);
      switch (usage::admit_response({budget, std::nullopt}, {spent, 0}, book->held(key), e)) {
        case usage::Admission::kFits:
        case usage::Admission::kLastOne:
          return book->hold(key, e);
        case usage::Admission::kRefused:
          *why = "no room";
          return std::nullopt;
      }
      return std::nullopt;
    };
  }
};

TEST(BudgetReservations, TheRule) {
  using usage::Admission;
  usage::TurnEstimate e{100, 0.5};
  // Room for the estimate: as many as fit.
  EXPECT_EQ(usage::admit_response({1000, std::nullopt}, {800, 0}, {100, 0, 1}, e),
            Admission::kFits);
  // Within one estimate of the budget: one open response per key, no more.
  EXPECT_EQ(usage::admit_response({1000, std::nullopt}, {999, 0}, {}, e), Admission::kLastOne);
  EXPECT_EQ(usage::admit_response({1000, std::nullopt}, {999, 0}, {100, 0, 1}, e),
            Admission::kRefused);
  EXPECT_EQ(usage::admit_response({1000, std::nullopt}, {850, 0}, {100, 0, 1}, e),
            Admission::kRefused);
  // Over: nothing.
  EXPECT_EQ(usage::admit_response({1000, std::nullopt}, {1000, 0}, {}, e), Admission::kRefused);
  // USD the same way; either budget can refuse.
  EXPECT_EQ(usage::admit_response({std::nullopt, 2.0}, {0, 1.0}, {0, 0.5, 1}, e), Admission::kFits);
  EXPECT_EQ(usage::admit_response({std::nullopt, 2.0}, {0, 1.8}, {0, 0.5, 1}, e),
            Admission::kRefused);
  EXPECT_EQ(usage::admit_response({100000, 2.0}, {0, 2.0}, {}, e), Admission::kRefused);
}

TEST(BudgetReservations, EstimateFromTheCeilingElseTheRecentAverage) {
  usage::ReservationBook book;
  EXPECT_EQ(book.estimate("k", std::nullopt, std::nullopt).tokens,
            usage::ReservationBook::kDefaultEstimateTokens);
  EXPECT_EQ(book.estimate("k", 500, 10.0).tokens, 500);
  EXPECT_DOUBLE_EQ(book.estimate("k", 500, 10.0).usd, 500 * 10.0 / 1e6);
  book.note_turn("k", 100, 0.01);
  book.note_turn("k", 300, 0.03);
  EXPECT_EQ(book.estimate("k", std::nullopt, 10.0).tokens, 200);
  EXPECT_DOUBLE_EQ(book.estimate("k", std::nullopt, 10.0).usd, 0.02);
  EXPECT_EQ(book.estimate("k", std::nullopt, std::nullopt).usd, 0);  // unpriced
  EXPECT_EQ(book.estimate("k", 700, 10.0).tokens, 700);              // a ceiling wins
  for (int i = 0; i < 40; i++) book.note_turn("k", 50, std::nullopt);
  EXPECT_EQ(book.estimate("k", std::nullopt, std::nullopt).tokens, 50);  // the last 16 only
}

TEST(BudgetReservations, HandlesReleaseOnceAndSurviveTheBook) {
  auto book = std::make_shared<usage::ReservationBook>();
  int released = 0;
  usage::Reservation r = book->hold("k", {10, 0}, [&] { released++; });
  EXPECT_EQ(book->held("k").count, 1);
  EXPECT_EQ(book->held("k").tokens, 10);
  usage::Reservation moved = std::move(r);
  r.reset();  // moved from: nothing
  EXPECT_EQ(released, 0);
  moved.reset();
  moved.reset();
  EXPECT_EQ(released, 1);
  EXPECT_EQ(book->held("k").count, 0);
  usage::Reservation late = book->hold("k", {10, 0});
  book.reset();  // the book goes first (shutdown): the handle's release is a no-op
}

const char* kCreate = R"({"type":"response.create"})";

TEST(EventRelay, FiftyBackToBackAtTheEdgeLetOneThrough) {
  // Issue 21: one session one token below a 1,000-token budget sent 50 response.create back to
  // back and all 50 ran.
  BudgetFixture budget;
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
  relay.set_response_gate(budget.gate(), "team-a", "echo");
  int through = 0;
  for (int i = 0; i < 50; i++)
    if (relay.admit_to_upstream(std::string(R"({"type":"response.create","event_id":"e)") +
                                std::to_string(i) + "\"}"))
      through++;
  EXPECT_EQ(through, 1);
  ASSERT_EQ(t.errors.size(), 49u);
  EXPECT_NE(t.errors[0].find(R"("code":"insufficient_quota")"), std::string::npos) << t.errors[0];
  EXPECT_NE(t.errors[0].find(R"("type":"insufficient_quota")"), std::string::npos) << t.errors[0];
  EXPECT_NE(t.errors[0].find(R"("event_id":"e1")"), std::string::npos) << t.errors[0];
  // Neither an escape nor a duplicate `type` hides one (the worker's parser would see it).
  EXPECT_FALSE(relay.admit_to_upstream(R"({"type":"response\u002ecreate"})"));
  EXPECT_FALSE(relay.admit_to_upstream(R"({"type":"response.create","type":"x"})"));
  EXPECT_FALSE(relay.admit_to_upstream(R"({"type":"x","type":"response.create"})"));
  ASSERT_EQ(t.errors.size(), 52u);
  // Other events pass untouched.
  EXPECT_TRUE(relay.admit_to_upstream(R"({"type":"input_audio_buffer.append","audio":""})"));
  // The turn is metered: the reservation is settled and the next one may go.
  relay.note_from_upstream(R"({"type":"response.created","response":{"id":"resp_1"}})");
  EXPECT_EQ(budget.book->held("team-a").count, 1);
  usage::UsageRecord r;
  r.response_id = "resp_1";
  relay.on_turn(r, kIds);
  EXPECT_EQ(budget.book->held("team-a").count, 0);
  EXPECT_TRUE(relay.admit_to_upstream(kCreate));
}

TEST(EventRelay, ReservationsOfSeveralCallsShareTheKey) {
  // Five sessions of one key at the edge: one response between them.
  BudgetFixture budget;
  std::vector<std::unique_ptr<FakeTransport>> transports;
  std::vector<std::unique_ptr<EventRelay>> relays;
  int through = 0;
  for (int i = 0; i < 5; i++) {
    transports.push_back(std::make_unique<FakeTransport>());
    relays.push_back(std::make_unique<EventRelay>(3000, transports.back().get(), std::nullopt,
                                                  transports.back().get()));
    relays.back()->set_response_gate(budget.gate(), "team-a", "echo");
  }
  for (auto& relay : relays) through += relay->admit_to_upstream(kCreate) ? 1 : 0;
  EXPECT_EQ(through, 1);
  // The session holding it ends: released.
  relays[0]->stop();
  EXPECT_EQ(budget.book->held("team-a").count, 0);
  EXPECT_TRUE(relays[1]->admit_to_upstream(kCreate));
  // With room for several estimates, several go at once.
  budget.spent = 0;
  budget.budget = 4 * usage::ReservationBook::kDefaultEstimateTokens;  // one is held already
  for (int i = 2; i < 5; i++) EXPECT_TRUE(relays[i]->admit_to_upstream(kCreate)) << i;
  EXPECT_FALSE(relays[0]->admit_to_upstream(kCreate));
}

TEST(EventRelay, AnUpstreamErrorForTheRequestReleasesItsReservation) {
  BudgetFixture budget;
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
  relay.set_response_gate(budget.gate(), "team-a", "echo");
  ASSERT_TRUE(relay.admit_to_upstream(R"({"type":"response.create","event_id":"evt_a"})"));
  relay.note_from_upstream(
      R"({"type":"error","error":{"type":"invalid_request_error","event_id":"evt_other"}})");
  EXPECT_EQ(relay.open_reservations(), 1u);
  relay.note_from_upstream(
      R"({"type":"error","error":{"type":"invalid_request_error","event_id":"evt_a"}})");
  EXPECT_EQ(relay.open_reservations(), 0u);
  EXPECT_EQ(budget.book->held("team-a").count, 0);
}

TEST(EventRelay, AnEventNotRelayedAfterAllGivesItsReservationBack) {
  BudgetFixture budget;
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
  relay.set_response_gate(budget.gate(), "team-a", "echo");
  const std::string create = R"({"type":"response.create","event_id":"evt_q"})";
  ASSERT_TRUE(relay.admit_to_upstream(create));
  relay.not_relayed_upstream(R"({"type":"session.update"})");  // another event: nothing
  EXPECT_EQ(relay.open_reservations(), 1u);
  relay.not_relayed_upstream(create);  // e.g. event_queue_full
  EXPECT_EQ(relay.open_reservations(), 0u);
  EXPECT_TRUE(relay.admit_to_upstream(create));
}

TEST(EventRelay, WithoutABudgetNothingIsHeld) {
  FakeTransport t;
  EventRelay relay(3000, &t, std::nullopt, &t);
  relay.set_response_gate(
      [](const std::string&, const std::string&, std::string*) {
        return std::optional<usage::Reservation>(usage::Reservation{});
      },
      "team-a", "echo");
  for (int i = 0; i < 10; i++) EXPECT_TRUE(relay.admit_to_upstream(kCreate));
  EXPECT_EQ(relay.open_reservations(), 0u);
  EXPECT_TRUE(t.errors.empty());
}

}  // namespace
}  // namespace rtgw::events
