// SPDX-License-Identifier: MIT
// Call set-up hardening (issue 11): the initial session under the policy, and an upstream
// 401/403 counted against the worker without failing over.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/json.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "workers/upstream_signaller.h"
#include "workers/worker_lease.h"

namespace {

using rtgw::http::apply_initial_session_policy;
using rtgw::http::HttpError;

const char* kFilterPriority =
    R"({"service_tier":[{"tier":"priority","action":"filter","models":["*"],"keys":["*"]}]})";
const char* kBlockPriorityForB =
    R"({"service_tier":[{"tier":"priority","action":"block","models":["gpt-realtime"],)"
    R"("keys":["team-b"]}]})";

std::string member(const std::string& session, const char* name) {
  auto node = rtgw::json::parse(session);
  EXPECT_TRUE(node);
  if (!node) return "<unparsable>";
  JsonObject* obj = json_node_get_object(node.get());
  if (!json_object_has_member(obj, name)) return "<absent>";
  return rtgw::json::get_string(obj, name).value_or("<not a string>");
}

int status_of(const std::string& policy, const std::string& key, const std::string& session) {
  try {
    apply_initial_session_policy(policy, key, "gpt-realtime", session);
    return 200;
  } catch (const HttpError& e) {
    if (e.status() == 403) {
      EXPECT_EQ(e.code(), "policy_violation");
    }
    return e.status();
  }
}

TEST(InitialSession, NoPolicyLeavesTheSessionAsIs) {
  const std::string s = R"({"model":"gpt-realtime","service_tier":"priority"})";
  EXPECT_EQ(apply_initial_session_policy("", "team-a", "gpt-realtime", s), s);
}

TEST(InitialSession, FilterRemovesTheTierAndKeepsTheRest) {
  std::string out = apply_initial_session_policy(
      kFilterPriority, "team-a", "gpt-realtime",
      R"({"model":"gpt-realtime","service_tier":" FAST ","instructions":"keep me"})");
  EXPECT_EQ(member(out, "service_tier"), "<absent>");
  EXPECT_EQ(member(out, "instructions"), "keep me");
  EXPECT_EQ(member(out, "model"), "gpt-realtime");
}

TEST(InitialSession, BlockIsPolicyViolationForTheRuleKeyAndModelOnly) {
  const std::string s = R"({"service_tier":"priority"})";
  EXPECT_EQ(status_of(kBlockPriorityForB, "team-b", s), 403);
  EXPECT_EQ(status_of(kBlockPriorityForB, "team-a", s), 200);
  // the session's own model is the one the rule sees
  EXPECT_EQ(status_of(kBlockPriorityForB, "team-b",
                      R"({"model":"gpt-realtime-mini","service_tier":"priority"})"),
            200);
  EXPECT_EQ(status_of(kBlockPriorityForB, "team-b", R"({"service_tier":"auto"})"), 200);
}

TEST(InitialSession, DeniedSessionUpdateRefusesAnyInitialSession) {
  const char* policy = R"({"deny_client_events":[{"type":"session.update","keys":["team-b"]}]})";
  EXPECT_EQ(status_of(policy, "team-b", R"({"tools":[]})"), 403);
  EXPECT_EQ(status_of(policy, "team-a", R"({"tools":[]})"), 200);
}

TEST(InitialSession, TheEventSizeLimitDoesNotApply) {
  std::string big = R"({"instructions":")" + std::string(100000, 'x') + R"("})";
  EXPECT_EQ(
      apply_initial_session_policy(R"({"max_event_bytes":1000})", "team-a", "gpt-realtime", big),
      big);
}

TEST(InitialSession, DuplicateTiersAreAllFiltered) {
  std::string out = apply_initial_session_policy(
      kFilterPriority, "team-a", "gpt-realtime",
      R"({"service_tier":"priority","instructions":"x","service_tier":"fast"})");
  EXPECT_EQ(out.find("service_tier"), std::string::npos) << out;
}

// A worker that records how the failover logic settles its lease.
class RecordingWorker : public rtgw::workers::UpstreamSignaller {
 public:
  explicit RecordingWorker(std::string name) : name_(std::move(name)) {}
  void exchange(const rtgw::workers::OfferRequest&, GCancellable*,
                std::function<void(rtgw::workers::UpstreamResult)>) override {}
  void hangup(const std::string&) override {}
  void open_socket(const rtgw::workers::SocketRequest&, rtgw::workers::UpstreamSocket::Listener*,
                   GCancellable*, std::function<void(rtgw::workers::SocketResult)>) override {}
  const std::string& name() const override { return name_; }
  std::vector<rtgw::workers::SetupOutcome> outcomes;

 protected:
  void settle(rtgw::workers::SetupOutcome outcome, bool) override { outcomes.push_back(outcome); }

 private:
  std::string name_;
};

using rtgw::workers::SetupOutcome;
using rtgw::workers::UpstreamFailure;
using rtgw::workers::WorkerLease;

TEST(FailOver, UpstreamAuthFailureCountsAgainstTheWorkerWithoutFailover) {
  for (int status : {401, 403}) {
    auto current = std::make_shared<RecordingWorker>("a");
    auto next = std::make_shared<RecordingWorker>("b");
    WorkerLease lease = WorkerLease::acquire(current);
    std::vector<std::string> tried;
    int asked = 0;
    bool moved = rtgw::workers::fail_over(
        UpstreamFailure{UpstreamFailure::Kind::kStatus, status, "{}", "refused"}, lease, tried,
        [&](const std::vector<std::string>&) {
          asked++;
          return WorkerLease::acquire(next);
        },
        "test");
    EXPECT_FALSE(moved) << status;
    EXPECT_EQ(asked, 0) << status;
    EXPECT_EQ(current->outcomes, std::vector<SetupOutcome>{SetupOutcome::kWorkerFailure}) << status;
  }
}

TEST(FailOver, ClientErrorsNeverCountAndWorkerErrorsFailOver) {
  auto current = std::make_shared<RecordingWorker>("a");
  auto next = std::make_shared<RecordingWorker>("b");
  std::vector<std::string> tried;
  auto pick = [&](const std::vector<std::string>&) { return WorkerLease::acquire(next); };
  {
    WorkerLease lease = WorkerLease::acquire(current);
    EXPECT_FALSE(rtgw::workers::fail_over({UpstreamFailure::Kind::kStatus, 400, "{}", "bad"}, lease,
                                          tried, pick, "test"));
    EXPECT_EQ(current->outcomes, std::vector<SetupOutcome>{SetupOutcome::kNeutral});
  }
  current->outcomes.clear();
  WorkerLease lease = WorkerLease::acquire(current);
  EXPECT_TRUE(rtgw::workers::fail_over({UpstreamFailure::Kind::kStatus, 503, "{}", "busy"}, lease,
                                       tried, pick, "test"));
  EXPECT_EQ(current->outcomes, std::vector<SetupOutcome>{SetupOutcome::kWorkerFailure});
  EXPECT_EQ(lease.signaller(), next);
}

}  // namespace
