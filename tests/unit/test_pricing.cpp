// SPDX-License-Identifier: MIT
// Pricing (usage/pricing.h), price tables in the config, the ledger's USD totals and the usage
// report's grouping (usage/usage_report.h).
#include <glib.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <string>

#include "common/json.h"
#include "config/config.h"
#include "usage/pricing.h"
#include "usage/saturating.h"
#include "usage/usage_ledger.h"
#include "usage/usage_report.h"

namespace {

using rtgw::config::ConfigError;
using rtgw::config::Pricing;
using rtgw::usage::price_turn;
using rtgw::usage::UsageRecord;

// OpenAI's published gpt-realtime prices (the README's worked example).
Pricing gpt_realtime() {
  Pricing p;
  p.text_input = 4.0;
  p.text_cached_input = 0.4;
  p.audio_input = 32.0;
  p.audio_cached_input = 0.4;
  p.image_input = 5.0;
  p.text_output = 16.0;
  p.audio_output = 64.0;
  return p;
}

// A turn with every token kind: 850 input (300 text, 500 audio, 50 image; 300 cached), 200 output
// (40 text, 160 audio).
UsageRecord every_kind() {
  UsageRecord r;
  r.usage_present = true;
  r.input_tokens = 850;
  r.output_tokens = 200;
  r.total_tokens = 1050;
  r.input_text_tokens = 300;
  r.input_audio_tokens = 500;
  r.input_image_tokens = 50;
  r.input_cached_tokens = 300;
  r.output_text_tokens = 40;
  r.output_audio_tokens = 160;
  return r;
}

TEST(Pricing, EveryTokenKindWithCachedDetails) {
  UsageRecord r = every_kind();
  r.cached_details_present = true;  // 100 cached text, 200 cached audio
  r.input_cached_text_tokens = 100;
  r.input_cached_audio_tokens = 200;
  Pricing p = gpt_realtime();
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  // text 200 x 4 + cached text 100 x 0.4 + audio 300 x 32 + cached audio 200 x 0.4 + image 50 x 5
  // + output text 40 x 16 + output audio 160 x 64 = 21650 per million.
  EXPECT_DOUBLE_EQ(
      *cost,
      (200 * 4.0 + 100 * 0.4 + 300 * 32.0 + 200 * 0.4 + 50 * 5.0 + 40 * 16.0 + 160 * 64.0) / 1e6);
  EXPECT_DOUBLE_EQ(*cost, 0.02165);
}

TEST(Pricing, CachedTokensWithoutDetailsAreText) {
  UsageRecord r = every_kind();  // 300 cached, no cached_tokens_details: all text
  Pricing p = gpt_realtime();
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  // cached text 300 x 0.4 + audio 500 x 32 + image 50 x 5 + output 40 x 16 + 160 x 64.
  EXPECT_DOUBLE_EQ(*cost, 0.02725);
}

TEST(Pricing, TokensWithoutAModalityArePricedAsText) {
  UsageRecord r;
  r.input_tokens = 1000;  // no details at all
  r.output_tokens = 500;
  Pricing p = gpt_realtime();
  EXPECT_DOUBLE_EQ(*price_turn(r, &p), (1000 * 4.0 + 500 * 16.0) / 1e6);
}

TEST(Pricing, DurationBilledTranscriptionPerMinute) {
  UsageRecord r;
  r.kind = "transcription";
  r.transcription_seconds = 90;
  Pricing p;
  p.transcription = 0.006;
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  EXPECT_DOUBLE_EQ(*cost, 0.009);
}

TEST(Pricing, TranslationAudioMinutesAndTokens) {
  UsageRecord r;
  r.kind = "translation";
  r.audio_seconds = 30;
  r.input_tokens = 100;
  r.input_audio_tokens = 100;
  r.output_tokens = 50;
  r.output_audio_tokens = 50;
  Pricing p;
  p.audio_input = 32.0;
  p.audio_output = 64.0;
  p.audio = 0.25;
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  EXPECT_DOUBLE_EQ(*cost, (100 * 32.0 + 50 * 64.0) / 1e6 + 0.125);
  p.audio.reset();  // audio seconds nothing can price: unknown, never free
  EXPECT_FALSE(price_turn(r, &p).has_value());
}

TEST(Pricing, TokenBilledTranscription) {
  UsageRecord r;
  r.kind = "transcription";
  r.input_tokens = 120;
  r.input_audio_tokens = 100;
  r.input_text_tokens = 20;
  r.output_tokens = 30;
  r.output_text_tokens = 30;
  Pricing p;  // a test table, not a published price
  p.text_input = 2.5;
  p.audio_input = 6.0;
  p.text_output = 10.0;
  EXPECT_DOUBLE_EQ(*price_turn(r, &p), (20 * 2.5 + 100 * 6.0 + 30 * 10.0) / 1e6);
}

TEST(Pricing, NoTableIsNullNeverZero) {
  UsageRecord r = every_kind();
  EXPECT_FALSE(price_turn(r, nullptr).has_value());
  UsageRecord empty;
  EXPECT_FALSE(price_turn(empty, nullptr).has_value());
}

TEST(Pricing, AMissingPriceIsChargedAtTheTablesHighestPrice) {
  // Issue 21: a table without image_input priced this turn at null, so budget_usd ignored it.
  Pricing p = gpt_realtime();
  p.image_input.reset();
  UsageRecord r;
  r.input_tokens = 100001;
  r.input_image_tokens = 1;
  r.input_text_tokens = 100000;
  r.output_tokens = 100000;
  r.output_audio_tokens = 100000;
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  // What is known at its price, the one image token at the highest price (audio_output, 64).
  EXPECT_DOUBLE_EQ(*cost, (100000 * 4.0 + 100000 * 64.0 + 1 * 64.0) / 1e6);
  EXPECT_NEAR(*cost, 6.80, 0.001);
  // every_kind() has 50 image tokens: priced at 64 instead of 5, the rest as with a full table.
  Pricing full = gpt_realtime();
  EXPECT_DOUBLE_EQ(*price_turn(every_kind(), &p),
                   *price_turn(every_kind(), &full) + 50 * (64.0 - 5.0) / 1e6);
  // A price the turn does not need changes nothing.
  UsageRecord text_only;
  text_only.input_tokens = text_only.input_text_tokens = 10;
  EXPECT_DOUBLE_EQ(*price_turn(text_only, &p), 10 * 4.0 / 1e6);
}

TEST(Pricing, AConfiguredFallbackPricesWhatTheTableLacks) {
  Pricing p;
  p.text_input = 4.0;
  p.fallback_per_million = 100.0;
  UsageRecord r;
  r.input_tokens = 30;
  r.input_text_tokens = 10;
  r.input_audio_tokens = 20;
  r.output_tokens = r.output_audio_tokens = 5;
  EXPECT_DOUBLE_EQ(*price_turn(r, &p), (10 * 4.0 + 20 * 100.0 + 5 * 100.0) / 1e6);
  EXPECT_EQ(*rtgw::usage::fallback_per_million(p), 100.0);
  EXPECT_EQ(
      rtgw::usage::missing_token_prices(p),
      (std::vector<std::string>{"audio_input", "image_input", "text_output", "audio_output"}));
  EXPECT_TRUE(rtgw::usage::missing_token_prices(gpt_realtime()).empty());
}

TEST(Pricing, NullOnlyWhenNothingCanPriceAComponent) {
  // A per-minute-only table (a transcription model) has no per-token price to fall back on.
  Pricing per_minute;
  per_minute.transcription = 0.006;
  EXPECT_FALSE(rtgw::usage::fallback_per_million(per_minute).has_value());
  UsageRecord tokens;
  tokens.input_tokens = tokens.input_audio_tokens = 10;
  EXPECT_FALSE(price_turn(tokens, &per_minute).has_value());
  per_minute.fallback_per_million = 2.5;
  EXPECT_DOUBLE_EQ(*price_turn(tokens, &per_minute), 10 * 2.5 / 1e6);
  // Duration-billed seconds need per_minute.transcription: no per-token price stands in for them.
  Pricing p = gpt_realtime();
  UsageRecord r;
  r.kind = "transcription";
  r.transcription_seconds = 3;
  EXPECT_FALSE(price_turn(r, &p).has_value());
}

TEST(Pricing, HugeCountsSaturateInsteadOfWrapping) {
  Pricing p = gpt_realtime();
  UsageRecord r;
  r.input_tokens = std::numeric_limits<std::int64_t>::max();
  r.input_text_tokens = std::numeric_limits<std::int64_t>::max();
  r.input_audio_tokens = std::numeric_limits<std::int64_t>::max();
  r.output_tokens = std::numeric_limits<std::int64_t>::max();
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  EXPECT_TRUE(std::isfinite(*cost));
  EXPECT_GT(*cost, 1e13);  // never negative, never small
}

TEST(Pricing, MissingCachedPriceFallsBackToTheFullPrice) {
  Pricing p = gpt_realtime();
  p.text_cached_input.reset();
  UsageRecord r;
  r.input_tokens = r.input_text_tokens = 100;
  r.input_cached_tokens = 40;
  EXPECT_DOUBLE_EQ(*price_turn(r, &p), 100 * 4.0 / 1e6);
}

TEST(Pricing, AZeroUsageTurnOfAPricedModelCostsZero) {
  Pricing p = gpt_realtime();
  UsageRecord r;  // e.g. a response cut short before it reported any usage
  auto cost = price_turn(r, &p);
  ASSERT_TRUE(cost.has_value());
  EXPECT_EQ(*cost, 0.0);
}

TEST(Pricing, PerCallTotalsSumKnownCosts) {
  UsageRecord total;
  UsageRecord unpriced;
  total.add_tokens(unpriced);
  EXPECT_FALSE(total.cost_usd.has_value());
  UsageRecord priced;
  priced.cost_usd = 0.25;
  total.add_tokens(priced);
  total.add_tokens(priced);
  EXPECT_DOUBLE_EQ(*total.cost_usd, 0.5);
}

// ------------------------------------------------------------------ config

std::string config_with(const std::string& model_extra, const std::string& key_extra = "") {
  return R"({"auth": {"keys": [{"name": "team-a", "key": "sk-team-a-123")" + key_extra +
         R"(}]}, "models": [{"name": "echo", "workers": [{"provider": "echo"}])" + model_extra +
         "}]}";
}

rtgw::config::EnvLookup no_env() {
  return [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
}

std::string config_error(const std::string& text) {
  try {
    rtgw::config::load_from_text(text, "f.json", {}, no_env());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(PricingConfig, ReadsAndShowsTheTable) {
  auto c = rtgw::config::load_from_text(
      config_with(R"(, "pricing": {"per_million_tokens": {"text_input": 4, "text_cached_input": 0.4,
                     "audio_input": 32, "audio_cached_input": 0.4, "image_input": 5,
                     "text_output": 16, "audio_output": 64},
                     "per_minute": {"transcription": 0.006}})",
                  R"(, "budget_usd": 2.5, "end_calls_over_budget": true)"),
      "f.json", {}, no_env());
  ASSERT_TRUE(c.models[0].pricing.has_value());
  const Pricing& p = *c.models[0].pricing;
  EXPECT_EQ(*p.text_input, 4.0);
  EXPECT_EQ(*p.text_cached_input, 0.4);
  EXPECT_EQ(*p.audio_input, 32.0);
  EXPECT_EQ(*p.audio_cached_input, 0.4);
  EXPECT_EQ(*p.image_input, 5.0);
  EXPECT_EQ(*p.text_output, 16.0);
  EXPECT_EQ(*p.audio_output, 64.0);
  EXPECT_EQ(*p.transcription, 0.006);
  EXPECT_EQ(*c.auth.keys[0].budget_usd, 2.5);
  EXPECT_TRUE(c.auth.keys[0].end_calls_over_budget);
  std::string shown = rtgw::config::describe(c);
  EXPECT_NE(shown.find("text_input=4 "), std::string::npos) << shown;
  EXPECT_NE(shown.find("audio_cached_input=0.4 "), std::string::npos) << shown;
  EXPECT_NE(shown.find("transcription=0.006"), std::string::npos) << shown;
  EXPECT_NE(shown.find("budget_usd=2.5"), std::string::npos) << shown;
  EXPECT_NE(shown.find("end_calls_over_budget"), std::string::npos) << shown;
}

TEST(PricingConfig, FallbackPerMillionIsReadAndShown) {
  auto c = rtgw::config::load_from_text(
      config_with(R"(, "pricing": {"per_million_tokens": {"text_input": 4},
                     "fallback_per_million": 70})"),
      "f.json", {}, no_env());
  ASSERT_TRUE(c.models[0].pricing.has_value());
  EXPECT_EQ(*c.models[0].pricing->fallback_per_million, 70.0);
  std::string shown = rtgw::config::describe(c);
  EXPECT_NE(shown.find("fallback_per_million=70"), std::string::npos) << shown;
  EXPECT_EQ(config_error(config_with(R"(, "pricing": {"fallback_per_million": -1})")),
            "f.json: $.models[0].pricing.fallback_per_million: must be a number between 0 and "
            "1e+09");
}

TEST(PricingConfig, MaxTurnTokensIsReadCheckedAndShown) {
  auto c = rtgw::config::load_from_text(config_with(R"(, "max_turn_tokens": 3000)"), "f.json", {},
                                        no_env());
  EXPECT_EQ(*c.models[0].max_turn_tokens, 3000);
  std::string shown = rtgw::config::describe(c);
  EXPECT_NE(shown.find("max_turn_tokens=3000"), std::string::npos) << shown;
  EXPECT_FALSE(rtgw::config::load_from_text(config_with(""), "f.json", {}, no_env())
                   .models[0]
                   .max_turn_tokens.has_value());
  EXPECT_EQ(config_error(config_with(R"(, "max_turn_tokens": 0)")),
            "f.json: $.models[0].max_turn_tokens: must be between 1 and 1000000000");
}

TEST(PricingConfig, NoTableShownAsNull) {
  auto c = rtgw::config::load_from_text(config_with(""), "f.json", {}, no_env());
  EXPECT_FALSE(c.models[0].pricing.has_value());
  EXPECT_NE(rtgw::config::describe(c).find("pricing: none (cost_usd null)"), std::string::npos);
}

TEST(PricingConfig, ErrorsNameThePath) {
  EXPECT_EQ(config_error(config_with(R"(, "pricing": {"per_million_tokens": {"text_input": -1}})")),
            "f.json: $.models[0].pricing.per_million_tokens.text_input: must be a number between 0 "
            "and 1e+09");
  EXPECT_EQ(config_error(config_with(R"(, "pricing": {"per_million_tokens": {"text_inptu": 1}})")),
            "f.json: $.models[0].pricing.per_million_tokens.text_inptu: unknown key");
  EXPECT_EQ(config_error(config_with(R"(, "pricing": {"per_minute": {"transcription": "1"}})")),
            "f.json: $.models[0].pricing.per_minute.transcription: expected a number");
  EXPECT_EQ(config_error(config_with(R"(, "pricing": {"per_second": {}})")),
            "f.json: $.models[0].pricing.per_second: unknown key");
  EXPECT_EQ(config_error(config_with(R"(, "pricing": 3)")),
            "f.json: $.models[0].pricing: expected an object");
  EXPECT_EQ(config_error(config_with("", R"(, "budget_usd": -0.5)")),
            "f.json: $.auth.keys[0].budget_usd: must be a number between 0 and 1e+12");
  EXPECT_EQ(config_error(config_with("", R"(, "end_calls_over_budget": 1)")),
            "f.json: $.auth.keys[0].end_calls_over_budget: expected true or false");
}

// ------------------------------------------------------------------ ledger and report

struct TempLog {
  std::string path;
  TempLog() {
    char tmpl[] = "/tmp/rtgw-usage-XXXXXX";
    int fd = g_mkstemp(tmpl);
    close(fd);
    path = tmpl;
  }
  ~TempLog() { unlink(path.c_str()); }
};

TEST(UsageLedgerSpend, UsdTotalsSurviveAReplay) {
  TempLog log;
  UsageRecord r;
  r.key_name = "team-a";
  r.model = "gpt-realtime";
  r.input_tokens = 10;
  r.cost_usd = 0.125;
  UsageRecord unpriced = r;
  unpriced.cost_usd.reset();
  {
    rtgw::usage::UsageLedger ledger(log.path);
    ledger.record(r);
    ledger.record(unpriced);
    ledger.record(r);
    EXPECT_DOUBLE_EQ(ledger.usd_used("team-a"), 0.25);
    EXPECT_TRUE(ledger.over_budget_usd("team-a", 0.25));
    EXPECT_FALSE(ledger.over_budget_usd("team-a", 0.26));
  }
  rtgw::usage::UsageLedger replayed(log.path);
  EXPECT_EQ(replayed.replayed_records(), 3u);
  EXPECT_DOUBLE_EQ(replayed.usd_used("team-a"), 0.25);
  EXPECT_EQ(replayed.tokens_used("team-a"), 30);
  EXPECT_EQ(replayed.usd_used("team-b"), 0.0);
}

std::string line(const char* key, const char* model, double time, const char* cost,
                 double seconds = 0) {
  return std::string(R"({"time":)") + std::to_string(time) + R"(,"key":")" + key +
         R"(","model":")" + model +
         R"(","input_tokens":10,"output_tokens":5,"total_tokens":15,"transcription_seconds":)" +
         std::to_string(seconds) + R"(,"cost_usd":)" + cost + "}";
}

TEST(UsageReport, GroupsByKeyAndModelWithinTheWindow) {
  rtgw::usage::UsageReport report;
  rtgw::usage::UsageQuery all;
  EXPECT_TRUE(report.add_line(line("a", "m1", 100, "0.5"), all));
  EXPECT_TRUE(report.add_line(line("a", "m1", 200, "0.25", 30), all));
  EXPECT_TRUE(report.add_line(line("a", "m2", 300, "null"), all));
  EXPECT_TRUE(report.add_line(line("b", "m1", 300, "null"), all));
  EXPECT_TRUE(report.add_line(line("b", "m1", 400, "1"), all));
  EXPECT_FALSE(report.add_line("{\"time\": 5, \"key\": \"a\"", all));  // a cut-short line
  auto groups = report.groups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].key, "a");
  EXPECT_EQ(groups[0].model, "m1");
  EXPECT_EQ(groups[0].turns, 2);
  EXPECT_EQ(groups[0].input_tokens, 20);
  EXPECT_EQ(groups[0].total_tokens, 30);
  EXPECT_DOUBLE_EQ(groups[0].transcription_seconds, 30);
  EXPECT_DOUBLE_EQ(groups[0].cost_usd, 0.75);
  auto json = rtgw::json::parse(rtgw::usage::usage_report_json(groups));
  ASSERT_TRUE(json);
  JsonObject* root = json_node_get_object(json.get());
  EXPECT_EQ(*rtgw::json::get_string(root, "object"), "list");
  JsonArray* data = json_object_get_array_member(root, "data");
  ASSERT_EQ(json_array_get_length(data), 3u);
  JsonObject* a_m2 = json_array_get_object_element(data, 1);
  EXPECT_TRUE(json_object_get_null_member(a_m2, "cost_usd"));  // no priced turn: null
  JsonObject* b_m1 = json_array_get_object_element(data, 2);
  EXPECT_DOUBLE_EQ(json_object_get_double_member(b_m1, "cost_usd"), 1.0);  // priced ones' sum
  EXPECT_EQ(json_object_get_int_member(b_m1, "unpriced_turns"), 1);

  rtgw::usage::UsageReport window;
  rtgw::usage::UsageQuery q;
  q.key = "a";
  q.since = 200;  // inclusive
  q.until = 300;  // exclusive
  for (const auto& l : {line("a", "m1", 100, "0.5"), line("a", "m1", 200, "0.25"),
                        line("a", "m2", 300, "null"), line("b", "m1", 250, "1")})
    window.add_line(l, q);
  auto in = window.groups();
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].turns, 1);
  EXPECT_DOUBLE_EQ(in[0].cost_usd, 0.25);
}

}  // namespace

namespace {

TEST(UsageLedgerSpend, WithoutALogTheReportComesFromMemory) {
  rtgw::usage::UsageLedger ledger("");
  UsageRecord r;
  r.key_name = "team-a";
  r.model = "m";
  r.input_tokens = 3;
  r.output_tokens = 2;
  r.cost_usd = 0.5;
  ledger.record(r);
  r.key_name = "team-b";
  r.cost_usd.reset();
  ledger.record(r);
  rtgw::usage::UsageQuery all;
  auto groups = ledger.memory_report(all);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].key, "team-a");
  EXPECT_EQ(groups[0].total_tokens, 5);
  EXPECT_DOUBLE_EQ(groups[0].cost_usd, 0.5);
  EXPECT_EQ(groups[1].priced_turns, 0);
  rtgw::usage::UsageQuery future;
  future.since = static_cast<double>(g_get_real_time()) / 1e6 + 60;
  EXPECT_TRUE(ledger.memory_report(future).empty());
  rtgw::usage::UsageQuery own;
  own.key = "team-b";
  EXPECT_EQ(ledger.memory_report(own).size(), 1u);
}

}  // namespace

// ------------------------------------------------------------------ saturation

namespace {

TEST(Saturation, TotalsNeverWrapNorGoDown) {
  using rtgw::usage::saturating_add;
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(saturating_add(kMax, std::int64_t{1}), kMax);
  EXPECT_EQ(saturating_add(kMax - 5, kMax), kMax);
  EXPECT_EQ(saturating_add(std::int64_t{10}, std::int64_t{-3}), 10);  // never lowers
  EXPECT_EQ(saturating_add(std::uint64_t{~0ULL}, std::uint64_t{2}), ~0ULL);
  EXPECT_EQ(saturating_add(1.0, std::nan("")), 1.0);
  EXPECT_EQ(saturating_add(1.0, -2.0), 1.0);
  EXPECT_TRUE(std::isfinite(saturating_add(std::numeric_limits<double>::max(), 1e308)));
  bool clamped = false;
  EXPECT_EQ(rtgw::usage::clamp_turn_tokens(1'000'000'000, &clamped), 1'000'000'000);
  EXPECT_FALSE(clamped);
  EXPECT_EQ(rtgw::usage::clamp_turn_tokens(1'000'000'001, &clamped), 1'000'000'000);
  EXPECT_TRUE(clamped);
}

TEST(Saturation, AKeysTotalAndItsReplayStayAtTheTop) {
  // Issue 21: an upstream reporting INT64_MAX tokens wrapped a key's total (and so reset its
  // budget), and the replay after a restart wrapped the same way.
  TempLog log;
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  {
    rtgw::usage::UsageLedger ledger(log.path);
    UsageRecord r;
    r.key_name = "team-a";
    r.total_tokens = 100;
    ledger.record(r);
    r.total_tokens = kMax;
    ledger.record(r);
    EXPECT_EQ(ledger.tokens_used("team-a"), kMax);
    r.total_tokens = 100;
    ledger.record(r);
    EXPECT_EQ(ledger.tokens_used("team-a"), kMax);
    EXPECT_TRUE(ledger.over_budget("team-a", 1000));
    // No total: input + output, saturating as well.
    UsageRecord parts;
    parts.key_name = "team-b";
    parts.input_tokens = kMax;
    parts.output_tokens = kMax;
    EXPECT_EQ(parts.billable_tokens(), kMax);
    UsageRecord sum;
    sum.add_tokens(parts);
    sum.add_tokens(parts);
    EXPECT_EQ(sum.input_tokens, kMax);
  }
  rtgw::usage::UsageLedger replayed(log.path);
  EXPECT_EQ(replayed.tokens_used("team-a"), kMax);
  EXPECT_TRUE(replayed.over_budget("team-a", 1000));
}

}  // namespace
