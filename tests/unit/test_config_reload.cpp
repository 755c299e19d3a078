// SPDX-License-Identifier: MIT
// Config reload: snapshots and their generations (config/snapshots.h), what a reload changes and
// what needs a restart (config/reload_diff.h), the authenticator and the worker pool following
// the current snapshot.
#include <glib.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "config/config.h"
#include "config/reload_diff.h"
#include "config/snapshots.h"
#include "http/http_error.h"
#include "workers/worker.h"
#include "workers/worker_pool.h"

namespace {

using rtgw::config::Config;
using rtgw::config::ConfigView;
using rtgw::config::plan_reload;
using rtgw::config::Snapshots;

auto env = [](const std::string& name) -> std::optional<std::string> {
  if (name == "SECRET_B") return "sk-team-b-secret";
  return std::nullopt;
};

// A config file's text with `extra` spliced into its root object.
std::string file_with(const std::string& keys, const std::string& models,
                      const std::string& extra = "") {
  return R"({"listen": "127.0.0.1:8080", "auth": {"keys": [)" + keys + R"(]}, "models": [)" +
         models + "]" + (extra.empty() ? "" : ", " + extra) + "}";
}

const std::string kKeyA =
    R"({"name": "team-a", "key": "sk-team-a-secret", "models": ["gpt-realtime*"]})";
const std::string kKeyB = R"({"name": "team-b", "key": "env:SECRET_B", "models": ["*"]})";
const std::string kModelOne =
    R"({"name": "gpt-realtime", "workers": [{"provider": "openai", "url": "http://127.0.0.1:9001"}],
        "pricing": {"per_million_tokens": {"text_input": 4, "text_output": 16, "audio_input": 32, "audio_output": 64, "image_input": 5}}})";

Config load(const std::string& text) {
  return rtgw::config::load_from_text(text, "gateway.json", {}, env);
}

bool has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string all(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += s + "\n";
  return out;
}

TEST(ConfigReload, SameFileChangesNothing) {
  Config running = load(file_with(kKeyA, kModelOne));
  auto plan = plan_reload(running, load(file_with(kKeyA, kModelOne)));
  EXPECT_TRUE(plan.changed.empty()) << all(plan.changed);
  EXPECT_TRUE(plan.restart_required.empty()) << all(plan.restart_required);
}

TEST(ConfigReload, KeysAreReportedByNameNeverBySecret) {
  Config running = load(file_with(kKeyA + "," + kKeyB, kModelOne));
  const std::string key_c =
      R"({"name": "team-c", "key": "sk-team-c-secret", "models": ["gpt-realtime"]})";
  const std::string key_a_new =
      R"({"name": "team-a", "key": "sk-team-a-rotated", "models": ["gpt-realtime*"]})";
  auto plan = plan_reload(running, load(file_with(key_a_new + "," + key_c, kModelOne)));
  EXPECT_TRUE(has(plan.changed, "auth.keys[team-a]: changed")) << all(plan.changed);
  EXPECT_TRUE(has(plan.changed, "auth.keys[team-b]: removed")) << all(plan.changed);
  EXPECT_TRUE(has(plan.changed, "auth.keys[team-c]: added")) << all(plan.changed);
  for (const auto& line : plan.changed) EXPECT_EQ(line.find("sk-"), std::string::npos) << line;
  ASSERT_EQ(plan.next.auth.keys.size(), 2u);
  EXPECT_EQ(plan.next.auth.keys[0].key, "sk-team-a-rotated");
}

TEST(ConfigReload, ModelsPricesAndWorkersByNameAndUrl) {
  Config running = load(file_with(kKeyA, kModelOne));
  const std::string model_one_new =
      R"({"name": "gpt-realtime", "workers": [{"provider": "openai", "url": "http://127.0.0.1:9002"}],
          "pricing": {"per_million_tokens": {"text_input": 40}}})";
  const std::string model_two =
      R"({"name": "gpt-realtime-mini", "workers": [{"provider": "echo"}]})";
  auto plan = plan_reload(running, load(file_with(kKeyA, model_one_new + "," + model_two)));
  EXPECT_TRUE(has(plan.changed, "models[gpt-realtime-mini]: added")) << all(plan.changed);
  EXPECT_TRUE(has(plan.changed, "models[gpt-realtime]: pricing changed")) << all(plan.changed);
  // The default worker name is the URL's host: a new port is the same name, another config.
  bool worker_reported =
      has(plan.changed, "models[gpt-realtime].workers: changed http://127.0.0.1:9002") ||
      (has(plan.changed, "models[gpt-realtime].workers: added http://127.0.0.1:9002") &&
       has(plan.changed, "models[gpt-realtime].workers: removed http://127.0.0.1:9001"));
  EXPECT_TRUE(worker_reported) << all(plan.changed);
  ASSERT_NE(plan.next.find_model("gpt-realtime"), nullptr);
  EXPECT_EQ(plan.next.find_model("gpt-realtime")->pricing->text_input.value_or(0), 40);

  auto back = plan_reload(plan.next, load(file_with(kKeyA, model_one_new)));
  EXPECT_TRUE(has(back.changed, "models[gpt-realtime-mini]: removed")) << all(back.changed);
}

TEST(ConfigReload, RestartOnlyKeysAreReportedAndKeepTheirRunningValue) {
  Config running = load(file_with(kKeyA, kModelOne, R"("usage": {"log": "a.jsonl"})"));
  std::string text =
      file_with(kKeyA, kModelOne,
                R"("usage": {"log": "b.jsonl"}, "webrtc": {"stun_server": "stun:other:3478"},
         "cors_origins": ["https://app.example.com"], "limits": {"max_calls": 7},
         "cluster": {"redis_url": "redis://127.0.0.1:6390",
                     "internal_secret": "0123456789abcdef0123"})");
  text.replace(text.find("127.0.0.1:8080"), 14, "127.0.0.1:9090");
  auto plan = plan_reload(running, load(text));
  for (const char* key : {"listen", "usage.log", "webrtc.stun_server", "cluster.redis_url"})
    EXPECT_TRUE(has(plan.restart_required, key)) << key << "\n" << all(plan.restart_required);
  EXPECT_TRUE(has(plan.restart_required, "cluster")) << all(plan.restart_required);
  EXPECT_EQ(plan.next.listen, "127.0.0.1:8080");
  EXPECT_EQ(plan.next.usage_log, "a.jsonl");
  EXPECT_EQ(plan.next.webrtc.stun_server, running.webrtc.stun_server);
  EXPECT_FALSE(plan.next.cluster.enabled);
  // Applied: reloadable scalars.
  EXPECT_TRUE(has(plan.changed, "cors_origins")) << all(plan.changed);
  EXPECT_TRUE(has(plan.changed, "limits.max_calls")) << all(plan.changed);
  EXPECT_EQ(plan.next.limits.max_calls, 7);
  EXPECT_EQ(plan.next.cors_origins, std::vector<std::string>{"https://app.example.com"});
  for (const auto& key : plan.changed) EXPECT_FALSE(has(plan.restart_required, key)) << key;
}

TEST(ConfigReload, PolicyIsApplied) {
  Config running = load(file_with(kKeyA, kModelOne));
  auto plan = plan_reload(
      running,
      load(file_with(kKeyA, kModelOne,
                     R"("policy": {"deny_client_events": [{"type": "session.update"}]})")));
  EXPECT_TRUE(has(plan.changed, "policy")) << all(plan.changed);
  EXPECT_NE(plan.next.policy_json.find("deny_client_events"), std::string::npos);
}

TEST(ConfigReload, TurningTlsOnNeedsARestart) {
  Config running = load(file_with(kKeyA, kModelOne));
  Config next = load(file_with(kKeyA, kModelOne));
  next.tls.cert_file = "/etc/rtgw/cert.pem";
  next.tls.key_file = "/etc/rtgw/key.pem";
  auto plan = plan_reload(running, std::move(next));
  EXPECT_TRUE(has(plan.restart_required, "tls.cert_file")) << all(plan.restart_required);
  EXPECT_FALSE(has(plan.changed, "tls.cert_file")) << all(plan.changed);
  EXPECT_FALSE(plan.next.tls.enabled());
}

TEST(ConfigSnapshots, GenerationsAndLiveHolders) {
  Snapshots snapshots(load(file_with(kKeyA, kModelOne)));
  EXPECT_EQ(snapshots.generation(), 1u);
  auto held = snapshots.snapshot();  // what a live call started with
  ConfigView view(snapshots);
  EXPECT_EQ(snapshots.replace(load(file_with(kKeyB, kModelOne)), 0), 2u);
  EXPECT_EQ(view.current().auth.keys[0].name, "team-b");
  EXPECT_EQ(held->auth.keys[0].name, "team-a") << "a held snapshot never changes";
  EXPECT_EQ(snapshots.retained(), 1u);
  // A retired snapshot is freed once kRetainSeconds have passed (at the next reload).
  const std::int64_t later_us = (Snapshots::kRetainSeconds + 1) * G_USEC_PER_SEC;
  EXPECT_EQ(snapshots.replace(load(file_with(kKeyA, kModelOne)), later_us), 3u);
  EXPECT_EQ(snapshots.retained(), 1u);
  EXPECT_EQ(held.use_count(), 1) << "only this test holds generation 1 now";
}

TEST(ConfigSnapshots, AuthenticatorFollowsTheCurrentSnapshot) {
  Snapshots snapshots(load(file_with(kKeyA, kModelOne)));
  rtgw::auth::Authenticator auth(snapshots);
  EXPECT_EQ(auth.authenticate("Bearer sk-team-a-secret").key_name, "team-a");
  EXPECT_THROW(auth.authenticate("Bearer sk-team-b-secret"), rtgw::http::HttpError);
  snapshots.replace(load(file_with(kKeyB, kModelOne)), 0);
  EXPECT_EQ(auth.authenticate("Bearer sk-team-b-secret").key_name, "team-b");
  EXPECT_THROW(auth.authenticate("Bearer sk-team-a-secret"), rtgw::http::HttpError);
}

TEST(ConfigSnapshots, WildcardReachesAModelAddedByReload) {
  // No expansion of `gpt-realtime*` is cached anywhere: the pattern is matched against the
  // current snapshot's models at each request.
  Snapshots snapshots(load(file_with(kKeyA, kModelOne)));
  rtgw::auth::Authenticator auth(snapshots);
  auto before = auth.authenticate("Bearer sk-team-a-secret");
  EXPECT_EQ(snapshots.current().find_model("gpt-realtime-2"), nullptr);
  const std::string model_two =
      R"({"name": "gpt-realtime-2", "workers": [{"provider": "openai", "url": "http://127.0.0.1:9003"}]})";
  snapshots.replace(load(file_with(kKeyA, kModelOne + "," + model_two)), 0);
  auto after = auth.authenticate("Bearer sk-team-a-secret");
  ASSERT_NE(snapshots.current().find_model("gpt-realtime-2"), nullptr);
  EXPECT_TRUE(after.may_use("gpt-realtime-2"));
  rtgw::workers::WorkerPool pool(snapshots.current());
  pool.apply(snapshots.current());
  EXPECT_TRUE(pool.pick("gpt-realtime-2"));
}

std::shared_ptr<rtgw::workers::Worker> find(const rtgw::workers::WorkerPool& pool,
                                            const std::string& url) {
  for (const auto& w : pool.all_remote())
    if (w->config().url == url) return w;
  return nullptr;
}

TEST(ConfigReload, WorkerPoolKeepsUnchangedWorkersAndDrainsRemovedOnes) {
  auto model = [](const std::vector<std::string>& ports) {
    std::string workers;
    for (const auto& p : ports)
      workers += (workers.empty() ? "" : ",") +
                 std::string(R"({"provider": "openai", "name": "w)") + p +
                 R"(", "url": "http://127.0.0.1:)" + p + R"("})";
    return R"({"name": "gpt-realtime", "workers": [)" + workers + "]}";
  };
  Config first = load(file_with(kKeyA, model({"9001", "9002"})));
  rtgw::workers::WorkerPool pool(first);
  auto kept = find(pool, "http://127.0.0.1:9001");
  auto removed = find(pool, "http://127.0.0.1:9002");
  ASSERT_TRUE(kept && removed);
  // A live call on each.
  auto on_kept = pool.pick("gpt-realtime");
  auto on_removed = pool.pick("gpt-realtime");
  ASSERT_TRUE(on_kept && on_removed);
  std::weak_ptr<rtgw::workers::Worker> removed_weak = removed;
  removed.reset();

  Config second = load(file_with(kKeyA, model({"9001", "9003"})));
  auto draining = pool.apply(second);
  ASSERT_EQ(draining.size(), 1u);
  EXPECT_EQ(draining[0]->config().url, "http://127.0.0.1:9002");
  EXPECT_TRUE(draining[0]->retired());
  draining.clear();
  EXPECT_EQ(find(pool, "http://127.0.0.1:9001"), kept) << "an unchanged worker keeps its state";
  EXPECT_EQ(kept->live_calls(), 1);
  EXPECT_NE(find(pool, "http://127.0.0.1:9003"), nullptr);
  EXPECT_EQ(find(pool, "http://127.0.0.1:9002"), nullptr);
  // New calls never go to the removed worker.
  for (int i = 0; i < 4; i++) {
    auto lease = pool.pick("gpt-realtime");
    ASSERT_TRUE(lease);
    EXPECT_NE(lease->name(), "w9002");
  }
  // Its live call holds it until it ends.
  ASSERT_FALSE(removed_weak.expired());
  EXPECT_EQ(on_removed->name(), "w9002");
  on_removed = rtgw::workers::WorkerLease();
  EXPECT_TRUE(removed_weak.expired()) << "freed with its last lease";
}

}  // namespace
