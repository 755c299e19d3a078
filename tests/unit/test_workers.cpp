// SPDX-License-Identifier: MIT
// Worker leases: load counts, max_calls, failover, the circuit breaker and its half-open probe.
//
// The real `Worker` and `WorkerPool` are driven with a config and no network (their breaker and
// counters are plain main-loop state); a fake `UpstreamSignaller` pins what a lease asks of any
// signaller (the built-in echo worker, or a later cluster-backed one).
#include <glib.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/json.h"
#include "config/config.h"
#include "workers/echo_protocol.h"
#include "workers/upstream_signaller.h"
#include "workers/worker.h"
#include "workers/worker_lease.h"
#include "workers/worker_pool.h"

namespace {

using rtgw::config::Config;
using rtgw::config::ModelConfig;
using rtgw::config::WorkerConfig;
using rtgw::workers::fail_over;
using rtgw::workers::SetupOutcome;
using rtgw::workers::UpstreamFailure;
using rtgw::workers::Worker;
using rtgw::workers::WorkerLease;
using rtgw::workers::WorkerPool;
using Kind = rtgw::workers::UpstreamFailure::Kind;

constexpr const char* kModel = "m";

WorkerConfig remote(const std::string& name, int breaker_failures = 2, int open_seconds = 60,
                    int max_calls = 0) {
  WorkerConfig w;
  w.name = name;
  w.provider = "openai";
  w.url = "http://127.0.0.1:9";  // never contacted
  w.health_path.clear();
  w.health_interval_seconds = 0;
  w.breaker_failures = breaker_failures;
  w.breaker_open_seconds = open_seconds;
  w.max_calls = max_calls;
  return w;
}

Config pool_config(std::vector<WorkerConfig> workers) {
  Config c;
  ModelConfig m;
  m.name = kModel;
  m.upstream_model = kModel;
  m.workers = std::move(workers);
  c.models.push_back(std::move(m));
  return c;
}

std::shared_ptr<Worker> find(const WorkerPool& pool, const std::string& name) {
  for (const auto& w : pool.all_remote())
    if (w->name() == name) return w;
  ADD_FAILURE() << "no worker " << name;
  return nullptr;
}

UpstreamFailure status(int code) {
  return {Kind::kStatus, code, R"({"error":{}})", "the worker answered " + std::to_string(code)};
}

UpstreamFailure unreachable() { return {Kind::kConnect, 0, {}, "connection refused"}; }

// The model's next worker, as the HTTP layer wires it.
rtgw::workers::FailoverFn next_from(WorkerPool& pool) {
  return [&pool](const std::vector<std::string>& tried) { return pool.pick(kModel, tried); };
}

// Two worker failures on `w`, each on its own lease (opens a breaker_failures=2 breaker).
void fail_twice(WorkerPool& pool, const std::string& expected) {
  for (int i = 0; i < 2; i++) {
    WorkerLease lease = pool.pick(kModel);
    ASSERT_TRUE(lease);
    ASSERT_EQ(lease->name(), expected);
    lease.settle(SetupOutcome::kWorkerFailure);
  }
}

// A signaller that records what its leases ask of it.
class FakeSignaller : public rtgw::workers::UpstreamSignaller {
 public:
  explicit FakeSignaller(std::string name) : name_(std::move(name)) {}

  void exchange(const rtgw::workers::OfferRequest&, GCancellable*,
                std::function<void(rtgw::workers::UpstreamResult)> done) override {
    exchanges++;
    done(rtgw::workers::UpstreamAnswer{"v=0\r\n", "rtc_fake", 1.0});
  }
  void hangup(const std::string&) override {}
  void open_socket(const rtgw::workers::SocketRequest&, rtgw::workers::UpstreamSocket::Listener*,
                   GCancellable*, std::function<void(rtgw::workers::SocketResult)> done) override {
    done(unreachable());
  }
  const std::string& name() const override { return name_; }

  bool admit = true;  // what a cluster-wide count would answer
  int exchanges = 0;
  int admitted = 0;
  int released = 0;
  std::map<SetupOutcome, int> settled;

 protected:
  bool try_admit(bool* probe) override {
    if (!admit) return false;
    admitted++;
    return UpstreamSignaller::try_admit(probe);
  }
  void settle(SetupOutcome outcome, bool probe) override {
    EXPECT_FALSE(probe);
    settled[outcome]++;
  }
  void release() override {
    released++;
    UpstreamSignaller::release();
  }

 private:
  std::string name_;
};

// ---------------------------------------------------------------------------- load and capacity

TEST(WorkerLease, PickTakesTheLeastLoadedWorkerUnderMaxCalls) {
  WorkerPool pool(pool_config({remote("a", 2, 60, 2), remote("b", 2, 60, 1)}));
  auto a = find(pool, "a");
  auto b = find(pool, "b");
  WorkerLease first = pool.pick(kModel);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name(), "a");  // both idle: the first listed
  WorkerLease second = pool.pick(kModel);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->name(), "b");  // a has one call, b none
  WorkerLease third = pool.pick(kModel);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->name(), "a");  // b is at its max_calls
  EXPECT_FALSE(pool.pick(kModel)) << "both workers at max_calls";
  EXPECT_EQ(a->live_calls(), 2);
  EXPECT_EQ(b->live_calls(), 1);
  EXPECT_TRUE(a->available()) << "max_calls is capacity, not availability";

  second = WorkerLease();  // b's call ends
  EXPECT_EQ(b->live_calls(), 0);
  WorkerLease again = pool.pick(kModel);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->name(), "b");
}

TEST(WorkerLease, TheLoadCountReturnsToZeroOnEveryPath) {
  WorkerPool pool(pool_config({remote("a", 100)}));
  auto a = find(pool, "a");
  {
    WorkerLease success = pool.pick(kModel);
    WorkerLease failure = pool.pick(kModel);
    WorkerLease client_error = pool.pick(kModel);
    WorkerLease cancelled = pool.pick(kModel);
    WorkerLease reset = pool.pick(kModel);
    WorkerLease moved = pool.pick(kModel);
    EXPECT_EQ(a->live_calls(), 6);
    success.settle(SetupOutcome::kSuccess);
    failure.settle(unreachable());
    client_error.settle(status(400));
    reset.reset();
    EXPECT_FALSE(reset);
    EXPECT_EQ(a->live_calls(), 5);
    WorkerLease taken(std::move(moved));
    EXPECT_FALSE(moved);  // NOLINT(bugprone-use-after-move): the moved-from lease is empty
    EXPECT_EQ(a->live_calls(), 5) << "a move hands the slot over, it takes no other";
    EXPECT_EQ(a->consecutive_failures(), 1);
  }
  EXPECT_EQ(a->live_calls(), 0);
  EXPECT_EQ(a->consecutive_failures(), 1) << "only the worker failure counted";
}

TEST(WorkerLease, MoveAssignmentGivesTheOverwrittenLeaseBack) {
  WorkerPool pool(pool_config({remote("a"), remote("b")}));
  WorkerLease lease = pool.pick(kModel);
  WorkerLease other = pool.pick(kModel);
  ASSERT_EQ(lease->name(), "a");
  ASSERT_EQ(other->name(), "b");
  lease = std::move(other);
  EXPECT_EQ(lease->name(), "b");
  EXPECT_EQ(find(pool, "a")->live_calls(), 0);
  EXPECT_EQ(find(pool, "b")->live_calls(), 1);
}

// ---------------------------------------------------------------------------- failover

TEST(WorkerLease, AWorkerFailureFailsOverAndMovesTheLoad) {
  WorkerPool pool(pool_config({remote("a"), remote("b"), remote("c")}));
  auto a = find(pool, "a");
  auto b = find(pool, "b");
  auto c = find(pool, "c");
  std::vector<std::string> tried;
  WorkerLease lease = pool.pick(kModel);
  ASSERT_EQ(lease->name(), "a");

  ASSERT_TRUE(fail_over(status(503), lease, tried, next_from(pool), "test"));
  EXPECT_EQ(lease->name(), "b");
  EXPECT_FALSE(lease.settled()) << "the new lease's own set-up is still to come";
  EXPECT_EQ(a->live_calls(), 0);
  EXPECT_EQ(a->consecutive_failures(), 1);
  EXPECT_EQ(b->live_calls(), 1);

  ASSERT_TRUE(fail_over(status(429), lease, tried, next_from(pool), "test"));
  EXPECT_EQ(lease->name(), "c");
  ASSERT_TRUE(fail_over(UpstreamFailure{Kind::kTimeout, 0, {}, "slow"}, lease, tried,
                        next_from(pool), "test") == false)
      << "every worker tried: the failure stands";
  EXPECT_EQ(tried, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(lease->name(), "c") << "the last worker stays leased until the call ends";
  EXPECT_TRUE(lease.settled());
  EXPECT_EQ(b->consecutive_failures(), 1);
  EXPECT_EQ(c->consecutive_failures(), 1);
  EXPECT_EQ(c->live_calls(), 1);
  lease = WorkerLease();
  EXPECT_EQ(a->live_calls() + b->live_calls() + c->live_calls(), 0);
}

TEST(WorkerLease, AClientErrorNeitherFailsOverNorCountsAgainstTheWorker) {
  WorkerPool pool(pool_config({remote("a"), remote("b")}));
  auto a = find(pool, "a");
  std::vector<std::string> tried;
  for (int code : {400, 404, 422}) {
    WorkerLease lease = pool.pick(kModel);
    ASSERT_EQ(lease->name(), "a");
    EXPECT_FALSE(fail_over(status(code), lease, tried, next_from(pool), "test"));
    EXPECT_EQ(lease->name(), "a");
    EXPECT_TRUE(lease.settled());
  }
  EXPECT_TRUE(tried.empty());
  EXPECT_EQ(a->consecutive_failures(), 0);
  EXPECT_EQ(a->live_calls(), 0);
}

TEST(WorkerLease, FailoverSkipsAWorkerWhoseBreakerIsOpen) {
  WorkerPool pool(pool_config({remote("a"), remote("b"), remote("c")}));
  {
    // b fails twice while a is busy, so that its breaker opens.
    WorkerLease busy_a = pool.pick(kModel);
    fail_twice(pool, "b");
  }
  EXPECT_TRUE(find(pool, "b")->breaker_open());
  std::vector<std::string> tried;
  WorkerLease lease = pool.pick(kModel);
  ASSERT_EQ(lease->name(), "a");
  ASSERT_TRUE(fail_over(unreachable(), lease, tried, next_from(pool), "test"));
  EXPECT_EQ(lease->name(), "c");
}

// ---------------------------------------------------------------------------- circuit breaker

TEST(WorkerBreaker, OpensAfterBreakerFailuresConsecutiveFailures) {
  WorkerPool pool(pool_config({remote("a", 3, 60)}));
  auto a = find(pool, "a");
  for (int i = 0; i < 2; i++) pool.pick(kModel).settle(SetupOutcome::kWorkerFailure);
  pool.pick(kModel).settle(SetupOutcome::kSuccess);  // a success resets the run
  for (int i = 0; i < 2; i++) pool.pick(kModel).settle(SetupOutcome::kWorkerFailure);
  EXPECT_FALSE(a->breaker_open());
  EXPECT_TRUE(pool.any_available());
  pool.pick(kModel).settle(SetupOutcome::kWorkerFailure);
  EXPECT_TRUE(a->breaker_open());
  EXPECT_FALSE(a->available());
  EXPECT_FALSE(pool.any_available()) << "/readyz is red";
  EXPECT_FALSE(pool.pick(kModel)) << "an open breaker takes no call";
  EXPECT_EQ(a->live_calls(), 0);
}

TEST(WorkerBreaker, HalfOpenLetsExactlyOneProbeThrough) {
  WorkerPool pool(pool_config({remote("a", 2, 0)}));  // open for 0 s: half-open at once
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  EXPECT_TRUE(a->available()) << "half-open: a probe may go";
  EXPECT_FALSE(a->breaker_open());
  EXPECT_TRUE(a->available()) << "asking twice claims nothing";

  WorkerLease probe = pool.pick(kModel);
  ASSERT_TRUE(probe);
  EXPECT_TRUE(probe.probe());
  EXPECT_TRUE(a->probing());
  EXPECT_TRUE(a->breaker_open()) << "open while the probe is in flight";
  EXPECT_FALSE(a->available());
  EXPECT_FALSE(pool.any_available());
  EXPECT_FALSE(pool.pick(kModel)) << "a second caller gets no probe";
  EXPECT_EQ(a->live_calls(), 1);
}

TEST(WorkerBreaker, AProbeSuccessClosesTheBreaker) {
  WorkerPool pool(pool_config({remote("a", 2, 0)}));
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  WorkerLease probe = pool.pick(kModel);
  ASSERT_TRUE(probe.probe());
  probe.settle(SetupOutcome::kSuccess);
  EXPECT_FALSE(probe.probe()) << "the slot went back with the outcome";
  EXPECT_FALSE(a->probing());
  EXPECT_EQ(a->consecutive_failures(), 0);
  EXPECT_FALSE(a->breaker_open());
  WorkerLease next = pool.pick(kModel);
  WorkerLease another = pool.pick(kModel);
  ASSERT_TRUE(next);
  ASSERT_TRUE(another);
  EXPECT_FALSE(next.probe());
  EXPECT_FALSE(another.probe());
  EXPECT_EQ(a->live_calls(), 3) << "the probe call itself goes on";
}

TEST(WorkerBreaker, AProbeWorkerFailureReopensTheBreaker) {
  WorkerPool pool(pool_config({remote("a", 2, 1)}));
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  EXPECT_FALSE(pool.pick(kModel)) << "open";
  g_usleep(1100 * 1000);  // breaker_open_seconds
  WorkerLease probe = pool.pick(kModel);
  ASSERT_TRUE(probe);
  ASSERT_TRUE(probe.probe());
  std::vector<std::string> tried;
  EXPECT_FALSE(fail_over(status(502), probe, tried, next_from(pool), "test"));
  EXPECT_FALSE(a->probing());
  EXPECT_EQ(a->consecutive_failures(), 3);
  EXPECT_TRUE(a->breaker_open()) << "open again for breaker_open_seconds";
  EXPECT_FALSE(pool.pick(kModel));
  EXPECT_FALSE(pool.any_available());
  probe = WorkerLease();
  EXPECT_EQ(a->live_calls(), 0);
  g_usleep(1100 * 1000);
  WorkerLease second_probe = pool.pick(kModel);
  ASSERT_TRUE(second_probe);
  EXPECT_TRUE(second_probe.probe());
}

TEST(WorkerBreaker, AProbeRefusedWithAClientErrorGivesTheSlotBack) {
  // A 4xx says nothing about the worker's health: the breaker stays half-open, the slot goes
  // back, and the next call is the probe (README, "Workers").
  WorkerPool pool(pool_config({remote("a", 2, 0)}));
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  WorkerLease probe = pool.pick(kModel);
  ASSERT_TRUE(probe.probe());
  std::vector<std::string> tried;
  EXPECT_FALSE(fail_over(status(400), probe, tried, next_from(pool), "test"));
  EXPECT_FALSE(a->probing()) << "settled: the slot is back before the call is dropped";
  EXPECT_EQ(a->consecutive_failures(), 2) << "no count changes";
  EXPECT_TRUE(a->available());
  EXPECT_TRUE(pool.any_available()) << "/readyz is green again";
  WorkerLease next = pool.pick(kModel);
  ASSERT_TRUE(next) << "the worker stays in rotation";
  EXPECT_TRUE(next.probe()) << "still half-open: this call probes";
  next.settle(SetupOutcome::kSuccess);
  EXPECT_FALSE(a->breaker_open());
  EXPECT_EQ(a->consecutive_failures(), 0);
}

TEST(WorkerBreaker, ACancelledProbeGivesTheSlotBack) {
  WorkerPool pool(pool_config({remote("a", 2, 0)}));
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  {
    WorkerLease probe = pool.pick(kModel);
    ASSERT_TRUE(probe.probe());
    EXPECT_FALSE(pool.pick(kModel));
    // the client leaves during set-up: the call drops its lease unsettled
  }
  EXPECT_FALSE(a->probing());
  EXPECT_EQ(a->live_calls(), 0);
  EXPECT_EQ(a->consecutive_failures(), 2);
  EXPECT_TRUE(pool.any_available());
  WorkerLease next = pool.pick(kModel);
  ASSERT_TRUE(next);
  EXPECT_TRUE(next.probe());

  // The call can also settle the cancel itself before it is dropped (Call::hang_up does).
  next.settle(SetupOutcome::kNeutral);
  EXPECT_FALSE(a->probing());
  EXPECT_EQ(a->live_calls(), 1) << "the load is held until the call is dropped";
  WorkerLease after = pool.pick(kModel);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after.probe());
}

TEST(WorkerBreaker, AMovedProbeLeaseStillOwnsTheSlot) {
  WorkerPool pool(pool_config({remote("a", 2, 0)}));
  auto a = find(pool, "a");
  fail_twice(pool, "a");
  WorkerLease probe = pool.pick(kModel);
  WorkerLease held(std::move(probe));
  probe = WorkerLease();  // destroying the moved-from lease gives nothing back
  EXPECT_TRUE(held.probe());
  EXPECT_TRUE(a->probing());
  EXPECT_EQ(a->live_calls(), 1);
  held.settle(SetupOutcome::kSuccess);
  held.settle(SetupOutcome::kWorkerFailure);  // only the first outcome counts
  EXPECT_EQ(a->consecutive_failures(), 0);
  EXPECT_FALSE(a->breaker_open());
}

TEST(WorkerBreaker, ALateSuccessOfAnOlderCallLeavesTheProbeItsSlot) {
  WorkerPool pool(pool_config({remote("a", 2, 0)}));
  auto a = find(pool, "a");
  WorkerLease older = pool.pick(kModel);  // in flight from before the breaker opened
  fail_twice(pool, "a");
  WorkerLease probe = pool.pick(kModel);
  ASSERT_TRUE(probe.probe());
  older.settle(SetupOutcome::kSuccess);  // the worker answered after all: closed
  EXPECT_FALSE(a->breaker_open());
  EXPECT_TRUE(a->probing()) << "the probe's slot is the probe's to give back";
  probe = WorkerLease();
  EXPECT_FALSE(a->probing());
  EXPECT_FALSE(pool.pick(kModel).probe());
}

// ---------------------------------------------------------------------------- the interface

TEST(WorkerLease, AsksItsSignallerOnceForEachStep) {
  auto fake = std::make_shared<FakeSignaller>("fake");
  {
    WorkerLease lease = WorkerLease::acquire(fake);
    ASSERT_TRUE(lease);
    EXPECT_FALSE(lease.probe());
    EXPECT_EQ(fake->live_calls(), 1);
    lease.settle(SetupOutcome::kSuccess);
    lease.settle(SetupOutcome::kWorkerFailure);
    WorkerLease moved(std::move(lease));
    moved.reset();
    moved.reset();
  }
  { WorkerLease unsettled = WorkerLease::acquire(fake); }
  EXPECT_EQ(fake->admitted, 2);
  EXPECT_EQ(fake->released, 2);
  EXPECT_EQ(fake->live_calls(), 0);
  EXPECT_EQ(fake->settled[SetupOutcome::kSuccess], 1);
  EXPECT_EQ(fake->settled[SetupOutcome::kWorkerFailure], 0);
  EXPECT_EQ(fake->settled[SetupOutcome::kNeutral], 1) << "destroyed unsettled: neutral";

  fake->admit = false;  // e.g. a cluster-wide count at its limit
  EXPECT_FALSE(WorkerLease::acquire(fake));
  EXPECT_EQ(fake->released, 2) << "nothing taken, nothing given back";
}

TEST(WorkerLease, TheBuiltInWorkerIsLeasedTheSameWay) {
  WorkerConfig echo;
  echo.name = "echo";
  echo.provider = "echo";
  WorkerPool pool(pool_config({echo}));
  auto fake = std::make_shared<FakeSignaller>("echo");
  pool.set_builtin("echo", fake);
  EXPECT_TRUE(pool.any_available());
  {
    WorkerLease lease = pool.pick(kModel);
    ASSERT_TRUE(lease);
    EXPECT_EQ(lease.signaller(), fake);
    EXPECT_EQ(fake->live_calls(), 1);
    lease->exchange({}, nullptr, [&](rtgw::workers::UpstreamResult result) {
      EXPECT_TRUE(std::holds_alternative<rtgw::workers::UpstreamAnswer>(result));
      lease.settle(SetupOutcome::kSuccess);
    });
    EXPECT_EQ(fake->exchanges, 1);
    EXPECT_FALSE(pool.pick(kModel, {"echo"})) << "no failover past the built-in worker";
  }
  EXPECT_EQ(fake->live_calls(), 0);
  EXPECT_EQ(fake->settled[SetupOutcome::kSuccess], 1);
}

}  // namespace

TEST(EchoProtocol, MetersAppendedAudio) {
  std::vector<std::string> sent;
  rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
  echo.start();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(sent[0].find("\"session.created\""), std::string::npos);
  // 2 s of PCM16 at 24 kHz = 96000 bytes = 128000 base64 characters: 20 audio tokens.
  echo.on_event(R"({"type":"input_audio_buffer.append","audio":")" + std::string(128000, 'A') +
                R"("})");
  echo.on_event(R"({"type":"response.create"})");
  ASSERT_EQ(sent.size(), 4u);  // created, delta, done
  auto done = rtgw::json::parse(sent[3]);
  ASSERT_TRUE(done);
  JsonObject* response = rtgw::json::get_object(json_node_get_object(done.get()), "response");
  ASSERT_NE(response, nullptr);
  JsonObject* usage = rtgw::json::get_object(response, "usage");
  ASSERT_NE(usage, nullptr);
  EXPECT_EQ(json_object_get_int_member(usage, "input_tokens"), 20);
  echo.on_event("not json");
  EXPECT_NE(sent.back().find("\"invalid_json\""), std::string::npos);
}

TEST(EchoProtocol, TranscriptionSessionsTranscribeOnCommit) {
  std::vector<std::string> sent;
  const std::string one_second =
      R"({"type":"input_audio_buffer.append","audio":")" + std::string(64000, 'A') + R"("})";
  rtgw::Ref<JsonNode> node;  // keeps the last parsed event alive for the returned usage
  auto last_usage = [&](const char* type) -> JsonObject* {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      node = rtgw::json::parse(*it);
      JsonObject* event = json_node_get_object(node.get());
      if (rtgw::json::get_string(event, "type") == type)
        return rtgw::json::get_object(event, "usage");
    }
    return nullptr;
  };
  {
    rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
    echo.configure(
        R"({"type":"transcription","audio":{"input":{"transcription":{"model":"stt"}}}})");
    echo.start();
    EXPECT_NE(sent[0].find("\"type\":\"transcription\""), std::string::npos) << sent[0];
    echo.on_event(one_second);
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    ASSERT_EQ(sent.size(), 3u);
    EXPECT_NE(sent[1].find("input_audio_buffer.committed"), std::string::npos);
    JsonObject* usage = last_usage("conversation.item.input_audio_transcription.completed");
    ASSERT_NE(usage, nullptr);
    EXPECT_EQ(rtgw::json::get_string(usage, "type"), "tokens");
    EXPECT_EQ(json_object_get_int_member(usage, "input_tokens"), 10);  // 1 s of audio
    // The audio is consumed: a second commit bills nothing more.
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    EXPECT_EQ(
        json_object_get_int_member(
            last_usage("conversation.item.input_audio_transcription.completed"), "input_tokens"),
        0);
  }
  sent.clear();
  {
    // whisper models are duration-billed; a realtime session's response still bills the audio.
    rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
    echo.start();
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    EXPECT_EQ(sent.size(), 1u) << "no transcription configured: no transcription";
    echo.on_event(R"({"type":"session.update","session":{"type":"realtime","audio":{"input":)"
                  R"({"transcription":{"model":"whisper-1"}}}}})");
    echo.on_event(one_second);
    echo.on_event(one_second);
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    JsonObject* usage = last_usage("conversation.item.input_audio_transcription.completed");
    ASSERT_NE(usage, nullptr);
    EXPECT_EQ(rtgw::json::get_string(usage, "type"), "duration");
    EXPECT_DOUBLE_EQ(json_object_get_double_member(usage, "seconds"), 2.0);
    echo.on_event(R"({"type":"response.create"})");
    auto done = rtgw::json::parse(sent.back());
    JsonObject* response = rtgw::json::get_object(json_node_get_object(done.get()), "response");
    EXPECT_EQ(json_object_get_int_member(rtgw::json::get_object(response, "usage"), "input_tokens"),
              20);
  }
}
