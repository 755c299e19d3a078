// SPDX-License-Identifier: MIT
// admission/: every rule of admit() with a fake worker pool, fake local counts and a fake count
// store (one that answers at once, or later as the cluster's does), each refusal's HTTP error,
// and a client that leaves while the store answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "admission/admission.h"
#include "http/server.h"

namespace {

using rtgw::admission::Admission;
using rtgw::admission::Answer;
using rtgw::admission::Ask;
using rtgw::admission::CountStore;
using rtgw::admission::Kind;
using rtgw::admission::LocalCounts;
using rtgw::admission::Pending;
using rtgw::admission::Reason;
using rtgw::admission::Refusal;
using rtgw::admission::StoreAsk;
using rtgw::admission::StoreVerdict;
using rtgw::admission::Ticket;
using rtgw::workers::WorkerLease;

constexpr const char* kModel = "m";

// A registry's counts, set by the test.
struct FakeCounts : LocalCounts {
  int live = 0;
  std::map<std::string, int> live_by_key;
  int setups = 0;
  std::map<std::string, int> setups_by_key;

  int live_count() const override { return live; }
  int live_count_for_key(const std::string& key) const override {
    auto it = live_by_key.find(key);
    return it == live_by_key.end() ? 0 : it->second;
  }
  int setup_count() const override { return setups; }
  int setup_count_for_key(const std::string& key) const override {
    auto it = setups_by_key.find(key);
    return it == setups_by_key.end() ? 0 : it->second;
  }
};

// A session registry: live ones only (the interface's default: no set-up phase).
struct FakeSessionCounts : LocalCounts {
  int live = 0;
  std::map<std::string, int> live_by_key;
  int live_count() const override { return live; }
  int live_count_for_key(const std::string& key) const override {
    auto it = live_by_key.find(key);
    return it == live_by_key.end() ? 0 : it->second;
  }
};

// A slot in the fake store: counts itself while held.
struct Slot : rtgw::workers::LeaseAttachment {
  explicit Slot(int* held) : held_(held) { ++*held_; }
  ~Slot() override { --*held_; }
  int* held_;
};

// The cluster's counts, faked: answers at once (`immediate`) or when the test says (`answer`).
struct FakeStore : CountStore {
  bool immediate = true;
  StoreVerdict verdict = StoreVerdict::kAdmitted;
  int held = 0;  // slots given out and not given back
  std::vector<StoreAsk> asks;
  std::vector<CountStore::Answer> waiting;

  void take(const StoreAsk& ask, CountStore::Answer done) override {
    asks.push_back(ask);
    if (immediate)
      give(std::move(done), verdict);
    else
      waiting.push_back(std::move(done));
  }
  // Answers the oldest waiting ask, as Redis would later.
  void answer(StoreVerdict v) {
    ASSERT_FALSE(waiting.empty());
    auto done = std::move(waiting.front());
    waiting.erase(waiting.begin());
    give(std::move(done), v);
  }
  void give(CountStore::Answer done, StoreVerdict v) {
    if (v == StoreVerdict::kAdmitted)
      done(v, std::make_unique<Slot>(&held));
    else
      done(v, nullptr);
  }
};

// A worker whose leases the test can count.
class FakeWorker : public rtgw::workers::UpstreamSignaller {
 public:
  explicit FakeWorker(std::string name) : name_(std::move(name)) {}
  void exchange(const rtgw::workers::OfferRequest&, GCancellable*,
                std::function<void(rtgw::workers::UpstreamResult)>) override {}
  void hangup(const std::string&) override {}
  void open_socket(const rtgw::workers::SocketRequest&, rtgw::workers::UpstreamSocket::Listener*,
                   GCancellable*, std::function<void(rtgw::workers::SocketResult)>) override {}
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
};

// The pool, faked: the model's workers in order, each taken unless tried or marked full.
struct FakePool : rtgw::admission::WorkerSource {
  std::vector<std::shared_ptr<FakeWorker>> workers{std::make_shared<FakeWorker>("w1"),
                                                   std::make_shared<FakeWorker>("w2")};
  std::set<std::string> full;
  int picks = 0;

  WorkerLease pick(const std::string& model, const std::vector<std::string>& tried) override {
    picks++;
    if (model != kModel) return {};
    for (const auto& w : workers) {
      if (full.count(w->name())) continue;
      if (std::find(tried.begin(), tried.end(), w->name()) != tried.end()) continue;
      return WorkerLease::acquire(w);
    }
    return {};
  }
  int leases() const {
    int n = 0;
    for (const auto& w : workers) n += w->live_calls();
    return n;
  }
};

rtgw::config::Config config_with(int max_calls, int max_setups = 0, int max_setups_per_key = 0) {
  rtgw::config::Config c;
  c.limits.max_calls = max_calls;
  c.limits.max_setups = max_setups;
  c.limits.max_setups_per_key = max_setups_per_key;
  rtgw::config::ModelConfig m;
  m.name = kModel;
  m.upstream_model = kModel;
  rtgw::config::Pricing p;
  p.text_input = 4.0;
  m.pricing = p;
  c.models.push_back(m);
  return c;
}

Ask ask(Kind kind = Kind::kCall, const std::string& key = "team-a", int key_limit = 0) {
  static int n = 0;
  return Ask{kind, "id-" + std::to_string(++n), key, key_limit, kModel};
}

// One admission's world: config, fakes, the budget's answer and admission itself.
struct World {
  rtgw::config::Config config;
  FakePool pool;
  FakeStore store;
  FakeCounts calls;
  FakeSessionCounts sessions;
  std::set<std::string> over_budget;
  Admission admission;

  explicit World(rtgw::config::Config c)
      : config(std::move(c)),
        admission(config, pool, store, {&calls, &sessions},
                  [this](const std::string& key) { return over_budget.count(key) > 0; }) {}

  // Admits and returns the answer (the store answers at once).
  Answer run(Ask a) {
    std::optional<Answer> got;
    Pending p = admission.admit(std::move(a), [&](Answer answer) { got = std::move(answer); });
    EXPECT_TRUE(got.has_value()) << "no answer before admit returned";
    if (!got) return Refusal{Reason::kNoWorker, "no answer"};
    return std::move(*got);
  }
};

Reason refused(const Answer& a) {
  const auto* r = std::get_if<Refusal>(&a);
  EXPECT_NE(r, nullptr) << "admitted";
  return r ? r->reason : Reason::kShuttingDown;
}

std::string detail(const Answer& a) {
  const auto* r = std::get_if<Refusal>(&a);
  return r ? r->detail : "";
}

TEST(Admission, AdmitsWithATicket) {
  World w(config_with(10));
  Answer a = w.run(ask());
  ASSERT_TRUE(std::holds_alternative<Ticket>(a)) << detail(a);
  Ticket& t = std::get<Ticket>(a);
  ASSERT_TRUE(t.lease);
  EXPECT_EQ(t.lease->name(), "w1");
  EXPECT_FALSE(t.over_budget);
  ASSERT_TRUE(t.pricing.has_value());
  EXPECT_EQ(t.pricing->text_input, 4.0);
  EXPECT_EQ(w.store.held, 1);  // the store's slot rides on the lease
  EXPECT_EQ(w.pool.leases(), 1);
  // Failover: the next worker not tried, then none.
  WorkerLease next = t.failover({"w1"});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->name(), "w2");
  EXPECT_FALSE(t.failover({"w1", "w2"}));
  next.reset();
  t.lease.reset();
  EXPECT_EQ(w.store.held, 0);
  EXPECT_EQ(w.pool.leases(), 0);
}

TEST(Admission, ShuttingDownRefusesFirst) {
  World w(config_with(10));
  w.over_budget.insert("team-a");
  w.admission.begin_shutdown();
  Answer a = w.run(ask());
  EXPECT_EQ(refused(a), Reason::kShuttingDown);
  EXPECT_EQ(detail(a), "the gateway is shutting down");
  EXPECT_TRUE(w.store.asks.empty());
  EXPECT_EQ(w.pool.picks, 0);
}

TEST(Admission, OverBudgetIsRefusedBeforeTheStore) {
  World w(config_with(10));
  w.over_budget.insert("team-a");
  Answer a = w.run(ask());
  EXPECT_EQ(refused(a), Reason::kOverBudget);
  EXPECT_EQ(detail(a),
            "the key 'team-a' is over its budget (budget_tokens or budget_usd): no new call, "
            "session or token");
  EXPECT_TRUE(w.store.asks.empty());
  EXPECT_EQ(w.pool.picks, 0);
  // Another key is not concerned.
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kCall, "team-b"))));
}

TEST(Admission, BudgetIsCheckedAgainOnceTheStoreAnswered) {
  // The store's answer brings the cluster's totals up to date: a key found over budget then is
  // refused, and its slot given back.
  World w(config_with(10));
  w.store.immediate = false;
  std::optional<Answer> got;
  Pending p = w.admission.admit(ask(), [&](Answer a) { got = std::move(a); });
  EXPECT_FALSE(got);
  w.over_budget.insert("team-a");
  w.store.answer(StoreVerdict::kAdmitted);
  ASSERT_TRUE(got);
  EXPECT_EQ(refused(*got), Reason::kOverBudget);
  EXPECT_EQ(w.store.held, 0);
  EXPECT_EQ(w.pool.picks, 0);
}

TEST(Admission, GlobalCapacityCountsCallsPlusSessions) {
  World w(config_with(3));
  w.calls.live = 2;
  w.sessions.live = 1;
  for (Kind kind :
       {Kind::kCall, Kind::kSession, Kind::kTranslationCall, Kind::kTranslationSession}) {
    Answer a = w.run(ask(kind));
    EXPECT_EQ(refused(a), Reason::kGlobalFull);
    EXPECT_EQ(detail(a), "the gateway is at its call capacity");
  }
  EXPECT_EQ(w.pool.picks, 0);
  EXPECT_EQ(w.store.held, 0);  // each refused ask gave its slot back
  w.sessions.live = 0;
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kSession))));
}

TEST(Admission, ZeroMeansNoGlobalLimit) {
  World w(config_with(0));
  w.calls.live = 1000;
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask())));
}

TEST(Admission, KeyCapacityCountsCallsPlusSessions) {
  World w(config_with(100));
  w.calls.live_by_key["team-a"] = 1;
  w.sessions.live_by_key["team-a"] = 1;
  Answer a = w.run(ask(Kind::kSession, "team-a", 2));
  EXPECT_EQ(refused(a), Reason::kKeyFull);
  EXPECT_EQ(detail(a), "this key already has 2 live calls and sessions");
  EXPECT_EQ(w.pool.picks, 0);
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kSession, "team-a", 3))));
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kCall, "team-b", 2))));
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kCall, "team-a", 0))));  // none
}

TEST(Admission, GlobalCapacityComesBeforeTheKeys) {
  World w(config_with(1));
  w.calls.live = 1;
  w.calls.live_by_key["team-a"] = 1;
  EXPECT_EQ(refused(w.run(ask(Kind::kCall, "team-a", 1))), Reason::kGlobalFull);
}

TEST(Admission, SetupsPerKeyAreCappedForCallsOnly) {
  World w(config_with(100, /*max_setups=*/0, /*max_setups_per_key=*/2));
  w.calls.setups_by_key["team-a"] = 2;
  Answer a = w.run(ask(Kind::kCall));
  EXPECT_EQ(refused(a), Reason::kKeySetupsFull);
  EXPECT_EQ(detail(a),
            "this key already has 2 calls setting up (limits.max_setups_per_key): connect them "
            "first");
  EXPECT_EQ(refused(w.run(ask(Kind::kTranslationCall))), Reason::kKeySetupsFull);
  // A WebSocket session has no set-up phase: not capped by calls setting up.
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kSession))));
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kTranslationSession))));
  EXPECT_TRUE(std::holds_alternative<Ticket>(w.run(ask(Kind::kCall, "team-b"))));
}

TEST(Admission, SetupsOverallAreCapped) {
  World w(config_with(100, /*max_setups=*/3, /*max_setups_per_key=*/0));
  w.calls.setups = 3;
  Answer a = w.run(ask(Kind::kCall, "team-b"));
  EXPECT_EQ(refused(a), Reason::kSetupsFull);
  EXPECT_EQ(detail(a), "the gateway has 3 calls setting up (limits.max_setups)");
  // The key's cap is checked first.
  World k(config_with(100, 3, 1));
  k.calls.setups = 3;
  k.calls.setups_by_key["team-a"] = 1;
  EXPECT_EQ(refused(k.run(ask())), Reason::kKeySetupsFull);
}

TEST(Admission, NoWorkerWithRoom) {
  World w(config_with(100));
  w.pool.full = {"w1", "w2"};
  Answer a = w.run(ask());
  EXPECT_EQ(refused(a), Reason::kNoWorker);
  EXPECT_EQ(detail(a), "no worker of 'm' has capacity");
  EXPECT_EQ(w.store.held, 0);  // the slot went back with the refusal
  w.pool.full = {"w1"};
  Answer b = w.run(ask());
  ASSERT_TRUE(std::holds_alternative<Ticket>(b));
  EXPECT_EQ(std::get<Ticket>(b).lease->name(), "w2");
}

TEST(Admission, TheStoreRefusesForTheWholeCluster) {
  World w(config_with(100));
  w.store.verdict = StoreVerdict::kKeyFull;
  Answer a = w.run(ask(Kind::kCall, "team-a", 5));
  EXPECT_EQ(refused(a), Reason::kKeyFull);
  EXPECT_EQ(detail(a), "this key already has 5 live calls and sessions");
  w.store.verdict = StoreVerdict::kGlobalFull;
  Answer b = w.run(ask());
  EXPECT_EQ(refused(b), Reason::kGlobalFull);
  EXPECT_EQ(detail(b), "the gateway is at its call capacity");
  EXPECT_EQ(w.pool.picks, 0);
}

TEST(Admission, TheStoreIsAskedWithTheSharedLimits) {
  World w(config_with(7));
  (void)w.run(ask(Kind::kCall, "team-a", 3));
  (void)w.run(ask(Kind::kSession, "team-b", 0));
  (void)w.run(ask(Kind::kTranslationCall));
  ASSERT_EQ(w.store.asks.size(), 3u);
  EXPECT_EQ(w.store.asks[0].key_name, "team-a");
  EXPECT_EQ(w.store.asks[0].key_limit, 3);
  EXPECT_EQ(w.store.asks[0].global_limit, 7);
  EXPECT_TRUE(w.store.asks[0].call);  // a WebRTC call gets an owner entry
  EXPECT_FALSE(w.store.asks[1].call);
  EXPECT_TRUE(w.store.asks[2].call);
  // A max_calls sized from this instance's open-file limit is not the cluster's.
  auto sized = config_with(7);
  sized.limits.sized = {"max_calls"};
  World s(sized);
  (void)s.run(ask());
  ASSERT_EQ(s.store.asks.size(), 1u);
  EXPECT_EQ(s.store.asks[0].global_limit, 0);
}

TEST(Admission, AnswersLaterWhenTheStoreDoes) {
  World w(config_with(100));
  w.store.immediate = false;
  std::optional<Answer> got;
  Pending p = w.admission.admit(ask(), [&](Answer a) { got = std::move(a); });
  EXPECT_FALSE(got);
  EXPECT_EQ(w.pool.picks, 0);  // no worker before the cluster has room
  w.store.answer(StoreVerdict::kAdmitted);
  ASSERT_TRUE(got);
  ASSERT_TRUE(std::holds_alternative<Ticket>(*got));
  EXPECT_EQ(w.store.held, 1);
  got.reset();  // the ticket goes: lease and slot with it
  EXPECT_EQ(w.store.held, 0);
  EXPECT_EQ(w.pool.leases(), 0);
}

TEST(Admission, AClientThatLeavesWhileTheClusterAnswersGetsNothingAndHoldsNothing) {
  World w(config_with(100));
  w.store.immediate = false;
  int answers = 0;
  {
    Pending p = w.admission.admit(ask(), [&](Answer) { answers++; });
    // The client leaves: its Pending is dropped.
  }
  Pending other = w.admission.admit(ask(), [&](Answer) { answers++; });
  other.cancel();  // explicit cancel too
  w.store.answer(StoreVerdict::kAdmitted);
  w.store.answer(StoreVerdict::kAdmitted);
  EXPECT_EQ(answers, 0);
  EXPECT_EQ(w.store.held, 0);  // the slots the store gave went back at once
  EXPECT_EQ(w.pool.picks, 0);  // and no worker was picked for nobody
  EXPECT_EQ(w.pool.leases(), 0);
}

TEST(Admission, AStoreThatAnswersAfterAdmissionIsGoneReachesNothing) {
  // Shutdown destroys the HTTP server, and its Admission, while Redis may still answer.
  auto config = config_with(100);
  FakePool pool;
  FakeStore store;
  store.immediate = false;
  FakeCounts calls;
  auto admission = std::make_unique<Admission>(config, pool, store,
                                               std::vector<const LocalCounts*>{&calls}, nullptr);
  int answers = 0;
  Pending p = admission->admit(ask(), [&](Answer) { answers++; });
  admission.reset();
  store.answer(StoreVerdict::kAdmitted);
  EXPECT_EQ(answers, 0);
  EXPECT_EQ(store.held, 0);
  EXPECT_EQ(pool.picks, 0);
}

TEST(Admission, ThePendingMayBeDroppedFromInsideTheAnswer) {
  World w(config_with(100));
  w.store.immediate = false;
  auto pending = std::make_unique<Pending>();
  int answers = 0;
  *pending = w.admission.admit(ask(), [&](Answer a) {
    answers++;
    pending.reset();  // as the HTTP layer does once it has answered
    EXPECT_TRUE(std::holds_alternative<Ticket>(a));
  });
  w.store.answer(StoreVerdict::kAdmitted);
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(w.store.held, 0);
}

TEST(Admission, TicketCarriesTheBudgetStateAndNoPricingForAnUnpricedModel) {
  auto c = config_with(100);
  c.models[0].pricing.reset();
  World w(c);
  Answer a = w.run(ask());
  ASSERT_TRUE(std::holds_alternative<Ticket>(a));
  EXPECT_FALSE(std::get<Ticket>(a).pricing.has_value());
  EXPECT_FALSE(std::get<Ticket>(a).over_budget);
}

// The HTTP layer maps each refusal to the SPEC's error (status, type, code), the detail its
// message.
TEST(Admission, RefusalsBecomeTheSpecsErrors) {
  struct Row {
    Reason reason;
    int status;
    const char* type;
    const char* code;
  };
  for (const Row& row : {Row{Reason::kShuttingDown, 503, "server_error", "shutting_down"},
                         Row{Reason::kOverBudget, 429, "insufficient_quota", "insufficient_quota"},
                         Row{Reason::kGlobalFull, 503, "server_error", "no_capacity"},
                         Row{Reason::kKeyFull, 429, "rate_limit_error", "too_many_calls"},
                         Row{Reason::kKeySetupsFull, 429, "rate_limit_error", "too_many_calls"},
                         Row{Reason::kSetupsFull, 503, "server_error", "no_capacity"},
                         Row{Reason::kNoWorker, 503, "server_error", "no_capacity"}}) {
    rtgw::http::HttpError e = rtgw::http::refusal_error(Refusal{row.reason, "why"});
    EXPECT_EQ(e.status(), row.status) << row.code;
    EXPECT_EQ(e.type(), row.type) << row.code;
    EXPECT_EQ(e.code(), row.code);
    EXPECT_STREQ(e.what(), "why");
  }
}

}  // namespace
