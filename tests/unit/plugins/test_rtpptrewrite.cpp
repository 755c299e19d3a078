// SPDX-License-Identifier: MIT
// rtpptrewrite through GstHarness: payload type and SSRC rewritten in place, the rest untouched.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

constexpr const char* kOpusCaps =
    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,encoding-params=2,"
    "payload=111,ssrc=(uint)42,rtcp-fb-transport-cc=true";

// A 12-byte RTP header (marker set or not) followed by `payload`.
Ref<GstBuffer> rtp_packet(guint8 pt, bool marker, guint16 seq, guint32 ts, guint32 ssrc,
                          const std::string& payload) {
  std::vector<guint8> bytes = {0x80,
                               static_cast<guint8>((marker ? 0x80 : 0) | pt),
                               static_cast<guint8>(seq >> 8),
                               static_cast<guint8>(seq),
                               static_cast<guint8>(ts >> 24),
                               static_cast<guint8>(ts >> 16),
                               static_cast<guint8>(ts >> 8),
                               static_cast<guint8>(ts),
                               static_cast<guint8>(ssrc >> 24),
                               static_cast<guint8>(ssrc >> 16),
                               static_cast<guint8>(ssrc >> 8),
                               static_cast<guint8>(ssrc)};
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return make_buffer(std::string(bytes.begin(), bytes.end()));
}

std::string bytes_of(GstBuffer* b) { return buffer_text(b); }

TEST(RtpPtRewrite, RewritesPayloadTypeAndSsrcKeepsTheRest) {
  ElementHarness h("rtpptrewrite", kOpusCaps);
  g_object_set(h.element(), "pt", 96u, "ssrc", 0x01020304u, nullptr);
  ASSERT_EQ(h.push(rtp_packet(111, true, 65535, 960, 42, "opus")), GST_FLOW_OK);
  ASSERT_EQ(h.push(rtp_packet(111, false, 0, 1920, 42, "data")), GST_FLOW_OK);
  const Ref<GstBuffer> first = h.try_pull(), second = h.try_pull();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(bytes_of(first.get()),
            bytes_of(rtp_packet(96, true, 65535, 960, 0x01020304, "opus").get()));
  EXPECT_EQ(bytes_of(second.get()),
            bytes_of(rtp_packet(96, false, 0, 1920, 0x01020304, "data").get()));

  // The src caps announce what a payloader would: payload and ssrc, no receive-side fields.
  const auto caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(h.get()->sinkpad));
  ASSERT_TRUE(caps);
  EXPECT_TRUE(gst_caps_is_equal(
      caps.get(),
      Ref<GstCaps>::adopt(gst_caps_from_string("application/x-rtp,payload=96,media=audio,"
                                               "clock-rate=48000,encoding-name=OPUS,"
                                               "encoding-params=2,ssrc=(uint)16909060"))
          .get()))
      << gst_caps_to_string(caps.get());
}

TEST(RtpPtRewrite, ZeroSsrcKeepsTheSendersAndNewPtTakesEffectWhilePlaying) {
  ElementHarness h("rtpptrewrite", kOpusCaps);
  g_object_set(h.element(), "pt", 100u, nullptr);
  ASSERT_EQ(h.push(rtp_packet(111, false, 7, 0, 42, "a")), GST_FLOW_OK);
  EXPECT_EQ(bytes_of(h.try_pull().get()), bytes_of(rtp_packet(100, false, 7, 0, 42, "a").get()));
  g_object_set(h.element(), "pt", 101u, nullptr);
  ASSERT_EQ(h.push(rtp_packet(111, false, 8, 960, 42, "b")), GST_FLOW_OK);
  EXPECT_EQ(bytes_of(h.try_pull().get()), bytes_of(rtp_packet(101, false, 8, 960, 42, "b").get()));
  const auto caps = Ref<GstCaps>::adopt(gst_pad_get_current_caps(h.get()->sinkpad));
  gint payload = 0;
  ASSERT_TRUE(caps);
  gst_structure_get_int(gst_caps_get_structure(caps.get(), 0), "payload", &payload);
  EXPECT_EQ(payload, 101);
}

TEST(RtpPtRewrite, NonRtpGoesThroughUnchanged) {
  ElementHarness h("rtpptrewrite", kOpusCaps);
  ASSERT_EQ(h.push(std::string("short")), GST_FLOW_OK);
  EXPECT_EQ(bytes_of(h.try_pull().get()), "short");
  const std::string v1(16, '\x40');  // version 1: not ours to touch
  ASSERT_EQ(h.push(v1), GST_FLOW_OK);
  EXPECT_EQ(bytes_of(h.try_pull().get()), v1);
}

}  // namespace
}  // namespace rtgw::rtevents::test
