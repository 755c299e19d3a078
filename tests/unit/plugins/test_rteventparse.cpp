// SPDX-License-Identifier: MIT
// rteventparse through GstHarness: JSON lines to one event per buffer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

std::vector<std::string> pull_all(ElementHarness& h) {
  std::vector<std::string> out;
  while (const Ref<GstBuffer> b = h.try_pull()) out.push_back(buffer_text(b.get()));
  return out;
}

TEST(RtEventParse, SplitsLinesAcrossBuffers) {
  ElementHarness h("rteventparse", "application/octet-stream");
  EXPECT_EQ(h.push("{\"a\":1}\n{\"b\":"), GST_FLOW_OK);
  EXPECT_EQ(pull_all(h), std::vector<std::string>{"{\"a\":1}"});
  EXPECT_EQ(h.push("2}\r\n\n  \r\n\t\n{\"c\""), GST_FLOW_OK);
  EXPECT_EQ(h.push(":3}\n"), GST_FLOW_OK);
  EXPECT_EQ(h.push("{\"d\":4}"), GST_FLOW_OK);  // no final newline
  EXPECT_EQ(pull_all(h), (std::vector<std::string>{"{\"b\":2}", "{\"c\":3}"}));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_eos()));
  EXPECT_EQ(pull_all(h), std::vector<std::string>{"{\"d\":4}"});

  const auto caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(h.get()->sinkpad));
  ASSERT_TRUE(caps);
  EXPECT_TRUE(gst_caps_is_equal(
      caps.get(), Ref<GstCaps>::adopt(gst_caps_from_string("application/x-realtime-event")).get()));
}

TEST(RtEventParse, ManyLinesInOneBufferShareMemory) {
  ElementHarness h("rteventparse", "application/octet-stream");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "{\"i\":" + std::to_string(i) + "}\n";
  EXPECT_EQ(h.push(text), GST_FLOW_OK);
  const auto lines = pull_all(h);
  ASSERT_EQ(lines.size(), 100u);
  EXPECT_EQ(lines[42], "{\"i\":42}");
}

TEST(RtEventParse, FlushDropsThePartialLine) {
  ElementHarness h("rteventparse", "application/octet-stream");
  EXPECT_EQ(h.push("{\"partial\""), GST_FLOW_OK);
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_BYTES);
  EXPECT_TRUE(gst_harness_push_event(h.get(), gst_event_new_segment(&segment)));
  EXPECT_EQ(h.push("{\"x\":1}\n"), GST_FLOW_OK);
  EXPECT_EQ(pull_all(h), std::vector<std::string>{"{\"x\":1}"});
}

}  // namespace
}  // namespace rtgw::rtevents::test
