// SPDX-License-Identifier: MIT
// The operator console's in-memory stores: spend series and recent errors (src/console).
#include <gtest/gtest.h>

#include "common/api_error.h"
#include "console/console_feed.h"
#include "console/recent_errors.h"
#include "console/spend_series.h"
#include "usage/usage_ledger.h"

namespace rtgw::console {
namespace {

constexpr std::int64_t kT0 = 1'800'000'000;  // a whole hour (divisible by 3600)

TEST(ConsoleSpend, BucketsPerMinuteAndHour) {
  SpendSeries s;
  s.add("alice", "gpt-realtime", 0.5, kT0 + 10);
  s.add("alice", "gpt-realtime", 0.25, kT0 + 50);  // same minute
  s.add("alice", "gpt-realtime", 1.0, kT0 + 130);  // two minutes later
  s.add("bob", "gpt-realtime-mini", 2.0, kT0 + 70);
  auto hour = s.last_hour(kT0 + 130);
  ASSERT_EQ(hour.size(), 2u);
  EXPECT_EQ(hour[0].key, "alice");
  ASSERT_EQ(hour[0].buckets.size(), 60u);
  EXPECT_DOUBLE_EQ(hour[0].buckets[59], 1.0);   // the current minute
  EXPECT_DOUBLE_EQ(hour[0].buckets[57], 0.75);  // two minutes ago
  EXPECT_DOUBLE_EQ(hour[0].total_usd, 1.75);
  EXPECT_EQ(hour[1].key, "bob");
  EXPECT_DOUBLE_EQ(hour[1].buckets[58], 2.0);
  auto day = s.last_day(kT0 + 130);
  ASSERT_EQ(day[0].buckets.size(), 24u);
  EXPECT_DOUBLE_EQ(day[0].buckets[23], 1.75);
}

TEST(ConsoleSpend, OldSpendLeavesTheWindow) {
  SpendSeries s;
  s.add("alice", "m", 1.0, kT0);
  EXPECT_EQ(s.last_hour(kT0 + 59 * 60).size(), 1u);
  EXPECT_TRUE(s.last_hour(kT0 + 60 * 60).empty());  // out of the hour
  EXPECT_EQ(s.last_day(kT0 + 60 * 60).size(), 1u);  // still in the day
  EXPECT_TRUE(s.last_day(kT0 + 24 * 3600).empty());
  // A bucket reused a day later holds only the new spend.
  s.add("alice", "m", 3.0, kT0 + 24 * 3600);
  auto day = s.last_day(kT0 + 24 * 3600);
  ASSERT_EQ(day.size(), 1u);
  EXPECT_DOUBLE_EQ(day[0].total_usd, 3.0);
}

TEST(ConsoleSpend, UnpricedTurnsDrawNothingAndPairsAreBounded) {
  SpendSeries s;
  s.add("alice", "m", 0.0, kT0);
  EXPECT_EQ(s.series_count(), 0u);
  for (std::size_t i = 0; i < SpendSeries::kMaxSeries + 50; ++i)
    s.add("key" + std::to_string(i), "m", 1.0, kT0);
  EXPECT_EQ(s.series_count(), SpendSeries::kMaxSeries + 1);  // the rest share "(other)"
  double other = 0;
  for (const auto& series : s.last_hour(kT0))
    if (series.key == "(other)") other = series.total_usd;
  EXPECT_DOUBLE_EQ(other, 50.0);
}

TEST(ConsoleErrors, RingIsBoundedAndNumbered) {
  RecentErrors ring;
  for (std::size_t i = 0; i < RecentErrors::kCapacity + 20; ++i)
    ring.note({.kind = "http", .code = "c" + std::to_string(i)});
  EXPECT_EQ(ring.entries().size(), RecentErrors::kCapacity);
  EXPECT_EQ(ring.last_seq(), RecentErrors::kCapacity + 20);
  EXPECT_EQ(ring.entries().front().seq, 21u);
  EXPECT_EQ(ring.entries().back().code, "c" + std::to_string(RecentErrors::kCapacity + 19));
  EXPECT_GT(ring.entries().back().unix_time, 0);
}

TEST(ConsoleErrors, LongTextIsCutOnACharacterBoundary) {
  RecentErrors ring;
  std::string message;
  for (int i = 0; i < 400; ++i) message += "é";  // two bytes each
  ring.note({.kind = "http", .message = message});
  const std::string& kept = ring.entries().back().message;
  EXPECT_LE(kept.size(), RecentErrors::kMaxText + 3);
  EXPECT_TRUE(g_utf8_validate(kept.data(), static_cast<gssize>(kept.size()), nullptr));
}

TEST(ConsoleFeed, TurnsAndHttpErrors) {
  ConsoleFeed feed;
  usage::UsageRecord record;
  record.key_name = "alice";
  record.model = "m";
  record.cost_usd = 0.01;
  feed.on_turn(record);
  record.cost_usd.reset();  // an unpriced turn
  feed.on_turn(record);
  std::int64_t now = g_get_real_time() / G_USEC_PER_SEC;
  auto hour = feed.spend().last_hour(now);
  ASSERT_EQ(hour.size(), 1u);
  EXPECT_DOUBLE_EQ(hour[0].total_usd, 0.01);
  feed.note_http_error(ApiError(429, "rate_limit_exceeded", "capacity_exceeded", "full"), "POST",
                       "/v1/realtime/calls");
  feed.note_http_error(ApiError(400, "invalid_request_error", "invalid_sdp", "bad"), "POST", "/x");
  ASSERT_EQ(feed.errors().entries().size(), 2u);
  EXPECT_EQ(feed.errors().entries()[0].kind, "refusal");
  EXPECT_EQ(feed.errors().entries()[0].message, "429 full");
  EXPECT_EQ(feed.errors().entries()[1].kind, "http");
  EXPECT_EQ(feed.errors().entries()[1].id, "POST /x");
}

}  // namespace
}  // namespace rtgw::console
