// SPDX-License-Identifier: MIT
// keys/: virtual key secrets, the admin API's body parsers, the key directory (the mirror), and
// authentication of virtual keys and of the tokens they minted.
#include <glib.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "auth/authenticator.h"
#include "auth/key_book.h"
#include "common/api_error.h"
#include "common/json.h"
#include "keys/admin_request.h"
#include "keys/key_directory.h"
#include "keys/key_secret.h"
#include "keys/virtual_key.h"
#include "usage/budget_period.h"

namespace {

using namespace rtgw;

std::string code_of(const ApiError& e) {
  auto node = json::parse(e.body());
  JsonObject* err = json::get_object(json_node_get_object(node.get()), "error");
  return json::get_string(err, "code").value_or("");
}

// The 400's message for `body` through `fn` ("" when it parsed).
template <typename Fn>
std::string refusal(Fn fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.what();
  }
  return "";
}

std::int64_t now() { return g_get_real_time() / G_USEC_PER_SEC; }

TEST(Keys, GeneratedKeyFormat) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; i++) {
    std::string key = keys::generate_key();
    ASSERT_EQ(key.rfind("sk-rtgw-", 0), 0u) << key;
    std::string tail = key.substr(8);
    EXPECT_EQ(tail.size(), 43u) << "32 bytes of base64url without padding";
    for (char c : tail) EXPECT_TRUE(g_ascii_isalnum(c) || c == '-' || c == '_') << key;
    EXPECT_TRUE(seen.insert(key).second) << "a repeated key";
  }
}

TEST(Keys, HashIsSha256Hex) {
  // printf 'abc' | sha256sum
  EXPECT_EQ(keys::hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Keys, ParseGenerateFull) {
  auto g = keys::parse_generate(
      R"({"key_alias":"team-b","models":["echo"],"max_concurrent_calls":2,"budget_usd":1.5,
          "budget_tokens":100,"budget_duration":"30d","expires_at":"2030-01-01T00:00:00Z",
          "policy":{"end_calls_over_budget":true,"other":1},"metadata":{"owner":"x"}})");
  keys::VirtualKey k;
  keys::apply_fields(k, g.fields, 1000);
  EXPECT_EQ(k.alias, "team-b");
  EXPECT_EQ(k.models, std::vector<std::string>{"echo"});
  EXPECT_EQ(k.max_concurrent_calls, 2);
  EXPECT_EQ(k.budget_usd, 1.5);
  EXPECT_EQ(k.budget_tokens, 100);
  EXPECT_EQ(k.budget_duration, "30d");
  EXPECT_EQ(k.expires_at, 1893456000);
  config::KeyConfig c = keys::to_key_config(k, 7);
  EXPECT_EQ(c.name, "team-b");
  EXPECT_TRUE(c.end_calls_over_budget);
  EXPECT_FALSE(c.admin);
  EXPECT_TRUE(c.virtual_key);
  EXPECT_EQ(c.max_concurrent_calls, 2);
  k.max_concurrent_calls.reset();
  EXPECT_EQ(keys::to_key_config(k, 7).max_concurrent_calls, 7);
}

TEST(Keys, ParseRefusesNamingTheMember) {
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"nope":1})"); }).find("'nope'"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"models":"echo"})"); }).find("'models'"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"models":["echo",3]})"); }).find("models[1]"),
            std::string::npos);
  EXPECT_NE(refusal([] {
              keys::parse_generate(R"({"max_concurrent_calls":1.5})");
            }).find("max_concurrent_calls"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"budget_usd":-1})"); }).find("budget_usd"),
            std::string::npos);
  EXPECT_NE(
      refusal([] { keys::parse_generate(R"({"budget_duration":"30x"})"); }).find("budget_duration"),
      std::string::npos);
  EXPECT_NE(
      refusal([] { keys::parse_generate(R"({"expires_at":"tomorrow"})"); }).find("expires_at"),
      std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"policy":[]})"); }).find("policy"),
            std::string::npos);
  EXPECT_NE(refusal([] {
              keys::parse_generate(R"({"policy":{"end_calls_over_budget":"yes"}})");
            }).find("policy.end_calls_over_budget"),
            std::string::npos);
  EXPECT_NE(
      refusal([] { keys::parse_generate(R"({"key_alias":"sk-looks-secret"})"); }).find("key_alias"),
      std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate(R"({"revoked":true})"); }).find("revoked"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_generate("[1]"); }).find("JSON object"), std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_update(R"({"models":["*"]})"); }).find("name the key"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_update(R"({"key":"x","revoked":1})"); }).find("revoked"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_delete("{}"); }).find("keys"), std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_delete(R"({"keys":"a"})"); }).find("'keys'"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_regenerate(R"({"key":1})"); }).find("'key'"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_list_query(std::string("0"), std::nullopt); }).find("page"),
            std::string::npos);
  EXPECT_NE(refusal([] { keys::parse_list_query(std::nullopt, std::string("101")); }).find("size"),
            std::string::npos);
  try {
    keys::parse_generate(R"({"nope":1})");
  } catch (const ApiError& e) {
    EXPECT_EQ(code_of(e), "unknown_member");
  }
}

TEST(Keys, UpdateRefAndRename) {
  auto by_alias = keys::parse_update(R"({"key_alias":"a","revoked":true})");
  EXPECT_EQ(by_alias.ref.alias, "a");
  EXPECT_FALSE(by_alias.fields.key_alias) << "the alias names the key, it does not rename it";
  auto by_key = keys::parse_update(R"({"key":"sk-rtgw-x","key_alias":"b","budget_usd":null})");
  EXPECT_EQ(by_key.ref.key, "sk-rtgw-x");
  EXPECT_EQ(by_key.fields.key_alias, "b");
  ASSERT_TRUE(by_key.fields.budget_usd);
  EXPECT_FALSE(*by_key.fields.budget_usd) << "null clears";
  keys::VirtualKey k;
  k.budget_usd = 3;
  keys::apply_fields(k, by_alias.fields, 42);
  EXPECT_EQ(k.revoked_at, 42);
  keys::apply_fields(k, by_key.fields, 43);
  EXPECT_EQ(k.revoked_at, 42) << "revoked_at keeps the first revocation";
  EXPECT_FALSE(k.budget_usd);
  auto d = keys::parse_delete(R"({"keys":["sk-1"],"key_aliases":["a","b"]})");
  EXPECT_EQ(d.refs.size(), 3u);
  auto q = keys::parse_list_query(std::string("3"), std::string("20"));
  EXPECT_EQ(q.page, 3);
  EXPECT_EQ(q.size, 20);
}

TEST(Keys, Durations) {
  EXPECT_EQ(usage::parse_budget_duration("30d"), 30 * 86400);
  EXPECT_EQ(usage::parse_budget_duration("12h"), 12 * 3600);
  EXPECT_EQ(usage::parse_budget_duration("90s"), 90);
  EXPECT_FALSE(usage::parse_budget_duration("0d"));
  EXPECT_FALSE(usage::parse_budget_duration("d"));
  EXPECT_FALSE(usage::parse_budget_duration("-1d"));
  EXPECT_FALSE(usage::parse_budget_duration("99999999d"));
}

TEST(Keys, PublicViewHasNoSecretOrHash) {
  keys::VirtualKey k;
  std::string secret = keys::generate_key();
  k.hash = keys::hash_key(secret);
  k.alias = "team-c";
  k.metadata_json = R"({"owner":"x"})";
  std::string view = keys::to_json(k);
  EXPECT_EQ(view.find(k.hash), std::string::npos);
  EXPECT_EQ(view.find(secret), std::string::npos);
  EXPECT_NE(view.find("\"key_alias\":\"team-c\""), std::string::npos) << view;
}

keys::VirtualKey row(const std::string& alias, const std::string& secret, std::int64_t seq) {
  keys::VirtualKey k;
  k.alias = alias;
  k.hash = keys::hash_key(secret);
  k.models = {"echo"};
  k.seq = seq;
  return k;
}

TEST(Keys, DirectoryAnnouncesChanges) {
  keys::KeyDirectory dir({"ops"}, 4);
  std::vector<std::string> seen;
  dir.on_change(
      [&](const keys::KeyChange& c) { seen.push_back(c.alias + ":" + keys::kind_name(c.kind)); });
  auto a = row("a", "sk-rtgw-a", 1);
  auto b = row("b", "sk-rtgw-b", 2);
  EXPECT_TRUE(dir.apply({b, a}).empty());
  EXPECT_EQ(dir.max_seq(), 2);
  ASSERT_TRUE(dir.find_hash(keys::hash_key("sk-rtgw-a")));
  EXPECT_EQ(dir.find_alias("a")->config.max_concurrent_calls, 4);
  a.revoked_at = 10;
  a.seq = 3;
  dir.apply({a});
  b.deleted_at = 11;
  b.seq = 4;
  dir.apply({b});
  EXPECT_FALSE(dir.find_alias("b"));
  auto clash = row("ops", "sk-rtgw-ops", 5);
  EXPECT_EQ(dir.apply({clash}), std::vector<std::string>{"ops"});
  EXPECT_FALSE(dir.find_alias("ops"));
  auto c = row("c", "sk-rtgw-c", 6);
  c.expires_at = now() - 1;
  dir.apply({c});
  dir.check_expiry(now());
  dir.check_expiry(now());  // once
  EXPECT_EQ(seen, (std::vector<std::string>{"a:created", "b:created", "a:revoked", "b:deleted",
                                            "c:created", "c:expired"}));
  // A row this instance wrote does not move the sequence: rows before it are still read.
  auto d = row("d", "sk-rtgw-d", 100);
  dir.apply({d}, /*advance_seq=*/false);
  EXPECT_EQ(dir.max_seq(), 6);
  EXPECT_TRUE(dir.find_alias("d"));
  dir.apply({d});  // read back by the refresh: no second announcement
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(dir.max_seq(), 100);
  auto page = dir.page(1, 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->key.alias, "a");
  EXPECT_EQ(dir.page(2, 2).size(), 1u);
}

// A reload replaces the config key names: a name it added refuses a virtual key's row (and
// /key/generate, through config_name()), a name it removed is free again.
TEST(Keys, DirectoryFollowsAReloadsConfigNames) {
  keys::KeyDirectory dir({"ops"}, 0);
  EXPECT_FALSE(dir.config_name("team-new"));
  dir.set_config_names({"team-new"});
  EXPECT_TRUE(dir.config_name("team-new"));
  EXPECT_FALSE(dir.config_name("ops"));
  EXPECT_EQ(dir.apply({row("team-new", "sk-rtgw-t", 1)}), std::vector<std::string>{"team-new"});
  EXPECT_FALSE(dir.find_alias("team-new"));
  EXPECT_TRUE(dir.apply({row("ops", "sk-rtgw-o", 2)}).empty());
  EXPECT_TRUE(dir.find_alias("ops"));
}

config::Config admin_config() {
  config::Config c;
  config::KeyConfig ops;
  ops.name = "ops";
  ops.key = "sk-ops-secret-1";
  ops.models = {"*"};
  ops.admin = true;
  c.auth.keys = {ops};
  return c;
}

std::string auth_code(const auth::Authenticator& a, const std::string& bearer) {
  try {
    a.authenticate_bearer(bearer, true);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 401);
    return code_of(e);
  }
  return "ok";
}

TEST(Keys, AuthenticatesVirtualKeysAndTheirTokens) {
  config::Config config = admin_config();
  auth::Authenticator authn(config);
  keys::KeyDirectory dir({"ops"}, 0);
  authn.set_key_directory(&dir);
  auto a = row("a", "sk-rtgw-a", 1);
  a.max_concurrent_calls = 3;
  auto gone = row("gone", "sk-rtgw-gone", 2);
  gone.expires_at = now() - 5;
  dir.apply({a, gone});

  auth::Principal p = authn.authenticate_bearer("sk-rtgw-a");
  EXPECT_EQ(p.key_name, "a");
  EXPECT_FALSE(p.admin);
  EXPECT_EQ(p.max_concurrent_calls, 3);
  EXPECT_TRUE(p.may_use("echo"));
  EXPECT_FALSE(p.may_use("gpt-realtime"));
  EXPECT_EQ(auth_code(authn, "sk-rtgw-gone"), "invalid_api_key") << "expired";
  EXPECT_EQ(auth_code(authn, "sk-rtgw-nope"), "invalid_api_key");
  EXPECT_EQ(authn.authenticate_bearer("sk-ops-secret-1").key_name, "ops");

  auth::TokenClaims claims{"a", "echo", "{}", now(), now() + 600};
  std::string token = authn.tokens().mint(claims);
  EXPECT_EQ(authn.authenticate_bearer(token, true).key_name, "a");
  a.revoked_at = now();
  a.seq = 3;
  dir.apply({a});
  EXPECT_EQ(auth_code(authn, "sk-rtgw-a"), "invalid_api_key") << "revoked";
  EXPECT_EQ(auth_code(authn, token), "invalid_api_key") << "a revoked key's token";

  auth::KeyBook book(config);
  book.set_directory(&dir);
  EXPECT_EQ(book.find("ops")->name, "ops");
  EXPECT_EQ(book.find("a")->name, "a");
  EXPECT_FALSE(book.find("nobody"));
}

}  // namespace
