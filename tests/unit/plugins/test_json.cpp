// SPDX-License-Identifier: MIT
// The span-preserving JSON reader behind rteventfilter and rtusagemeter.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/ref.h"
#include "rtevents/json.h"

namespace rtgw::rtevents::json {
namespace {

TEST(RtJson, ParsesObjectsKeepingOrderAndDuplicates) {
  const std::string text = R"({"b":1, "a" : [true,false,null], "b":"x"})";
  const ParseResult r = parse(text);
  ASSERT_TRUE(r.root);
  ASSERT_TRUE(r.root->is_object());
  ASSERT_EQ(r.root->members.size(), 3u);
  EXPECT_EQ(r.root->members[0].key, "b");
  EXPECT_EQ(r.root->members[1].key, "a");
  EXPECT_EQ(r.root->all("b").size(), 2u);
  EXPECT_EQ(r.root->last_string("b"), "x");  // last wins, like json-glib, Python and Go
  EXPECT_EQ(r.root->last("a")->items.size(), 3u);
  EXPECT_EQ(r.root->members[1].value.raw, "[true,false,null]");
  EXPECT_FALSE(r.trailing);
}

TEST(RtJson, DecodesStringsWithoutTruncating) {
  const std::string text =
      R"({"a":"x\u0000y","b":"\u00e9\ud83d\ude00\n","c":"\ud800!","k\u0065y":1})";
  const ParseResult r = parse(text);
  ASSERT_TRUE(r.root);
  EXPECT_EQ(r.root->last_string("a"), std::string("x\0y", 3));
  EXPECT_EQ(r.root->last_string("b"), "\xC3\xA9\xF0\x9F\x98\x80\n");
  EXPECT_EQ(r.root->last_string("c"), "\xEF\xBF\xBD!");  // lone surrogate -> U+FFFD
  EXPECT_NE(r.root->last("key"), nullptr);               // escaped keys are decoded
}

TEST(RtJson, EscapesNextToQuotes) {
  const std::pair<const char*, std::string> cases[] = {
      {R"({"a":"x\\"})", "x\\"},   {R"({"a":"\"q\""})", "\"q\""},
      {R"({"a":"\\\""})", "\\\""}, {R"({"a":"\\\\"})", "\\\\"},
      {R"({"a":"\u0022"})", "\""}, {R"({"a":"\u005c\""})", "\\\""},
      {R"({"a":""})", ""},         {R"({"a":"\/\b\f\n\r\t"})", "/\b\f\n\r\t"},
  };
  for (const auto& [text, expected] : cases) {
    const ParseResult r = parse(text);
    ASSERT_TRUE(r.root) << text;
    EXPECT_FALSE(r.trailing) << text;
    EXPECT_EQ(r.root->last_string("a"), expected) << text;
  }
  for (const char* bad : {R"({"a":"x\"})", R"({"a":"x\)", R"({"a":"\u00"})"}) {
    EXPECT_FALSE(parse(bad).root) << bad;
  }
}

// Strings written by another JSON library read back identically.
TEST(RtJson, StringsRoundTripThroughJsonGlib) {
  std::mt19937 rng(99);
  const std::vector<std::string> pieces = {"a",  "\"",    "\\",   "/",        "\n",
                                           "\t", "\x01",  "\x1f", "\xC3\xA9", "\xF0\x9F\x98\x80",
                                           " ",  "u0041", "}"};
  for (int round = 0; round < 500; ++round) {
    std::string value;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) value += pieces[rng() % pieces.size()];
    const auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT));
    JsonObject* object = json_object_new();
    json_object_set_string_member(object, "k", value.c_str());
    json_node_take_object(node.get(), object);
    const UniqueStr text(json_to_string(node.get(), FALSE));
    const ParseResult r = parse(text.get());
    ASSERT_TRUE(r.root) << text.get();
    EXPECT_EQ(r.root->last_string("k"), value) << text.get();
  }
}

TEST(RtJson, Integers) {
  const ParseResult r =
      parse(R"({"a":12,"b":-3,"c":1.5,"d":1e3,"e":"7","f":99999999999999999999,"g":12.0})");
  ASSERT_TRUE(r.root);
  EXPECT_EQ(r.root->last("a")->as_int(), 12);
  EXPECT_EQ(r.root->last("b")->as_int(), -3);
  EXPECT_EQ(r.root->last("c")->as_int(), std::nullopt);
  EXPECT_EQ(r.root->last("d")->as_int(), std::nullopt);
  EXPECT_EQ(r.root->last("e")->as_int(), std::nullopt);
  EXPECT_EQ(r.root->last("f")->as_int(), std::nullopt);  // out of range: not wrapped
  EXPECT_EQ(r.root->last("g")->as_int(), std::nullopt);
}

TEST(RtJson, LenientWhereUpstreamParsersAreLenient) {
  for (const char* text : {
           R"({"a":NaN,"b":Infinity,"c":-Infinity})",  // Python's json accepts these
           "\xEF\xBB\xBF{\"a\":1}",                    // BOM
           "{\"a\":\"raw\ttab\"}",                     // raw control characters
           "{\"a\":\"\xFF\xFE\"}",                     // invalid UTF-8
           R"({"a":01,"b":[1,2,],"c":{"d":1,},})",     // leading zero, trailing commas
       }) {
    EXPECT_TRUE(parse(text).root) << text;
  }
  const ParseResult r = parse(R"({"a":1} {"b":2})");  // Go's json.Decoder reads the first one
  ASSERT_TRUE(r.root);
  EXPECT_TRUE(r.trailing);
}

TEST(RtJson, RejectsWhatNoParserReads) {
  for (const char* text : {
           "",
           "   ",
           "{",
           R"({"a":1)",
           R"({"a" 1})",
           R"({a:1})",
           R"({'a':1})",
           R"({"a":tru})",
           R"({"a":"\x"})",
           R"({"a":"\u12"})",
           R"({"a":"unterminated})",
           R"([1,2)",
           "-",
           "{\"a\":-}",
       }) {
    EXPECT_FALSE(parse(text).root) << text;
  }
}

TEST(RtJson, DeepNestingIsValidatedWithoutRecursion) {
  const int depth = 200000;
  std::string deep =
      R"({"type":"x","deep":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  const ParseResult ok = parse(deep);
  ASSERT_TRUE(ok.root);
  EXPECT_EQ(ok.root->last_string("type"), "x");
  std::string broken = R"({"deep":)" + std::string(depth, '[') + std::string(depth - 1, ']') + "}";
  EXPECT_FALSE(parse(broken).root);
  std::string objects;
  for (int i = 0; i < 1000; ++i) objects += R"({"k":)";
  objects += "1";
  for (int i = 0; i < 1000; ++i) objects += "}";
  EXPECT_TRUE(parse(objects).root);
}

std::string remove_keys(const std::string& text, const std::string& key) {
  const ParseResult r = parse(text);
  EXPECT_TRUE(r.root);
  const auto& members = r.root->members;
  return cut(text, member_cuts(*r.root, [&](std::size_t i) { return members[i].key == key; }));
}

TEST(RtJson, MemberCutsKeepEveryOtherByte) {
  EXPECT_EQ(remove_keys(R"({"x":1,"a":2,"b":3})", "x"), R"({"a":2,"b":3})");
  EXPECT_EQ(remove_keys(R"({"a":2,"x":1,"b":3})", "x"), R"({"a":2,"b":3})");
  EXPECT_EQ(remove_keys(R"({"a":2,"b":3,"x":1})", "x"), R"({"a":2,"b":3})");
  EXPECT_EQ(remove_keys(R"({"x":1})", "x"), R"({})");
  EXPECT_EQ(remove_keys(R"({ "x" : 1 })", "x"), R"({  })");
  EXPECT_EQ(remove_keys(R"({"x":1,"x":2,"a":0.80,"x":3})", "x"), R"({"a":0.80})");
  EXPECT_EQ(remove_keys("{\n  \"a\": 1,\n  \"x\": \"y\",\n  \"b\": 2\n}", "x"),
            "{\n  \"a\": 1,\n  \"b\": 2\n}");
  EXPECT_EQ(remove_keys("{\n  \"a\": 1,\n  \"x\": \"y\"\n}", "x"), "{\n  \"a\": 1\n}");
}

// Random objects, random removals: the result always parses and holds exactly the kept members,
// with their original bytes.
TEST(RtJson, MemberCutsRandomized) {
  std::mt19937 rng(1234);
  const std::vector<std::string> values = {"1",    "\"s\"",    "[1, {\"x\": 2}]", "{\"x\": {}}",
                                           "null", "\"a,b}\"", "-0.5e3"};
  const std::vector<std::string> spaces = {"", " ", "\n  ", "\t"};
  for (int round = 0; round < 2000; ++round) {
    const int n = static_cast<int>(rng() % 6);
    std::string text = "{" + spaces[rng() % spaces.size()];
    std::vector<std::string> keys, vals;
    for (int i = 0; i < n; ++i) {
      keys.push_back(rng() % 2 ? "x" : "k" + std::to_string(i));
      vals.push_back(values[rng() % values.size()]);
      if (i > 0) text += spaces[rng() % spaces.size()] + "," + spaces[rng() % spaces.size()];
      text += "\"" + keys.back() + "\"" + spaces[rng() % spaces.size()] + ":" +
              spaces[rng() % spaces.size()] + vals.back();
    }
    text += spaces[rng() % spaces.size()] + "}";
    const std::string out = remove_keys(text, "x");
    const ParseResult r = parse(out);
    ASSERT_TRUE(r.root) << text << " -> " << out;
    ASSERT_FALSE(r.trailing) << out;
    std::vector<std::string> kept_raw;
    for (int i = 0; i < n; ++i) {
      if (keys[i] != "x") kept_raw.push_back(keys[i] + "=" + vals[i]);
    }
    std::vector<std::string> got;
    for (const auto& m : r.root->members) got.push_back(m.key + "=" + std::string(m.value.raw));
    ASSERT_EQ(got, kept_raw) << text << " -> " << out;
  }
}

}  // namespace
}  // namespace rtgw::rtevents::json
