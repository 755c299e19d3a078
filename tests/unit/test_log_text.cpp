// SPDX-License-Identifier: MIT
// common/log_text.h: peer-supplied text never reaches the log raw (issue 21, item 10).
#include <gtest/gtest.h>

#include <string>

#include "common/log_text.h"

namespace rtgw {
namespace {

TEST(LogText, ControlCharactersAndInvalidUtf8AreEscaped) {
  EXPECT_EQ(escape_log_text("bye\n** Message: 12:00:00.000: forged"),
            "bye\\n** Message: 12:00:00.000: forged");
  EXPECT_EQ(escape_log_text("a\rb\tc\x1b[31md\x7f"), "a\\rb\\tc\\x1B[31md\\x7F");
  EXPECT_EQ(escape_log_text(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(escape_log_text("bad\xff\xc3(utf8"), "bad\\xFF\\xC3(utf8");
  EXPECT_EQ(escape_log_text("c1\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9"),
            "c1\\x85 ls\\u2028 ps\\u2029");
  // What needs nothing is unchanged (backslashes and quotes included: the writer keeps every
  // message the gateway writes itself as it is).
  for (const char* same : {"", "plain", "caf\xc3\xa9 \xf0\x9f\x98\x80", R"(a\n "q")"}) {
    EXPECT_FALSE(log_text_needs_escape(same)) << same;
    EXPECT_EQ(escape_log_text(same), same);
  }
  EXPECT_TRUE(log_text_needs_escape("x\n"));
}

TEST(LogText, QuoteDelimitsThePeersString) {
  EXPECT_EQ(log_quote("oai-events"), "\"oai-events\"");
  EXPECT_EQ(log_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
  EXPECT_EQ(log_quote(std::string(300, 'x'), 4), "\"xxxx\"\xE2\x80\xA6");
}

}  // namespace
}  // namespace rtgw
