// SPDX-License-Identifier: MIT
// Cluster mode's pure logic: the `cluster` config (file, env, defaults, errors), the internal
// secret check, and a cluster lease riding on the worker lease (through a fail-over, given back
// with it).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "cluster/cluster.h"
#include "config/config.h"
#include "workers/worker_pool.h"

namespace {

using rtgw::config::ConfigError;
using rtgw::config::EnvLookup;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const char* kModels = R"("models": [{"name": "e", "workers": [{"provider": "echo"}]}])";

rtgw::config::Config load(const std::string& extra, std::map<std::string, std::string> env = {}) {
  std::string text = std::string("{") + kModels + (extra.empty() ? "" : ", " + extra) + "}";
  return rtgw::config::load_from_text(text, "f.json", {}, env_of(std::move(env)));
}

std::string error_of(const std::string& extra, std::map<std::string, std::string> env = {}) {
  try {
    load(extra, std::move(env));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ClusterConfig, AbsentMeansOff) {
  auto c = load("");
  EXPECT_FALSE(c.cluster.enabled);
  EXPECT_NE(rtgw::config::describe(c).find("cluster: off"), std::string::npos);
}

TEST(ClusterConfig, TheSpecExample) {
  auto c = load(R"("listen": "0.0.0.0:8080",
      "cluster": {"redis_url": "redis://:pw@redis.internal:6380/3", "instance_id": "gw-1",
                  "advertise_url": "http://10.0.0.5:8080/", "internal_secret": "env:SECRET",
                  "lease_seconds": 10})",
                {{"SECRET", "0123456789abcdef-secret"}});
  ASSERT_TRUE(c.cluster.enabled);
  EXPECT_EQ(c.cluster.redis_host, "redis.internal");
  EXPECT_EQ(c.cluster.redis_port, 6380);
  EXPECT_EQ(c.cluster.redis_db, 3);
  EXPECT_EQ(c.cluster.redis_password, "pw");
  EXPECT_EQ(c.cluster.redis_user, "");
  EXPECT_EQ(c.cluster.instance_id, "gw-1");
  EXPECT_EQ(c.cluster.advertise_url, "http://10.0.0.5:8080");  // trailing slash dropped
  EXPECT_EQ(c.cluster.internal_secret, "0123456789abcdef-secret");
  EXPECT_EQ(c.cluster.lease_seconds, 10);
  std::string shown = rtgw::config::describe(c);
  EXPECT_NE(shown.find("cluster: redis=redis.internal:6380/3 (password set) instance_id=gw-1"),
            std::string::npos)
      << shown;
  EXPECT_EQ(shown.find("0123456789abcdef-secret"), std::string::npos) << "the secret is masked";
  EXPECT_EQ(shown.find(":pw@"), std::string::npos) << "the Redis password is masked";
}

TEST(ClusterConfig, EnvAloneTurnsItOnWithDefaults) {
  auto c = load(R"("listen": "127.0.0.1:9000")", {{"RTGW_CLUSTER_REDIS_URL", "redis://127.0.0.1"},
                                                  {"RTGW_CLUSTER_SECRET", "a-long-enough-secret"},
                                                  {"RTGW_CLUSTER_LEASE_SECONDS", "4"}});
  ASSERT_TRUE(c.cluster.enabled);
  EXPECT_EQ(c.cluster.redis_port, 6379);
  EXPECT_EQ(c.cluster.redis_db, 0);
  EXPECT_EQ(c.cluster.lease_seconds, 4);
  EXPECT_EQ(c.cluster.advertise_url, "http://127.0.0.1:9000");
  EXPECT_NE(c.cluster.instance_id.find(":9000"), std::string::npos) << c.cluster.instance_id;
  // env beats file
  auto e = load(R"("listen": "127.0.0.1:9000",
      "cluster": {"redis_url": "redis://a", "instance_id": "file", "internal_secret": "from-the-file-1234"})",
                {{"RTGW_CLUSTER_INSTANCE_ID", "env"}, {"RTGW_CLUSTER_REDIS_URL", "redis://b:1"}});
  EXPECT_EQ(e.cluster.instance_id, "env");
  EXPECT_EQ(e.cluster.redis_host, "b");
  EXPECT_EQ(e.cluster.redis_port, 1);
  auto acl =
      load(R"("listen": "127.0.0.1:9000")", {{"RTGW_CLUSTER_REDIS_URL", "redis://gw:p%40ss@h:7/1"},
                                             {"RTGW_CLUSTER_SECRET", "a-long-enough-secret"}});
  EXPECT_EQ(acl.cluster.redis_user, "gw");
  EXPECT_EQ(acl.cluster.redis_password, "p@ss");
}

TEST(ClusterConfig, ErrorsNameThePath) {
  const std::string secret = R"("internal_secret": "a-long-enough-secret")";
  EXPECT_NE(error_of(R"("cluster": {)" + secret + "}").find("$.cluster.redis_url: required"),
            std::string::npos);
  EXPECT_NE(error_of(R"("cluster": {"redis_url": "http://x", )" + secret + "}")
                .find("$.cluster.redis_url: expected redis://"),
            std::string::npos);
  EXPECT_NE(error_of(R"("cluster": {"redis_url": "redis://x", "internal_secret": "short"})")
                .find("$.cluster.internal_secret"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"("listen": "0.0.0.0:80", "cluster": {"redis_url": "redis://x", )" + secret + "}")
          .find("$.cluster.advertise_url"),
      std::string::npos);
  EXPECT_NE(error_of(R"("cluster": {"redis_url": "redis://x", "lease_seconds": 1, )" + secret + "}")
                .find("$.cluster.lease_seconds"),
            std::string::npos);
  EXPECT_NE(error_of(R"("cluster": {"redis": "redis://x"})").find("$.cluster.redis: unknown key"),
            std::string::npos);
}

TEST(Cluster, InternalSecretMustMatchExactly) {
  auto c = load(
      R"("cluster": {"redis_url": "redis://127.0.0.1:1", "internal_secret": "s3cret-s3cret-s3cret"})");
  auto cluster = std::make_shared<rtgw::cluster::Cluster>(c);  // not started: no Redis needed
  EXPECT_TRUE(cluster->internal_secret_matches("s3cret-s3cret-s3cret"));
  EXPECT_FALSE(cluster->internal_secret_matches(nullptr));
  EXPECT_FALSE(cluster->internal_secret_matches(""));
  EXPECT_FALSE(cluster->internal_secret_matches("s3cret-s3cret-s3cre"));
  EXPECT_FALSE(cluster->internal_secret_matches("s3cret-s3cret-s3cretX"));
  EXPECT_FALSE(cluster->internal_secret_matches("S3cret-s3cret-s3cret"));
}

// ---------------------------------------------------------------------------- lease attachment

struct Tracked : rtgw::workers::LeaseAttachment {
  explicit Tracked(int* alive) : alive_(alive) { ++*alive_; }
  ~Tracked() override { --*alive_; }
  int* alive_;
};

rtgw::config::Config two_workers() {
  rtgw::config::Config c;
  rtgw::config::ModelConfig m;
  m.name = m.upstream_model = "m";
  for (const char* name : {"a", "b"}) {
    rtgw::config::WorkerConfig w;
    w.name = name;
    w.provider = "openai";
    w.url = "http://127.0.0.1:9";  // never contacted
    w.health_path.clear();
    w.health_interval_seconds = 0;
    m.workers.push_back(w);
  }
  c.models.push_back(m);
  return c;
}

TEST(ClusterLease, RidesOnTheWorkerLeaseThroughAFailoverAndEndsWithIt) {
  rtgw::workers::WorkerPool pool(two_workers());
  int alive = 0;
  {
    auto lease = pool.pick("m");
    lease.attach(std::make_unique<Tracked>(&alive));
    ASSERT_EQ(alive, 1);
    std::vector<std::string> tried;
    rtgw::workers::FailoverFn next = [&pool](const std::vector<std::string>& t) {
      return pool.pick("m", t);
    };
    rtgw::workers::UpstreamFailure failure{rtgw::workers::UpstreamFailure::Kind::kStatus, 503, "{}",
                                           "503"};
    ASSERT_TRUE(rtgw::workers::fail_over(failure, lease, tried, next, "test"));
    EXPECT_EQ(lease->name(), "b");
    EXPECT_EQ(alive, 1) << "the cluster slot must follow the call to its next worker";
    auto moved = std::move(lease);
    EXPECT_EQ(alive, 1);
    moved.reset();
    EXPECT_EQ(alive, 0) << "giving the worker lease back gives the cluster slot back";
  }
  EXPECT_EQ(alive, 0);
}

}  // namespace
