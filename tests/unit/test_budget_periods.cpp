// SPDX-License-Identifier: MIT
// Budget periods (issue 25): the `budget_duration` syntax, the epoch-aligned period grid, the
// config key, and the usage ledger counting only the current period's spend (replayed from the
// log at start-up, and reset when a period ends) while the log keeps every record.
#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>

#include "config/config.h"
#include "usage/budget_period.h"
#include "usage/usage_ledger.h"

namespace {

using rtgw::usage::parse_budget_duration;
using rtgw::usage::period_start;

TEST(BudgetPeriod, ParsesAWholeNumberAndAUnit) {
  EXPECT_EQ(parse_budget_duration("30d"), 30 * 86400);
  EXPECT_EQ(parse_budget_duration("3s"), 3);
  EXPECT_EQ(parse_budget_duration("15m"), 900);
  EXPECT_EQ(parse_budget_duration("12h"), 43200);
  for (const char* bad : {"", "d", "30", "0d", "-1d", "+1d", "1.5d", " 1d", "1d ", "1w", "1D",
                          "99999999999d", "3660d9"})
    EXPECT_FALSE(parse_budget_duration(bad)) << bad;
  EXPECT_EQ(parse_budget_duration("3660d"), 3660LL * 86400);  // the longest: 10 years
  EXPECT_FALSE(parse_budget_duration("3661d"));
}

TEST(BudgetPeriod, PeriodsAreAlignedOnTheUnixEpoch) {
  EXPECT_EQ(period_start(0, 30 * 86400), 0);
  EXPECT_EQ(period_start(30 * 86400 - 0.5, 30 * 86400), 0);
  EXPECT_EQ(period_start(30 * 86400, 30 * 86400), 30 * 86400);
  EXPECT_EQ(period_start(1765152000.7, 3), 1765152000 - 1765152000 % 3);
  EXPECT_EQ(period_start(-1, 10), -10);  // floor, not truncation
}

const char* kModels = R"("models": [{"name": "e", "workers": [{"provider": "echo"}]}])";

rtgw::config::Config load(const std::string& auth) {
  std::string text = std::string("{") + kModels + R"(, "auth": )" + auth + "}";
  return rtgw::config::load_from_text(
      text, "f.json", {}, [](const std::string&) { return std::optional<std::string>(); });
}

TEST(BudgetPeriod, ConfigKeyAndRevokeEndsCalls) {
  auto c = load(R"({"keys": [{"name": "a", "key": "sk-test-a-key", "budget_tokens": 10,
                              "budget_duration": "30d"}, {"name": "b", "key": "sk-test-b-key"}]})");
  EXPECT_EQ(c.auth.keys[0].budget_duration_seconds, 30 * 86400);
  EXPECT_FALSE(c.auth.keys[1].budget_duration_seconds);
  EXPECT_TRUE(c.auth.revoke_ends_calls);
  EXPECT_NE(rtgw::config::describe(c).find("budget_duration=2592000s"), std::string::npos);
  auto off = load(R"({"keys": [], "revoke_ends_calls": false})");
  EXPECT_FALSE(off.auth.revoke_ends_calls);
  try {
    load(R"({"keys": [{"name": "a", "key": "sk-test-a-key", "budget_duration": "30x"}]})");
    ADD_FAILURE() << "a bad duration was accepted";
  } catch (const rtgw::config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.auth.keys[0].budget_duration: expected a positive"),
              std::string::npos)
        << e.what();
  }
}

std::string line(const std::string& key, double time, int tokens, double usd) {
  return "{\"time\": " + std::to_string(time) + ", \"kind\": \"response\", \"key\": \"" + key +
         "\", \"total_tokens\": " + std::to_string(tokens) +
         ", \"cost_usd\": " + std::to_string(usd) + "}\n";
}

struct TempLog {
  TempLog() {
    char tmpl[] = "/tmp/rtgw-periods-XXXXXX";
    dir = g_mkdtemp(tmpl);
    path = dir + "/usage.jsonl";
  }
  ~TempLog() {
    g_remove(path.c_str());
    g_rmdir(dir.c_str());
  }
  std::string dir;
  std::string path;
};

rtgw::usage::PeriodLookup periods(std::map<std::string, std::int64_t> by_key) {
  return [by_key](const std::string& key) -> std::optional<std::int64_t> {
    auto it = by_key.find(key);
    if (it == by_key.end()) return std::nullopt;
    return it->second;
  };
}

TEST(BudgetPeriod, ReplayCountsOnlyTheCurrentPeriod) {
  TempLog log;
  const double now = rtgw::usage::unix_now();
  const std::int64_t hour = 3600;
  const double this_period = static_cast<double>(period_start(now, hour));
  {
    std::ofstream out(log.path);
    // Last period (spent well over any budget), then this one.
    out << line("periodic", this_period - 10, 5000, 5.0)
        << line("lifetime", this_period - 10, 5000, 5.0) << line("periodic", this_period, 7, 0.25)
        << line("lifetime", this_period, 7, 0.25);
  }
  rtgw::usage::UsageLedger ledger(log.path, periods({{"periodic", hour}}));
  EXPECT_EQ(ledger.replayed_records(), 4u);
  EXPECT_EQ(ledger.tokens_used("periodic"), 7);
  EXPECT_DOUBLE_EQ(ledger.usd_used("periodic"), 0.25);
  EXPECT_EQ(ledger.tokens_used("lifetime"), 5007);  // no period: the log's lifetime
  EXPECT_DOUBLE_EQ(ledger.usd_used("lifetime"), 5.25);
  // Without periods (the old behaviour) the same log counts everything.
  rtgw::usage::UsageLedger lifetime(log.path);
  EXPECT_EQ(lifetime.tokens_used("periodic"), 5007);
}

TEST(BudgetPeriod, TheSpendCountedResetsWhenThePeriodEndsAndTheLogKeepsIt) {
  TempLog log;
  // A 1 s period: record just after a period starts, then wait for the next one (bounded).
  const std::int64_t second = 1;
  {
    rtgw::usage::UsageLedger ledger(log.path, periods({{"k", second}}));
    double now = rtgw::usage::unix_now();
    if (now - static_cast<double>(period_start(now, second)) > 0.5)
      g_usleep(static_cast<gulong>((1.0 - (now - period_start(now, second))) * 1e6) + 20000);
    rtgw::usage::UsageRecord r;
    r.key_name = "k";
    r.total_tokens = 100;
    r.cost_usd = 1.5;
    ASSERT_TRUE(ledger.record(r));
    EXPECT_EQ(ledger.tokens_used("k"), 100);
    EXPECT_TRUE(ledger.over_budget("k", 100));
    const std::int64_t started = period_start(rtgw::usage::unix_now(), second);
    while (period_start(rtgw::usage::unix_now(), second) == started) g_usleep(20000);
    EXPECT_EQ(ledger.tokens_used("k"), 0);
    EXPECT_DOUBLE_EQ(ledger.usd_used("k"), 0);
    EXPECT_FALSE(ledger.over_budget("k", 100));
    ASSERT_TRUE(ledger.record(r));  // the new period counts from zero
    EXPECT_EQ(ledger.tokens_used("k"), 100);
  }
  // Both records are in the log; replayed without a period they both count.
  rtgw::usage::UsageLedger replayed(log.path);
  EXPECT_EQ(replayed.replayed_records(), 2u);
  EXPECT_EQ(replayed.tokens_used("k"), 200);
}

TEST(BudgetPeriod, APeriodLearnedAfterTheReplayErrsOnTheSideOfRefusing) {
  // E.g. a key whose period was not known when the log was replayed: what was counted still
  // counts (never 0 spent because of the change) until its next record starts the new window.
  TempLog log;
  {
    std::ofstream out(log.path);
    out << line("k", rtgw::usage::unix_now() - 7200, 5000, 1.0);
  }
  std::map<std::string, std::int64_t> known;
  rtgw::usage::UsageLedger ledger(log.path, [&known](const std::string& key) {
    auto it = known.find(key);
    return it == known.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
  });
  EXPECT_EQ(ledger.tokens_used("k"), 5000);
  known["k"] = 3600;
  EXPECT_EQ(ledger.tokens_used("k"), 5000);
  rtgw::usage::UsageRecord r;
  r.key_name = "k";
  r.total_tokens = 10;
  ASSERT_TRUE(ledger.record(r));
  EXPECT_EQ(ledger.tokens_used("k"), 10);
}

TEST(BudgetPeriod, AReplayFromTheTableCountsInTheCurrentPeriod) {
  rtgw::usage::UsageLedger ledger("", periods({{"k", 3600}}));
  rtgw::usage::TotalsByKey totals;
  totals["k"] = {40, 0.5};
  ledger.merge_replayed(totals);
  EXPECT_EQ(ledger.tokens_used("k"), 40);
  EXPECT_DOUBLE_EQ(ledger.usd_used("k"), 0.5);
}

}  // namespace
