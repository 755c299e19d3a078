// SPDX-License-Identifier: MIT
// Default caps sized from the open-file limit (config/capacity.h), and what configured caps keep.
#include <gtest/gtest.h>

#include "config/capacity.h"
#include "config/config.h"

namespace {

using rtgw::config::LimitsConfig;

rtgw::config::Config load(const char* text, std::map<std::string, std::string> env = {}) {
  return rtgw::config::load_from_text(text, "f", {},
                                      [env](const std::string& name) -> std::optional<std::string> {
                                        auto it = env.find(name);
                                        if (it == env.end()) return std::nullopt;
                                        return it->second;
                                      });
}

constexpr const char* kEcho = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
  "auth": {"keys": [{"name": "a", "key": "sk-aaaaaaaa", "models": ["*"]},
                    {"name": "b", "key": "sk-bbbbbbbb", "models": ["*"],
                     "max_concurrent_calls": 0}]}})";

}  // namespace

TEST(Capacity, SizedFromTheOpenFileLimitWithinTheDescriptorBudget) {
  for (std::uint64_t limit : {64u, 256u, 1024u, 4096u, 65536u, 1u << 20}) {
    auto c = rtgw::config::size_caps(limit);
    SCOPED_TRACE(limit);
    EXPECT_GE(c.max_calls, 1);
    EXPECT_GE(c.max_calls_per_key, 1);
    EXPECT_LE(c.max_calls_per_key, c.max_calls);
    EXPECT_GE(c.max_setups, 1);
    EXPECT_LE(c.max_setups, c.max_calls);
    EXPECT_GE(c.max_setups_per_key, 1);
    EXPECT_LE(c.max_setups_per_key, c.max_setups);
    EXPECT_LE(c.max_connections, rtgw::config::kMaxConnectionsCeiling);
    EXPECT_LE(c.max_calls, rtgw::config::kMaxCallsCeiling);
    // Every call and connection at once still fits under the limit, with the reserve left.
    if (limit >= 1024) {
      EXPECT_LE(std::int64_t{c.max_calls} * rtgw::config::kFdsPerCall + c.max_connections +
                    rtgw::config::kReservedFds,
                static_cast<std::int64_t>(limit));
    }
  }
  // The figures docs/security.md quotes.
  auto at1024 = rtgw::config::size_caps(1024);
  EXPECT_EQ(at1024.max_connections, 240);
  EXPECT_EQ(at1024.max_calls, 15);
  EXPECT_EQ(at1024.max_calls_per_key, 7);
  EXPECT_EQ(at1024.max_setups, 4);
  EXPECT_EQ(at1024.max_setups_per_key, 2);
  auto at256 = rtgw::config::size_caps(256);
  EXPECT_EQ(at256.max_connections, 48);
  EXPECT_EQ(at256.max_calls, 3);
  EXPECT_EQ(at256.max_setups, 3);
  EXPECT_EQ(at256.max_setups_per_key, 1);
  EXPECT_EQ(rtgw::config::size_caps(1u << 20).max_calls, rtgw::config::kMaxCallsCeiling);
}

TEST(Capacity, OnlyUnsetCapsAreSizedAndKeysGetThePerKeyDefault) {
  auto c = load(kEcho);
  EXPECT_EQ(c.limits.max_calls, LimitsConfig::kAuto);
  EXPECT_EQ(c.limits.max_sidebands_per_call, 4);
  rtgw::config::apply_sized_caps(c, 1024);
  EXPECT_EQ(c.limits.max_calls, 15);
  EXPECT_EQ(c.limits.max_setups, 4);
  EXPECT_EQ(c.limits.max_connections, 240);
  EXPECT_EQ(c.auth.keys[0].max_concurrent_calls, 7) << "a key without its own gets the default";
  EXPECT_EQ(c.auth.keys[1].max_concurrent_calls, 0) << "an explicit 0 stays unlimited";
  std::string described = rtgw::config::describe(c);
  EXPECT_NE(described.find("max_calls=15 (sized)"), std::string::npos) << described;
  EXPECT_NE(described.find("max_sidebands_per_call=4"), std::string::npos) << described;
  EXPECT_NE(described.find("open-file limit 1024"), std::string::npos) << described;

  auto set = load(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "limits": {"max_calls": 40, "max_setups_per_key": 3, "max_sidebands_per_call": 2}})");
  rtgw::config::apply_sized_caps(set, 1024);
  EXPECT_EQ(set.limits.max_calls, 40) << "configured: kept even above the sized figure";
  EXPECT_EQ(set.limits.max_calls_per_key, 20) << "the defaults follow a configured max_calls";
  EXPECT_EQ(set.limits.max_setups, 10);
  EXPECT_EQ(set.limits.max_setups_per_key, 3);
  EXPECT_EQ(set.limits.max_sidebands_per_call, 2);

  auto unlimited = load(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "limits": {"max_calls": 0}})");
  rtgw::config::apply_sized_caps(unlimited, 1024);
  EXPECT_EQ(unlimited.limits.max_calls, 0);
  EXPECT_EQ(unlimited.limits.max_calls_per_key, 0);
  EXPECT_EQ(unlimited.limits.max_setups, 4) << "set-ups stay bounded";

  auto from_env = load(kEcho, {{"RTGW_MAX_SETUPS", "9"},
                               {"RTGW_MAX_SETUPS_PER_KEY", "0"},
                               {"RTGW_MAX_CALLS_PER_KEY", "5"},
                               {"RTGW_MAX_SIDEBANDS_PER_CALL", "1"}});
  rtgw::config::apply_sized_caps(from_env, 1024);
  EXPECT_EQ(from_env.limits.max_setups, 9);
  EXPECT_EQ(from_env.limits.max_setups_per_key, 0);
  EXPECT_EQ(from_env.auth.keys[0].max_concurrent_calls, 5);
  EXPECT_EQ(from_env.limits.max_sidebands_per_call, 1);
  EXPECT_THROW(load(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "limits": {"max_setups": -1}})"),
               rtgw::config::ConfigError);
  EXPECT_THROW(load(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "limits": {"max_sidebands_per_call": "4"}})"),
               rtgw::config::ConfigError);
  EXPECT_THROW(load(kEcho, {{"RTGW_MAX_SETUPS", "x"}}), rtgw::config::ConfigError);
}
