// SPDX-License-Identifier: MIT
// The strict JSON validator (plugins/rtevents/json_strict.h) and json::parse in front of
// json-glib: RFC 8259 only, bounded nesting, iterative (issue 21, finding 1).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/json.h"
#include "rtevents/json_strict.h"

namespace rtgw {
namespace {

namespace strict = rtevents::strict_json;

// The reproductions of issue 21: a `"` inside what json-glib 1.6 takes for a comment or a
// single-quoted string hid every bracket after it from the old bracket counter, and json-glib
// recursed until the stack overflowed.
std::vector<std::string> issue21_bypasses() {
  const std::string deep(200000, '[');
  return {
      "/*\"*/" + deep,
      "{\"session\":/* \" */" + deep,
      "{'a\"':" + deep,
      "['\"'," + deep,
      "{\"type\":\"realtime\",\"model\":\"echo\",\"x\":'\"'," + deep + "}",
      "// \"\n" + deep,
  };
}

TEST(JsonStrict, CommentsAndSingleQuotesCannotHideNesting) {
  for (const auto& text : issue21_bypasses()) {
    const auto r = strict::check(text);
    EXPECT_FALSE(r.ok) << text.substr(0, 60);
    std::string error;
    // json::parse must refuse them without ever letting json-glib recurse (this crashed before).
    EXPECT_FALSE(json::parse(text, &error)) << text.substr(0, 60);
    EXPECT_FALSE(error.empty());
  }
  EXPECT_STREQ(strict::check("/*\"*/[1]").reason, "comments are not JSON");
  EXPECT_STREQ(strict::check("{'a':1}").reason, "single-quoted strings are not JSON");
}

TEST(JsonStrict, RefusesWhatJsonIsNot) {
  struct Case {
    std::string text;
    std::size_t offset;
  };
  const std::vector<Case> cases = {
      {"", 0},
      {"   ", 3},
      {"{\"a\":1,}", 7},                // trailing comma in an object
      {"[1,2,]", 5},                    // ... in an array
      {"[1 2]", 3},                     // missing comma
      {"{\"a\" 1}", 5},                 // missing colon
      {"{a:1}", 1},                     // bare name
      {"[NaN]", 1},                     //
      {"[Infinity]", 1},                //
      {"[-Infinity]", 2},               //
      {"[01]", 1},                      // leading zero
      {"[-01]", 2},                     //
      {"[1.]", 3},                      //
      {"[.5]", 1},                      //
      {"[1e]", 3},                      //
      {"[+1]", 1},                      //
      {"[0x10]", 2},                    //
      {"{\"a\":\"x\ty\"}", 7},          // raw control character in a string
      {"{\"a\":\"x\ny\"}", 7},          //
      {std::string("[\"\0\"]", 4), 2},  // raw NUL
      {"[\"\xC3\"]", 2},                // truncated UTF-8
      {"[\"\xC0\xAF\"]", 2},            // overlong
      {"[\"\xED\xA0\x80\"]", 2},        // an encoded surrogate
      {"[\"\xF4\x90\x80\x80\"]", 2},    // above U+10FFFF
      {"[\"\xFF\"]", 2},                //
      {"{\"a\":1}x", 7},                // trailing garbage
      {"{\"a\":1}{}", 7},               // a second value
      {"\xEF\xBB\xBF{}", 0},            // BOM
      {"[tru]", 1},                     //
      {"[True]", 1},                    //
      {"[\"abc", 5},                    // unterminated string
      {"[1", 2},                        // unterminated array
      {"{\"a\":1", 6},                  //
      {"{\"a\":}", 5},                  //
      {"[\"\\x41\"]", 2},               // escapes outside RFC 8259
      {"[\"\\312\"]", 2},               //
      {"[\"\\u00G0\"]", 2},             //
      {"[\"\\ud8\"]", 2},               //
      {"[\"\\'\"]", 2},                 //
      {"]", 0},                         //
      {"{\"a\":1]", 6},                 // mismatched close
      {"[1}", 2},                       //
  };
  for (const auto& c : cases) {
    const auto r = strict::check(c.text);
    EXPECT_FALSE(r.ok) << c.text;
    EXPECT_EQ(r.offset, c.offset) << c.text << ": " << r.message();
    EXPECT_FALSE(r.too_deep) << c.text;
    std::string error;
    EXPECT_FALSE(json::parse(c.text, &error)) << c.text;
    EXPECT_NE(error.find("(at byte " + std::to_string(c.offset) + ")"), std::string::npos)
        << c.text << ": " << error;
  }
}

TEST(JsonStrict, AcceptsJson) {
  for (const char* text : {
           "{}",
           "[]",
           "0",
           "-0",
           "1.5e-7",
           "-2E+300",
           "1E5",
           "true",
           "false",
           "null",
           "\"\"",
           " \t\r\n{ \"a\" : [ 1 , { } , [ ] , \"x\" ] }\n ",
           R"({"a":"\"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"})",
           "[\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"]",
           R"({"a":1,"a":2})",  // duplicates are JSON; the readers after decide
           R"({"type":"response.create","response":{"instructions":"/* not a comment */ 'x'"}})",
       }) {
    const auto r = strict::check(text);
    EXPECT_TRUE(r.ok) << text << ": " << r.message();
    EXPECT_FALSE(r.repaired) << text;
  }
}

TEST(JsonStrict, DepthBoundIsSixtyFourAndIterative) {
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(strict::check(ok).ok);
  const auto r = strict::check("[" + ok + "]");
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.too_deep);
  EXPECT_EQ(r.offset, 64u);
  EXPECT_NE(r.message().find("nested deeper than 64 levels (at byte 64)"), std::string::npos);
  std::string objects;
  for (int i = 0; i < 64; ++i) objects += "{\"a\":";
  objects += "1" + std::string(64, '}');
  EXPECT_TRUE(strict::check(objects).ok);
  EXPECT_TRUE(json::parse(objects));
  // Another bound, and far too deep text: refused at the first bracket past it.
  EXPECT_EQ(strict::check("[[[", 2).offset, 2u);
  EXPECT_TRUE(strict::check(std::string(1000000, '[')).too_deep);
}

TEST(JsonStrict, LoneSurrogateEscapesAreRepairedInPlace) {
  const std::string text = R"({"a":"x\udc00y","b":"\ud800\u0041","c":"\ud83d\ude00"})";
  const auto r = strict::check(text);
  ASSERT_TRUE(r.ok) << r.message();
  ASSERT_TRUE(r.repaired);
  EXPECT_EQ(*r.repaired, R"({"a":"x\uFFFDy","b":"\uFFFD\u0041","c":"\ud83d\ude00"})");
  EXPECT_EQ(r.repaired->size(), text.size());
}

TEST(JsonStrict, JsonGlibProfileRefusesWhatJsonGlibMisreads) {
  // json-glib 1.6 wraps integers beyond 64 bits (99999999999999999999 became -1) and cuts a
  // string at \u0000: refused where a json-glib tree is built (json::parse), not in events.
  for (const char* text : {"[9223372036854775808]", "[-9223372036854775809]",
                           "[99999999999999999999]", R"(["a\u0000b"])", R"({"\u0000":1})"}) {
    EXPECT_TRUE(strict::check(text).ok) << text;
    EXPECT_FALSE(strict::check(text, strict::kMaxDepth, true).ok) << text;
    std::string error;
    EXPECT_FALSE(json::parse(text, &error)) << text;
    EXPECT_NE(error.find("(at byte "), std::string::npos) << error;
  }
  for (const char* text : {"[9223372036854775807]", "[-9223372036854775808]", "[1e30]",
                           "[99999999999999999999.0]", R"(["\u0001"])"})
    EXPECT_TRUE(json::parse(text)) << text;
}

TEST(JsonStrict, LinearTime) {
  // 4 MiB of strings, numbers and shallow containers: well under the per-event budget.
  std::string big = "[";
  while (big.size() < (4u << 20)) big += R"({"a":"0123456789abcdef","b":[1,2.5e3,true,null]},)";
  big += "0]";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(strict::check(big).ok);
  const auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  EXPECT_LT(ms.count(), 200.0);  // about 10 ms on the CI machine; generous under load/sanitizers
}

}  // namespace
}  // namespace rtgw
