// SPDX-License-Identifier: MIT
// Secrets and public ids: kernel randomness (common/random) and the id formats built on it.
#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <functional>
#include <regex>
#include <set>
#include <string>

#include "auth/ephemeral_token.h"
#include "calls/call_registry.h"
#include "common/json.h"
#include "common/random.h"
#include "events/element_messages.h"
#include "sessions/session_registry.h"

namespace {

bool all_distinct(int draws, const std::function<std::string()>& make) {
  std::set<std::string> seen;
  for (int i = 0; i < draws; i++) seen.insert(make());
  return static_cast<int>(seen.size()) == draws;
}

TEST(Random, HexHasTheAskedLengthAndCharset) {
  for (std::size_t digits : {0u, 1u, 7u, 24u, 32u, 64u}) {
    std::string h = rtgw::random_hex(digits);
    EXPECT_EQ(h.size(), digits);
    EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos) << h;
  }
}

TEST(Random, HexUsesEveryDigitAndBothNibbles) {
  // 16 x 4096 digits: each of the 16 digits appears, in odd and even positions alike (a nibble
  // that is always 0 would show here).
  std::array<int, 16> even{}, odd{};
  for (int round = 0; round < 16; round++) {
    std::string h = rtgw::random_hex(4096);
    for (std::size_t i = 0; i < h.size(); i++) {
      int v = h[i] <= '9' ? h[i] - '0' : h[i] - 'a' + 10;
      (i % 2 ? odd : even)[v]++;
    }
  }
  // Expected 2048 per digit per parity; 1500 is > 12 standard deviations below.
  for (int v = 0; v < 16; v++) {
    EXPECT_GT(even[v], 1500) << v;
    EXPECT_GT(odd[v], 1500) << v;
  }
}

TEST(Random, BytesFillTheWholeBuffer) {
  // A 4 KiB draw with no byte value missing and no run of zeros left unwritten at the end.
  std::string b = rtgw::random_bytes(4096);
  ASSERT_EQ(b.size(), 4096u);
  std::set<unsigned char> values(b.begin(), b.end());
  EXPECT_GT(values.size(), 200u);
  EXPECT_NE(b.substr(4064), std::string(32, '\0'));
  EXPECT_NE(rtgw::random_bytes(32), rtgw::random_bytes(32));
}

TEST(Random, U32BetweenStaysInRangeAndCoversIt) {
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 2000; i++) {
    std::uint32_t v = rtgw::random_u32_between(3, 9);
    ASSERT_GE(v, 3u);
    ASSERT_LE(v, 9u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(rtgw::random_u32_between(5, 5), 5u);
  for (int i = 0; i < 1000; i++) {
    std::uint32_t ssrc = rtgw::random_u32_between(1, G_MAXINT32 - 1);
    ASSERT_GE(ssrc, 1u);
    ASSERT_LT(ssrc, static_cast<std::uint32_t>(G_MAXINT32));
  }
}

TEST(Random, IdsKeepTheirFormatsAndNeverRepeat) {
  const std::regex call_id("rtc_[0-9a-f]{32}");
  const std::regex session_id("ws_[0-9a-f]{32}");
  const std::regex event_id("evt_[0-9a-f]{32}");
  for (int i = 0; i < 100; i++) {
    EXPECT_TRUE(std::regex_match(rtgw::calls::CallRegistry::new_call_id(), call_id));
    EXPECT_TRUE(std::regex_match(rtgw::relay::SessionRegistry::new_session_id(), session_id));
  }
  auto error_event_id = [] {
    auto node =
        rtgw::json::parse(rtgw::events::make_error_event("invalid_request_error", "x", "m"));
    return rtgw::json::get_string(json_node_get_object(node.get()), "event_id").value_or("");
  };
  EXPECT_TRUE(std::regex_match(error_event_id(), event_id));
  EXPECT_TRUE(all_distinct(20000, [] { return rtgw::calls::CallRegistry::new_call_id(); }));
  EXPECT_TRUE(all_distinct(20000, [] { return rtgw::relay::SessionRegistry::new_session_id(); }));
  EXPECT_TRUE(all_distinct(5000, error_event_id));
  EXPECT_TRUE(all_distinct(20000, [] { return rtgw::random_id("x_", 24); }));
}

TEST(Random, UnconfiguredTokenSecretsDifferPerInstance) {
  // Two instances without a configured secret must not redeem each other's tokens: each drew
  // its own secret.
  rtgw::auth::EphemeralTokens a(""), b("");
  rtgw::auth::TokenClaims claims{"team-a", "echo", "{}", 1000, 2000};
  std::string token = a.mint(claims);
  EXPECT_NO_THROW(a.verify(token, 1500));
  EXPECT_THROW(b.verify(token, 1500), rtgw::auth::EphemeralTokens::VerifyError);
}

}  // namespace
