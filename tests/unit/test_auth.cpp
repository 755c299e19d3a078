// SPDX-License-Identifier: MIT
// auth/: API keys (bearer, keyless loopback, constant-time comparison) and ephemeral tokens.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "auth/authenticator.h"
#include "auth/ephemeral_token.h"
#include "common/json.h"
#include "config/config.h"
#include "http/http_error.h"

namespace {

using rtgw::http::HttpError;

// The `error.code` of an HTTP error's JSON body.
std::string error_code(const HttpError& e) {
  auto node = rtgw::json::parse(e.body());
  JsonObject* err = rtgw::json::get_object(json_node_get_object(node.get()), "error");
  return rtgw::json::get_string(err, "code").value_or("");
}

rtgw::config::Config keyed_config() {
  rtgw::config::Config c;
  rtgw::config::KeyConfig a;
  a.name = "team-a";
  a.key = "sk-team-a-secret";
  a.models = {"gpt-realtime*", "echo"};
  rtgw::config::KeyConfig ops;
  ops.name = "ops";
  ops.key = "sk-ops-secret-1";
  ops.models = {"*"};
  ops.admin = true;
  c.auth.keys = {a, ops};
  return c;
}

TEST(Auth, BearerKeys) {
  rtgw::auth::Authenticator auth(keyed_config());
  auto p = auth.authenticate("Bearer sk-team-a-secret");
  EXPECT_EQ(p.key_name, "team-a");
  EXPECT_TRUE(p.may_use("gpt-realtime-mini"));
  EXPECT_TRUE(p.may_use("echo"));
  EXPECT_FALSE(p.may_use("other"));
  EXPECT_FALSE(p.admin);
  EXPECT_TRUE(p.may_access("team-a"));
  EXPECT_FALSE(p.may_access("ops"));
  auto admin = auth.authenticate("bearer sk-ops-secret-1");
  EXPECT_TRUE(admin.may_access("team-a"));
}

TEST(Auth, Failures) {
  rtgw::auth::Authenticator auth(keyed_config());
  auto code_of = [&](const char* header) {
    try {
      auth.authenticate(header);
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), 401);
      return error_code(e);
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code_of(nullptr), "missing_api_key");
  EXPECT_EQ(code_of(""), "missing_api_key");
  EXPECT_EQ(code_of("Basic abc"), "missing_api_key");
  EXPECT_EQ(code_of("Bearer "), "missing_api_key");
  EXPECT_EQ(code_of("Bearer sk-team-a-secreT"), "invalid_api_key");
  EXPECT_EQ(code_of("Bearer sk-team-a-secret-longer"), "invalid_api_key");
}

TEST(Auth, KeylessOnlyOnLoopback) {
  rtgw::config::Config loop;
  loop.listen = "127.0.0.1:8080";
  EXPECT_EQ(rtgw::auth::Authenticator(loop).authenticate(nullptr).key_name, "anonymous");
  EXPECT_FALSE(rtgw::auth::Authenticator(loop).authenticate(nullptr).admin);
  EXPECT_FALSE(rtgw::auth::Authenticator(loop).authenticate(nullptr).may_access("team-a"));
  rtgw::config::Config open;
  open.listen = "0.0.0.0:8080";
  EXPECT_THROW(rtgw::auth::Authenticator(open).authenticate(nullptr), HttpError);
}

TEST(Auth, ConstantTimeEqual) {
  EXPECT_TRUE(rtgw::auth::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("abc", "abd"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("", "a"));
}

}  // namespace

namespace {

using rtgw::auth::EphemeralTokens;
using rtgw::auth::TokenClaims;

TEST(EphemeralTokens, MintVerifyRoundTrip) {
  EphemeralTokens tokens("secret-1");
  TokenClaims c{"team-a", "gpt-realtime", R"({"type":"realtime","instructions":"x"})", 1000, 1600};
  std::string t = tokens.mint(c);
  EXPECT_EQ(t.rfind("ek_", 0), 0u);
  auto back = tokens.verify(t, 1599);
  EXPECT_EQ(back.key_name, "team-a");
  EXPECT_EQ(back.model, "gpt-realtime");
  EXPECT_EQ(back.session_json, c.session_json);
  EXPECT_EQ(back.expires_at, 1600);
  // Any instance holding the same secret redeems it.
  EXPECT_EQ(EphemeralTokens("secret-1").verify(t, 1599).key_name, "team-a");
}

TEST(EphemeralTokens, SessionWithLoneSurrogateRoundTrips) {
  // The client_secrets route mints the session as json::to_string of the parsed body.
  auto session = rtgw::json::parse(R"({"type":"realtime","model":"echo","\udc00t":"r36"})");
  ASSERT_TRUE(session);
  EphemeralTokens tokens("secret-1");
  TokenClaims c{"team-a", "echo", rtgw::json::to_string(session.get()), 1000, 1600};
  EXPECT_EQ(tokens.verify(tokens.mint(c), 1500).session_json, c.session_json);
}

EphemeralTokens::Failure failure_of(const EphemeralTokens& tokens, const std::string& t,
                                    std::int64_t now) {
  try {
    tokens.verify(t, now);
  } catch (const EphemeralTokens::VerifyError& e) {
    return e.failure;
  }
  ADD_FAILURE() << "accepted " << t;
  return EphemeralTokens::Failure::kMalformed;
}

TEST(EphemeralTokens, RefusesExpiredTamperedAndForeign) {
  EphemeralTokens tokens("secret-1");
  std::string t = tokens.mint({"team-a", "gpt-realtime", "{}", 1000, 1600});
  EXPECT_EQ(failure_of(tokens, t, 1600), EphemeralTokens::Failure::kExpired);
  std::string tampered = t;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(failure_of(tokens, tampered, 1000), EphemeralTokens::Failure::kBadSignature);
  EXPECT_EQ(failure_of(EphemeralTokens("other"), t, 1000), EphemeralTokens::Failure::kBadSignature);
  EXPECT_EQ(failure_of(tokens, "ek_nodot", 1000), EphemeralTokens::Failure::kMalformed);
  EXPECT_EQ(failure_of(tokens, "sk-not-a-token", 1000), EphemeralTokens::Failure::kMalformed);
}

}  // namespace
