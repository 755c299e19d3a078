// SPDX-License-Identifier: MIT
// calls::CallSetup on its own, with a fake `SetupMedia` (the webrtcbin steps) and fake
// `UpstreamSignaller`s: failover to the next worker, the lease settled on every path (success,
// worker failure, client-side 4xx, cancel, a refused offer, a failure after the worker answered)
// and released, a half-open probe slot given back on a cancel, and the one report: the answer,
// or a failure that always arrives later from the main loop.
#include <glib.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calls/call_setup.h"
#include "workers/upstream_signaller.h"
#include "workers/worker_lease.h"

namespace rtgw::calls {
namespace {

using workers::SetupOutcome;
using workers::UpstreamAnswer;
using workers::UpstreamFailure;
using workers::WorkerLease;

// Every worker answer names a DTLS fingerprint (the upstream leg's certificate is checked
// against it; an answer without one is refused).
#define RTGW_TEST_FINGERPRINT                                                                  \
  "a=fingerprint:sha-256 "                                                                     \
  "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:" \
  "EE:FF\r\n"
const char* kWorkerAnswer =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\na=rtpmap:96 opus/48000/2\r\n" RTGW_TEST_FINGERPRINT;
const char* kWorkerAnswerWithoutOpus =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
    "c=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\n" RTGW_TEST_FINGERPRINT;

// A worker that holds each exchange until the test answers it, and records how its leases
// settle (with or without the probe slot) and what it is asked to hang up.
class FakeWorker : public workers::UpstreamSignaller {
 public:
  explicit FakeWorker(std::string name, bool half_open = false)
      : name_(std::move(name)), half_open_(half_open) {}

  void exchange(const workers::OfferRequest& request, GCancellable* cancellable,
                std::function<void(workers::UpstreamResult)> done) override {
    offers.push_back(request);
    cancellable_ = Ref<GCancellable>::retain(cancellable);
    pending_ = std::move(done);
  }
  void hangup(const std::string& upstream_call_id) override { hangups.push_back(upstream_call_id); }
  void open_socket(const workers::SocketRequest&, workers::UpstreamSocket::Listener*, GCancellable*,
                   std::function<void(workers::SocketResult)>) override {}
  const std::string& name() const override { return name_; }

  // Answers the pending exchange as a real signaller would: not at all once it was cancelled.
  void respond(workers::UpstreamResult result) {
    ASSERT_TRUE(pending_) << name_ << " has no exchange pending";
    auto done = std::move(pending_);
    pending_ = nullptr;
    if (g_cancellable_is_cancelled(cancellable_.get())) return;
    done(std::move(result));
  }
  bool exchange_cancelled() const {
    return cancellable_ && g_cancellable_is_cancelled(cancellable_.get());
  }

  std::vector<workers::OfferRequest> offers;
  std::vector<std::string> hangups;
  std::vector<SetupOutcome> outcomes;
  std::vector<bool> probes;  // per settle: whether it gave the probe slot back

 protected:
  bool try_admit(bool* probe) override {
    UpstreamSignaller::try_admit(probe);
    *probe = half_open_;
    return true;
  }
  void settle(SetupOutcome outcome, bool probe) override {
    outcomes.push_back(outcome);
    probes.push_back(probe);
  }

 private:
  std::string name_;
  bool half_open_;
  Ref<GCancellable> cancellable_;
  std::function<void(workers::UpstreamResult)> pending_;
};

// Media steps that succeed at once unless told otherwise.
struct FakeMedia : SetupMedia {
  std::optional<SetupFailure> refuse_offer;
  std::vector<int>* accepted_answer_pts = nullptr;

  bool hold_accept = false;  // keep accept_client_offer's `done` in held_accept instead
  Step held_accept;
  int upstream_offers_made = 0;

  void accept_client_offer(sdp::CheckedOffer, Step done) override {
    if (hold_accept)
      held_accept = std::move(done);
    else
      done(refuse_offer);
  }
  void create_client_answer(Described done) override { done(std::nullopt, "client-answer"); }
  void create_upstream_offer(Described done) override {
    upstream_offers_made++;
    done(std::nullopt, "upstream-offer");
  }
  void accept_upstream_answer(sdp::SdpMessagePtr, int opus_pt, Step done) override {
    if (accepted_answer_pts) accepted_answer_pts->push_back(opus_pt);
    done(std::nullopt);
  }
};

struct Reports {
  std::vector<SetupResult> results;
  const SetupFailure* failure(std::size_t i = 0) const {
    return i < results.size() ? std::get_if<SetupFailure>(&results[i]) : nullptr;
  }
  const CallAnswer* answer(std::size_t i = 0) const {
    return i < results.size() ? std::get_if<CallAnswer>(&results[i]) : nullptr;
  }
};

void drain_main_loop() {
  while (g_main_context_iteration(nullptr, FALSE)) {
  }
}

UpstreamFailure failure(UpstreamFailure::Kind kind, int status = 0, std::string body = {}) {
  return UpstreamFailure{kind, status, std::move(body), "worker said no"};
}

std::unique_ptr<CallSetup> make_setup(WorkerLease& lease, workers::FailoverFn failover,
                                      Reports& reports,
                                      std::unique_ptr<FakeMedia> media = nullptr) {
  if (!media) media = std::make_unique<FakeMedia>();
  return std::make_unique<CallSetup>("rtc_test", std::move(media), lease, std::move(failover),
                                     "upstream-model",
                                     [&reports](SetupResult r) { reports.results.push_back(r); });
}

TEST(CallSetup, AnswersWithTheClientsAnswerAndTheWorkersCall) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  std::vector<int> pts;
  auto media = std::make_unique<FakeMedia>();
  media->accepted_answer_pts = &pts;
  auto setup = make_setup(lease, nullptr, reports, std::move(media));
  setup->start({}, std::string(R"({"instructions":"hi"})"));
  ASSERT_EQ(a->offers.size(), 1u);
  EXPECT_EQ(a->offers[0].offer_sdp, "upstream-offer");
  EXPECT_EQ(a->offers[0].upstream_model, "upstream-model");
  EXPECT_EQ(a->offers[0].session_json, std::optional<std::string>(R"({"instructions":"hi"})"));
  a->respond(UpstreamAnswer{kWorkerAnswer, "up_1", 12.5});
  ASSERT_EQ(reports.results.size(), 1u);  // the success is reported by the step that completed it
  const CallAnswer* answer = reports.answer();
  ASSERT_NE(answer, nullptr);
  EXPECT_EQ(answer->answer_sdp, "client-answer");
  EXPECT_EQ(answer->upstream_call_id, "up_1");
  EXPECT_DOUBLE_EQ(answer->upstream_answer_ms, 12.5);
  EXPECT_EQ(pts, std::vector<int>{96});
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kSuccess});
  EXPECT_TRUE(a->hangups.empty());
  EXPECT_TRUE(setup->finished());
  EXPECT_EQ(a->live_calls(), 1);  // the call holds the lease until it ends
  setup.reset();
  lease.reset();
  EXPECT_EQ(a->live_calls(), 0);
}

TEST(CallSetup, AWorkerFailureFailsOverWithTheSameOfferAndMovesTheLease) {
  auto a = std::make_shared<FakeWorker>("a");
  auto b = std::make_shared<FakeWorker>("b");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  std::vector<std::vector<std::string>> asked;
  auto setup = make_setup(
      lease,
      [&](const std::vector<std::string>& tried) {
        asked.push_back(tried);
        return WorkerLease::acquire(b);
      },
      reports);
  setup->start({}, std::nullopt);
  a->respond(failure(UpstreamFailure::Kind::kStatus, 503, "{}"));
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kWorkerFailure});
  EXPECT_EQ(a->live_calls(), 0);  // released as the lease moved on
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], std::vector<std::string>{"a"});
  ASSERT_EQ(b->offers.size(), 1u);
  EXPECT_EQ(b->offers[0].offer_sdp, "upstream-offer");
  EXPECT_EQ(lease.signaller(), b);
  EXPECT_TRUE(reports.results.empty());
  b->respond(UpstreamAnswer{kWorkerAnswer, "up_b", 3});
  ASSERT_NE(reports.answer(), nullptr);
  EXPECT_EQ(reports.answer()->upstream_call_id, "up_b");
  EXPECT_EQ(b->outcomes, std::vector<SetupOutcome>{SetupOutcome::kSuccess});
  EXPECT_EQ(setup->tried_workers(), std::vector<std::string>{"a"});
  EXPECT_EQ(b->live_calls(), 1);
}

TEST(CallSetup, WithNoWorkerLeftTheLastFailureStandsAndIsReportedLater) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto setup = make_setup(
      lease, [](const std::vector<std::string>&) { return WorkerLease(); }, reports);
  setup->start({}, std::nullopt);
  a->respond(failure(UpstreamFailure::Kind::kConnect));
  EXPECT_TRUE(reports.results.empty());  // never inside the call that caused it
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kUpstreamUnreachable);
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kWorkerFailure});
  EXPECT_EQ(lease.signaller(), a);  // still held, settled, until the call is dropped
  EXPECT_EQ(reports.results.size(), 1u);
}

TEST(CallSetup, AClientErrorNeitherFailsOverNorCountsAgainstTheWorker) {
  auto a = std::make_shared<FakeWorker>("a", /*half_open=*/true);
  WorkerLease lease = WorkerLease::acquire(a);
  ASSERT_TRUE(lease.probe());
  Reports reports;
  int asked = 0;
  auto setup = make_setup(
      lease,
      [&](const std::vector<std::string>&) {
        asked++;
        return WorkerLease();
      },
      reports);
  setup->start({}, std::nullopt);
  a->respond(failure(UpstreamFailure::Kind::kStatus, 400, R"({"error":{"code":"bad"}})"));
  EXPECT_EQ(asked, 0);
  // The probe slot goes back with a neutral outcome: the breaker may let the next call through.
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kNeutral});
  EXPECT_EQ(a->probes, std::vector<bool>{true});
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kUpstreamStatus);
  EXPECT_EQ(reports.failure()->status, 400);
  EXPECT_EQ(reports.failure()->body, R"({"error":{"code":"bad"}})");
}

TEST(CallSetup, ACancelGivesTheProbeSlotBackAtOnceAndIsReportedLater) {
  auto a = std::make_shared<FakeWorker>("a", /*half_open=*/true);
  WorkerLease lease = WorkerLease::acquire(a);
  ASSERT_TRUE(lease.probe());
  Reports reports;
  auto setup = make_setup(lease, nullptr, reports);
  setup->start({}, std::nullopt);
  ASSERT_EQ(a->offers.size(), 1u);
  setup->fail({SetupFailure::Kind::kCancelled, 0, {}, "client went away"});
  EXPECT_TRUE(a->exchange_cancelled());
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kNeutral});
  EXPECT_EQ(a->probes, std::vector<bool>{true});
  EXPECT_TRUE(reports.results.empty());  // not inside fail(): the HTTP layer may be on the stack
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kCancelled);
  EXPECT_EQ(reports.failure()->message, "client went away");
  // Late news from the worker changes nothing; a second failure is not reported.
  a->respond(UpstreamAnswer{kWorkerAnswer, "up_late", 1});
  setup->fail({SetupFailure::Kind::kInternal, 0, {}, "ended"});
  drain_main_loop();
  EXPECT_EQ(reports.results.size(), 1u);
  EXPECT_EQ(a->outcomes.size(), 1u);
  setup.reset();
  lease.reset();
  EXPECT_EQ(a->live_calls(), 0);
}

TEST(CallSetup, ARefusedOfferNeverReachesAWorker) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto media = std::make_unique<FakeMedia>();
  media->refuse_offer = SetupFailure{SetupFailure::Kind::kInvalidOffer, 0, {}, "refused"};
  auto setup = make_setup(lease, nullptr, reports, std::move(media));
  setup->start({}, std::nullopt);
  EXPECT_TRUE(a->offers.empty());
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kNeutral});
  EXPECT_TRUE(reports.results.empty());
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kInvalidOffer);
}

TEST(CallSetup, TheUpstreamOfferIsMadeWhileTheClientsOfferIsTakenAndSentOnceAccepted) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto media = std::make_unique<FakeMedia>();
  media->hold_accept = true;
  FakeMedia* fake = media.get();
  auto setup = make_setup(lease, nullptr, reports, std::move(media));
  setup->start({}, std::nullopt);
  EXPECT_EQ(fake->upstream_offers_made, 1);  // not waiting for the client leg
  EXPECT_TRUE(a->offers.empty());            // but no worker sees it yet
  ASSERT_TRUE(fake->held_accept);
  fake->held_accept(std::nullopt);
  ASSERT_EQ(a->offers.size(), 1u);
  EXPECT_EQ(a->offers[0].offer_sdp, "upstream-offer");
}

TEST(CallSetup, AnOfferRefusedAfterTheUpstreamOfferWasMadeNeverReachesAWorker) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto media = std::make_unique<FakeMedia>();
  media->hold_accept = true;
  FakeMedia* fake = media.get();
  auto setup = make_setup(lease, nullptr, reports, std::move(media));
  setup->start({}, std::nullopt);
  EXPECT_EQ(fake->upstream_offers_made, 1);
  fake->held_accept(SetupFailure{SetupFailure::Kind::kInvalidOffer, 0, {}, "refused"});
  EXPECT_TRUE(a->offers.empty());
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kInvalidOffer);
}

TEST(CallSetup, AFailureAfterTheWorkerAnsweredHangsItsCallUp) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto setup = make_setup(lease, nullptr, reports);
  setup->start({}, std::nullopt);
  a->respond(UpstreamAnswer{kWorkerAnswerWithoutOpus, "up_1", 1});
  // The worker did answer: that closes its breaker; its call is hung up since nobody will use it.
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kSuccess});
  EXPECT_EQ(a->hangups, std::vector<std::string>{"up_1"});
  drain_main_loop();
  ASSERT_NE(reports.failure(), nullptr);
  EXPECT_EQ(reports.failure()->kind, SetupFailure::Kind::kUpstreamUnreachable);
  EXPECT_EQ(reports.failure()->message, "the worker's answer has no Opus");
}

TEST(CallSetup, DestroyedBeforeItsReportItReportsNothing) {
  auto a = std::make_shared<FakeWorker>("a");
  WorkerLease lease = WorkerLease::acquire(a);
  Reports reports;
  auto setup = make_setup(lease, nullptr, reports);
  setup->start({}, std::nullopt);
  setup->fail({SetupFailure::Kind::kInternal, 0, {}, "destroyed"});
  setup.reset();
  drain_main_loop();
  EXPECT_TRUE(reports.results.empty());
  EXPECT_TRUE(a->exchange_cancelled());
  EXPECT_EQ(a->outcomes, std::vector<SetupOutcome>{SetupOutcome::kNeutral});
}

}  // namespace
}  // namespace rtgw::calls
