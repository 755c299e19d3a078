// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "config/config.h"

namespace {

using rtgw::config::ConfigError;
using rtgw::config::EnvLookup;
using rtgw::config::Overrides;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const char* kSpecConfig = R"({
  "listen": "127.0.0.1:8080",
  "cors_origins": ["https://app.example.com"],
  "auth": {
    "keys": [ { "name": "team-a", "key": "sk-team-a-123", "models": ["gpt-realtime*", "echo"],
                "max_concurrent_calls": 10 },
              { "name": "ops", "key": "env:RTGW_ADMIN_KEY", "models": ["*"], "admin": true,
                "budget_tokens": 5000 } ],
    "token_secret": "s3cret",
    "token_ttl_seconds": 600
  },
  "models": [
    { "name": "gpt-realtime", "upstream_model": "gpt-realtime",
      "workers": [ { "url": "https://api.openai.com", "api_key": "env:OPENAI_API_KEY",
                     "provider": "openai" } ] },
    { "name": "echo", "workers": [ { "provider": "echo" } ] }
  ],
  "webrtc": { "stun_server": "stun:stun.example.com:3478", "turn_servers": [], "nat_1to1_ips": ["203.0.113.7"],
              "ice_interfaces": [], "udp_port_min": 40000, "udp_port_max": 40100 },
  "policy": {
    "service_tier": [ { "tier": "priority", "action": "filter", "models": ["*"], "keys": ["*"],
                        "fallback": "pass" } ],
    "deny_client_events": [ { "type": "session.update", "keys": ["team-b"] } ],
    "max_event_bytes": 65536
  },
  "usage": { "log": "usage.jsonl" }
})";

auto spec_env = env_of({{"RTGW_ADMIN_KEY", "sk-admin-xyz"}, {"OPENAI_API_KEY", "sk-openai"}});

TEST(Config, LoadsTheSpecExample) {
  auto c = rtgw::config::load_from_text(kSpecConfig, "spec.json", {}, spec_env);
  EXPECT_EQ(c.listen, "127.0.0.1:8080");
  ASSERT_EQ(c.auth.keys.size(), 2u);
  EXPECT_EQ(c.auth.keys[0].max_concurrent_calls, 10);
  EXPECT_EQ(c.auth.keys[1].key, "sk-admin-xyz");  // env: resolved
  EXPECT_TRUE(c.auth.keys[1].admin);
  EXPECT_EQ(c.auth.keys[1].budget_tokens.value_or(0), 5000);
  ASSERT_EQ(c.models.size(), 2u);
  EXPECT_EQ(c.models[0].workers[0].api_key, "sk-openai");
  EXPECT_EQ(c.models[1].workers[0].provider, "echo");
  EXPECT_EQ(c.webrtc.nat_1to1_ips, std::vector<std::string>{"203.0.113.7"});
  EXPECT_EQ(c.webrtc.udp_port_min, 40000);
  EXPECT_NE(c.policy_json.find("service_tier"), std::string::npos);
  EXPECT_EQ(c.usage_log, "usage.jsonl");
}

TEST(Config, MissingEnvSecretNamesThePath) {
  try {
    rtgw::config::load_from_text(kSpecConfig, "spec.json", {}, env_of({{"OPENAI_API_KEY", "x"}}));
    FAIL();
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("spec.json"), std::string::npos) << what;
    EXPECT_NE(what.find("$.auth.keys[1].key"), std::string::npos) << what;
    EXPECT_NE(what.find("RTGW_ADMIN_KEY"), std::string::npos) << what;
  }
}

void expect_error(const std::string& text, const std::string& path, const std::string& reason) {
  try {
    rtgw::config::load_from_text(text, "f.json", {}, env_of({}));
    FAIL() << "accepted: " << text;
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("f.json: " + path + ": "), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what;
  }
}

TEST(Config, ErrorsNameFilePathAndReason) {
  expect_error("{", "$", "invalid JSON");
  expect_error("[]", "$", "expected an object");
  expect_error(R"({"listen": 5, "models": []})", "$.listen", "expected a string");
  expect_error(R"({"lisen": "x"})", "$.lisen", "unknown key");
  expect_error(R"({"models": [{"name": "m", "workers": [{"provider": "openai"}]}]})",
               "$.models[0].workers[0].url", "required");
  expect_error(R"({"models": [{"name": "m", "workers": [{"provider": "nope"}]}]})",
               "$.models[0].workers[0].provider", "must be one of");
  expect_error(R"({"models": [{"name": "m", "workers": [{"url": "ftp://x"}]}]})",
               "$.models[0].workers[0].url", "scheme");
  expect_error(R"({"models": [{"name": "m", "workers": []}]})", "$.models[0].workers",
               "at least one");
  expect_error(R"({"models": []})", "$.models", "no models");
  expect_error(
      R"({"listen": "nowhere", "models": [{"name": "e", "workers": [{"provider": "echo"}]}]})",
      "$.listen", "HOST:PORT");
  expect_error(
      R"({"auth": {"keys": [{"name": "a"}]}, "models": [{"name": "e", "workers": [{"provider": "echo"}]}]})",
      "$.auth.keys[0].key", "required");
  expect_error(
      R"({"auth": {"token_ttl_seconds": 5}, "models": [{"name": "e", "workers": [{"provider": "echo"}]}]})",
      "$.auth.token_ttl_seconds", "between 10 and 7200");
  expect_error(
      R"({"webrtc": {"udp_port_min": 5000}, "models": [{"name": "e", "workers": [{"provider": "echo"}]}]})",
      "$.webrtc.udp_port_min", "neither");
}

TEST(Config, FlagsBeatEnvBeatFile) {
  const char* text =
      R"({"listen": "127.0.0.1:1000", "models": [{"name": "e", "workers": [{"provider": "echo"}]}]})";
  auto env = env_of({{"RTGW_LISTEN", "127.0.0.1:2000"},
                     {"RTGW_WEBRTC_NAT_1TO1_IPS", "198.51.100.1, 198.51.100.2"},
                     {"RTGW_WEBRTC_ICE_INTERFACES", "eth0"}});
  auto from_env = rtgw::config::load_from_text(text, "f", {}, env);
  EXPECT_EQ(from_env.listen, "127.0.0.1:2000");
  EXPECT_EQ(from_env.webrtc.nat_1to1_ips,
            (std::vector<std::string>{"198.51.100.1", "198.51.100.2"}));
  EXPECT_EQ(from_env.webrtc.ice_interfaces, std::vector<std::string>{"eth0"});
  Overrides flags;
  flags.listen = "127.0.0.1:3000";
  EXPECT_EQ(rtgw::config::load_from_text(text, "f", flags, env).listen, "127.0.0.1:3000");
  EXPECT_EQ(rtgw::config::load_from_text(text, "f", {}, env_of({})).listen, "127.0.0.1:1000");
}

TEST(Config, PeerTimeoutFileEnvAndDefault) {
  const char* plain = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}]})";
  auto d = rtgw::config::load_from_text(plain, "f", {}, env_of({}));
  EXPECT_EQ(d.webrtc.peer_timeout_seconds, 10);
  EXPECT_EQ(d.webrtc.client_media_timeout_seconds, 0);  // deprecated: off unless set
  const char* text =
      R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
          "webrtc": {"peer_timeout_seconds": 4, "client_media_timeout_seconds": 2}})";
  auto f = rtgw::config::load_from_text(text, "f", {}, env_of({}));
  EXPECT_EQ(f.webrtc.peer_timeout_seconds, 4);
  EXPECT_EQ(f.webrtc.client_media_timeout_seconds, 2);
  auto e = rtgw::config::load_from_text(text, "f", {},
                                        env_of({{"RTGW_WEBRTC_PEER_TIMEOUT_SECONDS", "0"}}));
  EXPECT_EQ(e.webrtc.peer_timeout_seconds, 0);
  expect_error(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
                   "webrtc": {"peer_timeout_seconds": -1}})",
               "$.webrtc.peer_timeout_seconds", "");
}

TEST(Config, IceAgentFileEnvAndDefault) {
  const char* plain = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}]})";
  EXPECT_EQ(rtgw::config::load_from_text(plain, "f", {}, env_of({})).webrtc.ice_agent, "shared");
  const char* stock = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
                          "webrtc": {"ice_agent": "stock"}})";
  EXPECT_EQ(rtgw::config::load_from_text(stock, "f", {}, env_of({})).webrtc.ice_agent, "stock");
  EXPECT_EQ(
      rtgw::config::load_from_text(plain, "f", {}, env_of({{"RTGW_WEBRTC_ICE_AGENT", "stock"}}))
          .webrtc.ice_agent,
      "stock");
  expect_error(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
                   "webrtc": {"ice_agent": "libnice"}})",
               "$.webrtc.ice_agent", "must be \"shared\" or \"stock\"");
}

TEST(Config, JitterbufferSwitchFileEnvAndDefault) {
  const char* plain = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}]})";
  EXPECT_FALSE(rtgw::config::load_from_text(plain, "f", {}, env_of({})).webrtc.jitterbuffer);
  const char* on = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
                       "webrtc": {"jitterbuffer": true}})";
  EXPECT_TRUE(rtgw::config::load_from_text(on, "f", {}, env_of({})).webrtc.jitterbuffer);
  for (const char* v : {"true", "1"})
    EXPECT_TRUE(
        rtgw::config::load_from_text(plain, "f", {}, env_of({{"RTGW_WEBRTC_JITTERBUFFER", v}}))
            .webrtc.jitterbuffer);
  for (const char* v : {"false", "0"})
    EXPECT_FALSE(
        rtgw::config::load_from_text(on, "f", {}, env_of({{"RTGW_WEBRTC_JITTERBUFFER", v}}))
            .webrtc.jitterbuffer);
  expect_error(R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
                   "webrtc": {"jitterbuffer": "yes"}})",
               "$.webrtc.jitterbuffer", "expected true or false");
  try {
    rtgw::config::load_from_text(plain, "f", {}, env_of({{"RTGW_WEBRTC_JITTERBUFFER", "yes"}}));
    ADD_FAILURE() << "RTGW_WEBRTC_JITTERBUFFER=yes accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("RTGW_WEBRTC_JITTERBUFFER"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("'yes'"), std::string::npos) << e.what();
  }
}

TEST(Config, BadEnvValueIsAnError) {
  const char* text = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}]})";
  EXPECT_THROW(
      rtgw::config::load_from_text(text, "f", {}, env_of({{"RTGW_WEBRTC_UDP_PORT_MIN", "abc"}})),
      ConfigError);
}

TEST(Config, BuiltInDefault) {
  auto c = rtgw::config::load("", {}, env_of({}));
  EXPECT_EQ(c.listen, "127.0.0.1:8080");
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].name, "echo");
  EXPECT_TRUE(c.auth.keys.empty());
  auto with_openai = rtgw::config::load("", {}, env_of({{"OPENAI_API_KEY", "sk-x"}}));
  ASSERT_NE(with_openai.find_model("gpt-realtime"), nullptr);
  EXPECT_EQ(with_openai.find_model("gpt-realtime")->workers[0].api_key, "sk-x");
}

TEST(Config, GlobMatch) {
  EXPECT_TRUE(rtgw::config::glob_match("*", "anything"));
  EXPECT_TRUE(rtgw::config::glob_match("gpt-realtime*", "gpt-realtime-mini"));
  EXPECT_TRUE(rtgw::config::glob_match("gpt-realtime*", "gpt-realtime"));
  EXPECT_FALSE(rtgw::config::glob_match("gpt-realtime*", "echo"));
  EXPECT_TRUE(rtgw::config::glob_match("echo", "echo"));
  EXPECT_FALSE(rtgw::config::glob_match("echo", "echo2"));
}

}  // namespace

TEST(Config, HttpServerLimits) {
  const char* text = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "limits": {"max_header_bytes": 8192, "header_timeout_seconds": 3, "idle_timeout_seconds": 7,
               "max_connections": 50}})";
  auto defaults = rtgw::config::load("", {}, env_of({}));
  EXPECT_EQ(defaults.limits.max_header_bytes, 16384);
  EXPECT_EQ(defaults.limits.header_timeout_seconds, 10);
  EXPECT_EQ(defaults.limits.idle_timeout_seconds, 60);
  // Not configured: sized from the open-file limit at start-up (test_capacity.cpp).
  EXPECT_EQ(defaults.limits.max_connections, rtgw::config::LimitsConfig::kAuto);
  auto c = rtgw::config::load_from_text(text, "f", {}, env_of({}));
  EXPECT_EQ(c.limits.max_header_bytes, 8192);
  EXPECT_EQ(c.limits.header_timeout_seconds, 3);
  EXPECT_EQ(c.limits.idle_timeout_seconds, 7);
  EXPECT_EQ(c.limits.max_connections, 50);
  EXPECT_NE(rtgw::config::describe(c).find("max_connections=50"), std::string::npos);
  auto from_env = rtgw::config::load_from_text(text, "f", {},
                                               env_of({{"RTGW_MAX_HEADER_BYTES", "4096"},
                                                       {"RTGW_HEADER_TIMEOUT_SECONDS", "2"},
                                                       {"RTGW_IDLE_TIMEOUT_SECONDS", "5"},
                                                       {"RTGW_MAX_CONNECTIONS", "9"},
                                                       {"RTGW_MAX_BODY_BYTES", "2048"}}));
  EXPECT_EQ(from_env.limits.max_header_bytes, 4096);
  EXPECT_EQ(from_env.limits.header_timeout_seconds, 2);
  EXPECT_EQ(from_env.limits.idle_timeout_seconds, 5);
  EXPECT_EQ(from_env.limits.max_connections, 9);
  EXPECT_EQ(from_env.limits.max_body_bytes, 2048);
  EXPECT_THROW(rtgw::config::load_from_text(R"({"limits": {"max_header_bytes": 100000}})", "f", {},
                                            env_of({})),
               ConfigError);
  EXPECT_THROW(
      rtgw::config::load_from_text(R"({"limits": {"max_connections": 0}})", "f", {}, env_of({})),
      ConfigError);
}

TEST(Config, WebSocketSection) {
  const char* text = R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
    "websocket": {"idle_timeout_seconds": 30, "max_message_bytes": 2048}})";
  auto c = rtgw::config::load_from_text(text, "f", {}, env_of({}));
  EXPECT_EQ(c.websocket.idle_timeout_seconds, 30);
  EXPECT_EQ(c.websocket.max_message_bytes, 2048);
  auto from_env =
      rtgw::config::load_from_text(text, "f", {},
                                   env_of({{"RTGW_WEBSOCKET_IDLE_TIMEOUT_SECONDS", "0"},
                                           {"RTGW_WEBSOCKET_MAX_MESSAGE_BYTES", "65536"}}));
  EXPECT_EQ(from_env.websocket.idle_timeout_seconds, 0);
  EXPECT_EQ(from_env.websocket.max_message_bytes, 65536);
  EXPECT_NE(rtgw::config::describe(c).find("idle_timeout_seconds=30"), std::string::npos);
  try {
    rtgw::config::load_from_text(R"({"websocket": {"max_message_bytes": 10}})", "f.json", {},
                                 env_of({}));
    FAIL() << "a too small max_message_bytes must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("f.json: $.websocket.max_message_bytes"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(rtgw::config::load_from_text(R"({"websocket": {"idle": 1}})", "f", {}, env_of({})),
               ConfigError);
}

TEST(Config, MaxOutgoingBufferBytesFromFileAndEnv) {
  const char* models = R"("models": [{"name": "e", "workers": [{"provider": "echo"}]}])";
  auto defaults =
      rtgw::config::load_from_text(std::string("{") + models + "}", "f", {}, env_of({}));
  EXPECT_EQ(defaults.limits.max_outgoing_buffer_bytes, 4 << 20);
  std::string text =
      std::string("{") + models + R"(, "limits": {"max_outgoing_buffer_bytes": 65536}})";
  EXPECT_EQ(
      rtgw::config::load_from_text(text, "f", {}, env_of({})).limits.max_outgoing_buffer_bytes,
      65536);
  auto env = env_of({{"RTGW_MAX_OUTGOING_BUFFER_BYTES", "131072"}});
  EXPECT_EQ(rtgw::config::load_from_text(text, "f", {}, env).limits.max_outgoing_buffer_bytes,
            131072);
  // Below 16 KiB a single large event could not be sent at all.
  std::string tiny =
      std::string("{") + models + R"(, "limits": {"max_outgoing_buffer_bytes": 100}})";
  try {
    rtgw::config::load_from_text(tiny, "f", {}, env_of({}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.limits.max_outgoing_buffer_bytes"), std::string::npos)
        << e.what();
  }
}
