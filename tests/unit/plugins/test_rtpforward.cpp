// SPDX-License-Identifier: MIT
// rtpforward through GstHarness: every packet leaves at once, unchanged and in arrival order, on
// the pushing thread; `stats` counts loss and duplicates from the sequence numbers; the surface
// rtpbin and webrtcbin use on a jitterbuffer (latency, do-retransmission, stats, sink_rtcp) works.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

constexpr const char* kOpusCaps =
    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111";

Ref<GstBuffer> rtp_packet(guint16 seq, const std::string& payload = "opus") {
  std::vector<guint8> bytes = {
      0x80, 111, static_cast<guint8>(seq >> 8), static_cast<guint8>(seq), 0, 0, 0x03, 0xc0, 0, 0,
      0,    42};
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return make_buffer(std::string(bytes.begin(), bytes.end()));
}

guint16 seq_of(GstBuffer* b) {
  const std::string bytes = buffer_text(b);
  return static_cast<guint16>((static_cast<guint8>(bytes[2]) << 8) | static_cast<guint8>(bytes[3]));
}

guint64 stat(GstElement* e, const char* field) {
  GstStructure* raw = nullptr;
  g_object_get(e, "stats", &raw, nullptr);
  const UniqueStructure stats(raw);
  EXPECT_NE(stats, nullptr);
  if (!stats) return G_MAXUINT64;
  guint64 v = G_MAXUINT64;
  EXPECT_TRUE(gst_structure_get_uint64(stats.get(), field, &v)) << field;
  return v;
}

TEST(RtpForward, ForwardsEveryPacketAtOnceInArrivalOrderUnchanged) {
  ElementHarness h("rtpforward", kOpusCaps);
  // Out of order, with a duplicate and a gap: all of it leaves as it came, nothing waits.
  const std::vector<guint16> arrivals = {65534, 65535, 1, 0, 1, 5};
  for (guint16 seq : arrivals) {
    const Ref<GstBuffer> in = rtp_packet(seq, "payload-" + std::to_string(seq));
    ASSERT_EQ(h.push(in), GST_FLOW_OK);
    const Ref<GstBuffer> out = h.try_pull();  // already there: no thread, no timer
    ASSERT_TRUE(out) << seq;
    EXPECT_EQ(buffer_text(out.get()), buffer_text(in.get()));
    EXPECT_EQ(seq_of(out.get()), seq);
  }
  EXPECT_EQ(gst_harness_buffers_in_queue(h.get()), 0u);
  // The caps went through as they were.
  const auto caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(h.get()->sinkpad));
  ASSERT_TRUE(caps);
  EXPECT_TRUE(
      gst_caps_is_equal(caps.get(), Ref<GstCaps>::adopt(gst_caps_from_string(kOpusCaps)).get()));

  // Expected 65534..5 = 8 sequence numbers, 5 distinct received (2, 3, 4 missing), 1 duplicate.
  EXPECT_EQ(stat(h.element(), "num-pushed"), arrivals.size());
  EXPECT_EQ(stat(h.element(), "num-lost"), 3u);
  EXPECT_EQ(stat(h.element(), "num-duplicates"), 1u);
  // What webrtcbin's get-stats reads besides: present, and 0 (nothing late, no retransmission).
  EXPECT_EQ(stat(h.element(), "num-late"), 0u);
  EXPECT_EQ(stat(h.element(), "rtx-success-count"), 0u);

  // A late packet that fills a gap is no longer lost.
  ASSERT_EQ(h.push(rtp_packet(3)), GST_FLOW_OK);
  EXPECT_EQ(seq_of(h.try_pull().get()), 3);
  EXPECT_EQ(stat(h.element(), "num-lost"), 2u);
}

TEST(RtpForward, RunsOnTheCallersThreadWithoutTasks) {
  ElementHarness h("rtpforward", kOpusCaps);
  GThread* pusher = nullptr;
  gst_pad_add_probe(
      h.get()->sinkpad, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo*, gpointer data) {
        *static_cast<GThread**>(data) = g_thread_self();
        return GST_PAD_PROBE_OK;
      },
      &pusher, nullptr);
  ASSERT_EQ(h.push(rtp_packet(1)), GST_FLOW_OK);
  EXPECT_EQ(pusher, g_thread_self());
  const auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(h.element(), "src"));
  EXPECT_EQ(GST_PAD_TASK(src.get()), nullptr);
}

TEST(RtpForward, RestartedSequenceIsNotLoss) {
  ElementHarness h("rtpforward", kOpusCaps);
  for (guint16 seq : {100, 101, 102, 30000, 30001}) ASSERT_EQ(h.push(rtp_packet(seq)), GST_FLOW_OK);
  EXPECT_EQ(stat(h.element(), "num-lost"), 0u);
  EXPECT_EQ(stat(h.element(), "num-pushed"), 5u);
}

TEST(RtpForward, TakesWhatRtpbinAndWebrtcbinSet) {
  ElementHarness h("rtpforward", kOpusCaps);
  // rtpbin's create_stream sets latency unconditionally; webrtcbin sets do-retransmission.
  g_object_set(h.element(), "latency", 20u, "do-retransmission", TRUE, nullptr);
  guint latency = 0;
  gboolean rtx = FALSE;
  g_object_get(h.element(), "latency", &latency, "do-retransmission", &rtx, nullptr);
  EXPECT_EQ(latency, 20u);
  EXPECT_TRUE(rtx);

  // RTCP from rtpbin's SSRC demuxer: accepted (caps, segment, buffers) and consumed.
  const auto rtcp = Ref<GstPad>::adopt(gst_element_request_pad_simple(h.element(), "sink_rtcp"));
  ASSERT_TRUE(rtcp);
  const auto rtcp_out =
      Ref<GstPad>::adopt(GST_PAD(gst_object_ref_sink(gst_pad_new("rtcp_src", GST_PAD_SRC))));
  GstPad* rtcp_src = rtcp_out.get();
  gst_pad_set_active(rtcp_src, TRUE);
  ASSERT_EQ(gst_pad_link(rtcp_src, rtcp.get()), GST_PAD_LINK_OK);
  EXPECT_TRUE(gst_pad_push_event(rtcp_src, gst_event_new_stream_start("rtcp")));
  auto rtcp_caps = Ref<GstCaps>::adopt(gst_caps_from_string("application/x-rtcp"));
  EXPECT_TRUE(gst_pad_push_event(rtcp_src, gst_event_new_caps(rtcp_caps.get())));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  EXPECT_TRUE(gst_pad_push_event(rtcp_src, gst_event_new_segment(&segment)));
  const std::string receiver_report("\x80\xc9\x00\x01\x00\x00\x00\x2a", 8);
  EXPECT_EQ(gst_pad_push(rtcp_src, make_buffer(receiver_report).release()), GST_FLOW_OK);
  gst_pad_unlink(rtcp_src, rtcp.get());
  gst_pad_set_active(rtcp_src, FALSE);
  EXPECT_EQ(h.try_pull().get(), nullptr);  // nothing of it reaches the RTP side
  // The RTP side keeps its own caps and stream (no RTCP event leaked through to it).
  const auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(h.element(), "src"));
  const auto src_caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(src.get()));
  ASSERT_TRUE(src_caps);
  EXPECT_TRUE(
      gst_caps_is_equal(src_caps.get(), Ref<GstCaps>::adopt(gst_caps_from_string(kOpusCaps)).get()))
      << gst_caps_to_string(src_caps.get());
  const UniqueStr stream_id(gst_pad_get_stream_id(src.get()));  // the RTP stream's, not "rtcp"
  EXPECT_STRNE(stream_id.get(), "rtcp");
  ASSERT_EQ(h.push(rtp_packet(7)), GST_FLOW_OK);
  EXPECT_EQ(seq_of(h.try_pull().get()), 7);
  const auto caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(h.get()->sinkpad));
  ASSERT_TRUE(caps);
  EXPECT_STREQ(gst_structure_get_name(gst_caps_get_structure(caps.get(), 0)), "application/x-rtp");
  gst_element_release_request_pad(h.element(), rtcp.get());
}

}  // namespace
}  // namespace rtgw::rtevents::test
