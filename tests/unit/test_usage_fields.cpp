// SPDX-License-Identifier: MIT
// The event vocabulary (plugins/rtevents/vocab.h): the usage token field table walked through every
// consumer (an upstream usage object, the meter's GstStructure, the JSONL log line, the PostgreSQL
// columns, pricing, the metric kinds), and the one JSON depth bound.
//
// Adding a token field: its row in usage_fields.h, and its line in kUpstreamUsage and kPriceOf
// below (the walk fails until both are there).
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "common/json.h"
#include "config/config.h"
#include "events/element_messages.h"
#include "rtevents/json.h"
#include "rtevents/json_strict.h"
#include "rtevents/usage.h"
#include "rtevents/usage_fields.h"
#include "usage/postgres_ledger.h"
#include "usage/pricing.h"
#include "usage/usage_ledger.h"

namespace {

namespace rt = rtgw::rtevents;
using rtgw::usage::UsageRecord;

// A `usage` object as the upstream sends it, written out by hand (not from the table): every
// token field, each with its own value (the row's value is the test's expectation below).
constexpr const char* kUpstreamUsage = R"({"type":"tokens",
  "input_tokens":101,"output_tokens":102,"total_tokens":103,
  "input_token_details":{"text_tokens":104,"audio_tokens":105,"image_tokens":106,
    "cached_tokens":107,
    "cached_tokens_details":{"text_tokens":108,"audio_tokens":109,"image_tokens":110}},
  "output_token_details":{"text_tokens":111,"audio_tokens":112}})";

const std::map<std::string, std::int64_t> kUpstreamValue = {{"input_tokens", 101},
                                                            {"output_tokens", 102},
                                                            {"total_tokens", 103},
                                                            {"input_text_tokens", 104},
                                                            {"input_audio_tokens", 105},
                                                            {"input_image_tokens", 106},
                                                            {"input_cached_tokens", 107},
                                                            {"input_cached_text_tokens", 108},
                                                            {"input_cached_audio_tokens", 109},
                                                            {"input_cached_image_tokens", 110},
                                                            {"output_text_tokens", 111},
                                                            {"output_audio_tokens", 112}};

// Distinct per-million prices, so a cost names the price it was charged at.
rtgw::config::Pricing distinct_prices() {
  rtgw::config::Pricing p;
  p.text_input = 1;
  p.text_cached_input = 2;
  p.audio_input = 3;
  p.audio_cached_input = 4;
  p.image_input = 5;
  p.text_output = 6;
  p.audio_output = 7;
  return p;
}

// What one million tokens of the row alone cost at distinct_prices() (cached details sent).
// total_tokens is no price component (the budget's count): 0.
const std::map<std::string, double> kPriceOf = {
    {"input_tokens", 1},  // attributed to no modality: text
    {"output_tokens", 6},
    {"total_tokens", 0},
    {"input_text_tokens", 1},
    {"input_audio_tokens", 3},
    {"input_image_tokens", 5},
    {"input_cached_tokens", 0},  // with details, the split counts (without: all text, below)
    {"input_cached_text_tokens", 2},
    {"input_cached_audio_tokens", 4},
    {"input_cached_image_tokens", 5},  // no cached image price: image_input
    {"output_text_tokens", 6},
    {"output_audio_tokens", 7}};

// A record whose every row holds a distinct value (1000 + row index).
UsageRecord every_row_distinct(bool details) {
  UsageRecord r;
  r.key_name = "k";
  r.cached_details_present = details;
  std::int64_t v = 1000;
  for (const auto& f : rt::kTokenFields) rt::count_of(r, f) = v++;
  return r;
}

TEST(UsageFields, TheTableNamesEachThingOnce) {
  std::set<std::string> names, gst, kinds, places;
  for (const auto& f : rt::kTokenFields) {
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    EXPECT_TRUE(gst.insert(f.gst_field).second) << f.gst_field;
    EXPECT_TRUE(places.insert(std::to_string(static_cast<int>(f.group)) + "/" + f.key).second)
        << f.name;
    // The metric kind is the name without "_tokens" (rtgw_tokens_total's labels, unchanged);
    // total_tokens has no series.
    const std::string name = f.name;
    if (name == "total_tokens") {
      EXPECT_EQ(f.metric_kind, nullptr);
    } else {
      ASSERT_NE(f.metric_kind, nullptr) << name;
      EXPECT_EQ(std::string(f.metric_kind) + "_tokens", name);
      EXPECT_TRUE(kinds.insert(f.metric_kind).second) << name;
    }
    // Every row has its expectations in this test.
    EXPECT_EQ(kUpstreamValue.count(name), 1u) << name << ": add it to kUpstreamUsage";
    EXPECT_EQ(kPriceOf.count(name), 1u) << name << ": add its price to kPriceOf";
  }
  EXPECT_EQ(names.size(), rt::kTokenFieldCount);
  EXPECT_EQ(kUpstreamValue.size(), rt::kTokenFieldCount);
}

TEST(UsageFields, EveryRowIsReadFromAnUpstreamUsageObject) {
  const std::string text =
      std::string(R"({"type":"response.done","response":{"usage":)") + kUpstreamUsage + "}}";
  const auto parsed = rt::json::parse(text);
  ASSERT_TRUE(parsed.root);
  const rt::Usage u = rt::extract_usage(parsed.root->last("response"));
  EXPECT_TRUE(u.present);
  EXPECT_TRUE(u.cached_details_present);
  EXPECT_FALSE(u.clamped);
  for (const auto& f : rt::kTokenFields)
    EXPECT_EQ(rt::count_of(u, f), kUpstreamValue.at(f.name)) << f.name;
}

TEST(UsageFields, EveryRowSurvivesTheMetersGstStructure) {
  for (bool details : {true, false}) {
    const UsageRecord in = every_row_distinct(details);
    GstStructure* s = gst_structure_new_empty("rtusage-turn");
    rt::set_gst_token_fields(s, in, rt::GstTokenPart::kCounts);
    rt::set_gst_token_fields(s, in, rt::GstTokenPart::kCachedDetails);
    // Each row is its own gint64 field.
    for (const auto& f : rt::kTokenFields) {
      gint64 v = -1;
      EXPECT_TRUE(gst_structure_get_int64(s, f.gst_field, &v)) << f.gst_field;
      EXPECT_EQ(v, rt::count_of(in, f)) << f.gst_field;
    }
    // And the gateway reads every row back (events/element_messages.h).
    const auto out = rtgw::events::parse_turn(s);
    gst_structure_free(s);
    ASSERT_TRUE(out);
    EXPECT_EQ(out->cached_details_present, details);
    for (const auto& f : rt::kTokenFields)
      EXPECT_EQ(rt::count_of(*out, f), rt::count_of(in, f)) << f.name;
  }
}

TEST(UsageFields, EveryRowSurvivesTheJsonlLine) {
  for (bool details : {true, false}) {
    const UsageRecord in = every_row_distinct(details);
    const auto logged = rtgw::usage::parse_usage_line(in.to_json_line(1700000000.0));
    ASSERT_TRUE(logged);
    EXPECT_EQ(logged->record.cached_details_present, details);
    for (const auto& f : rt::kTokenFields) {
      // Without details their rows are not in the line: they read back as 0.
      const std::int64_t expected = f.only_with_details && !details ? 0 : rt::count_of(in, f);
      EXPECT_EQ(rt::count_of(logged->record, f), expected) << f.name;
    }
  }
}

// The log line is byte for byte what it was before the table (an existing log still replays, and
// readers of the log see the same bytes): these two lines were written by 8a27e32's code.
TEST(UsageFields, TheJsonlLineIsUnchanged) {
  UsageRecord r;
  r.kind = "response";
  r.record_id = "ur_x";
  r.call_id = "rtc_1";
  r.transport = "webrtc";
  r.key_name = "k";
  r.model = "m";
  r.worker = "w";
  r.response_id = "resp_1";
  r.status = "completed";
  r.usage_present = true;
  for (const auto& f : rt::kTokenFields) rt::count_of(r, f) = kUpstreamValue.at(f.name);
  r.service_tier = "default";
  r.first_token_latency_ms = 12.5;
  r.turn_duration_ms = 250.25;
  r.cost_usd = 0.015;
  r.cached_details_present = true;
  EXPECT_EQ(
      r.to_json_line(1700000000.5),
      R"({"input_tokens":101,"output_tokens":102,"total_tokens":103,"input_token_details":{"text_tokens":104,"audio_tokens":105,"image_tokens":106,"cached_tokens":107,"cached_tokens_details":{"text_tokens":108,"audio_tokens":109,"image_tokens":110}},"output_token_details":{"text_tokens":111,"audio_tokens":112},"transcription_seconds":0.0,"record_id":"ur_x","time":1700000000.5,"kind":"response","call_id":"rtc_1","transport":"webrtc","key":"k","model":"m","worker":"w","status":"completed","usage_present":true,"response_id":"resp_1","item_id":null,"service_tier":"default","first_token_latency_ms":12.5,"turn_duration_ms":250.25,"cost_usd":0.014999999999999999})");
  r.cached_details_present = false;
  r.kind = "transcription";
  r.response_id = "";
  r.item_id = "item_1";
  r.transcription_seconds = 3.5;
  r.cost_usd.reset();
  r.first_token_latency_ms = -1;
  EXPECT_EQ(
      r.to_json_line(1700000001),
      R"({"input_tokens":101,"output_tokens":102,"total_tokens":103,"input_token_details":{"text_tokens":104,"audio_tokens":105,"image_tokens":106,"cached_tokens":107},"output_token_details":{"text_tokens":111,"audio_tokens":112},"transcription_seconds":3.5,"record_id":"ur_x","time":1700000001.0,"kind":"transcription","call_id":"rtc_1","transport":"webrtc","key":"k","model":"m","worker":"w","status":"completed","usage_present":true,"response_id":null,"item_id":"item_1","service_tier":"default","first_token_latency_ms":null,"turn_duration_ms":250.25,"cost_usd":null})");
}

TEST(UsageFields, EveryRowIsAPostgresColumn) {
  const std::string schema = rtgw::usage::PostgresLedger::schema_sql();
  const auto& columns = rtgw::usage::PostgresLedger::column_names();
  std::size_t previous = 0;
  for (const auto& f : rt::kTokenFields) {
    // Cached details are NULL without them; every other count is NOT NULL.
    const std::string line =
        std::string("\n  ") + f.name + (f.only_with_details ? " bigint,\n" : " bigint NOT NULL,\n");
    EXPECT_NE(schema.find(line), std::string::npos) << f.name;
    // Inserted once each, in table order.
    std::size_t at = 0;
    std::size_t found = 0;
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == f.name) {
        at = i;
        ++found;
      }
    EXPECT_EQ(found, 1u) << f.name;
    EXPECT_GT(at, previous) << f.name;
    previous = at;
  }
  // The columns around them, as before the table.
  EXPECT_EQ(columns.size(), 11 + rt::kTokenFieldCount + 6);
  EXPECT_EQ(columns.front(), "instance");
  EXPECT_EQ(columns[10], "usage_present");
  EXPECT_EQ(columns.back(), "record_id");
}

TEST(UsageFields, EveryRowIsPriced) {
  const auto prices = distinct_prices();
  for (const auto& f : rt::kTokenFields) {
    UsageRecord r;
    r.cached_details_present = true;
    rt::count_of(r, f) = 1'000'000;
    const auto usd = rtgw::usage::price_turn(r, &prices);
    ASSERT_TRUE(usd) << f.name;
    EXPECT_DOUBLE_EQ(*usd, kPriceOf.at(f.name)) << f.name;
  }
  // Without cached details every cached token is text.
  UsageRecord r;
  r.input_cached_tokens = 1'000'000;
  EXPECT_DOUBLE_EQ(*rtgw::usage::price_turn(r, &prices), 2);
}

// One nesting bound for the three readers: the strict validator, json::parse (which runs it before
// json-glib builds a tree) and the event reader (which builds values down to it).
std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(UsageFields, OneJsonDepthBound) {
  EXPECT_EQ(rtgw::json::kMaxDepth, rt::kJsonMaxDepth);
  EXPECT_EQ(rt::strict_json::kMaxDepth, rt::kJsonMaxDepth);
  EXPECT_EQ(rt::json::kMaxDepth, rt::kJsonMaxDepth);
  EXPECT_TRUE(rt::strict_json::check(nested(rt::kJsonMaxDepth)).ok);
  EXPECT_FALSE(rt::strict_json::check(nested(rt::kJsonMaxDepth + 1)).ok);
  EXPECT_TRUE(rtgw::json::parse(nested(rt::kJsonMaxDepth)));
  std::string error;
  EXPECT_FALSE(rtgw::json::parse(nested(rt::kJsonMaxDepth + 1), &error));
  EXPECT_NE(error.find("deeper than 64"), std::string::npos) << error;
  // The event reader builds every level the validator lets through (it kept the deepest half
  // opaque when its own bound was 32).
  const auto parsed = rt::json::parse(nested(rt::kJsonMaxDepth));
  ASSERT_TRUE(parsed.root);
  const rt::json::Value* v = &*parsed.root;
  for (int level = 1; level < rt::kJsonMaxDepth; ++level) {
    ASSERT_EQ(v->type, rt::json::Type::kArray) << level;
    ASSERT_EQ(v->items.size(), 1u) << level;
    v = &v->items[0];
  }
  EXPECT_EQ(v->type, rt::json::Type::kArray);
  EXPECT_TRUE(v->items.empty());
}

// json::parse refuses what json-glib alone would read: the strict validator runs first.
TEST(UsageFields, JsonParseValidatesBeforeJsonGlib) {
  for (const char* lax : {R"({"a":1,})", R"({"a":/* c */1})", R"({'a':1})", R"({"a":01})",
                          R"([1] x)", R"({"a":99999999999999999999})"}) {
    std::string error;
    EXPECT_FALSE(rtgw::json::parse(lax, &error)) << lax;
    EXPECT_FALSE(error.empty()) << lax;
  }
  EXPECT_TRUE(rtgw::json::parse(R"({"a":[1,2.5,"x",null,true]})"));
}

}  // namespace
