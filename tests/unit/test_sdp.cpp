// SPDX-License-Identifier: MIT
#include <glib.h>
#include <gtest/gtest.h>

#include <string>

#include "sdp/session_description.h"

#ifndef RTGW_TEST_DATA
#error "RTGW_TEST_DATA must name tests/unit/data"
#endif

namespace {

std::string read(const char* name) {
  gchar* contents = nullptr;
  gsize len = 0;
  std::string path = std::string(RTGW_TEST_DATA) + "/" + name;
  EXPECT_TRUE(g_file_get_contents(path.c_str(), &contents, &len, nullptr)) << path;
  std::string out(contents ? contents : "", len);
  g_free(contents);
  // Files are stored with LF; SDP wants CRLF (GstSdp accepts both).
  return out;
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

using rtgw::sdp::check_offer;
using rtgw::sdp::SdpError;

TEST(CheckOffer, AcceptsChromiumOffer) {
  auto offer = check_offer(read("chromium_offer.sdp"));
  EXPECT_EQ(offer.opus_payload_type, 111);
  EXPECT_FALSE(offer.dropped_bundle);  // one ufrag across the bundle: keep it
  EXPECT_NE(rtgw::sdp::to_text(offer.message.get()).find("a=group:BUNDLE 0 1"), std::string::npos);
}

TEST(CheckOffer, AcceptsAiortcOfferAndDropsInconsistentBundle) {
  auto offer = check_offer(read("aiortc_offer.sdp"));
  EXPECT_EQ(offer.opus_payload_type, 96);
  EXPECT_TRUE(offer.dropped_bundle);
  std::string text = rtgw::sdp::to_text(offer.message.get());
  EXPECT_EQ(text.find("a=group:BUNDLE"), std::string::npos);
  EXPECT_NE(text.find("a=sctpmap:5000 webrtc-datachannel"), std::string::npos);
}

TEST(CheckOffer, RejectsGarbage) {
  EXPECT_THROW(check_offer(""), SdpError);
  EXPECT_THROW(check_offer("hello"), SdpError);
  EXPECT_THROW(check_offer("v=0\r\n"), SdpError);
}

TEST(CheckOffer, RejectsOfferWithoutAudio) {
  std::string sdp = read("chromium_offer.sdp");
  std::string no_audio = sdp.substr(0, sdp.find("m=audio")) + sdp.substr(sdp.find("m=application"));
  try {
    check_offer(no_audio);
    FAIL() << "accepted an offer without audio";
  } catch (const SdpError& e) {
    EXPECT_NE(std::string(e.what()).find("audio"), std::string::npos);
  }
}

TEST(CheckOffer, RejectsOfferWithoutOpus) {
  std::string sdp =
      replace(read("chromium_offer.sdp"), "a=rtpmap:111 opus/48000/2", "a=rtpmap:111 ISAC/16000");
  try {
    check_offer(sdp);
    FAIL() << "accepted an offer without Opus";
  } catch (const SdpError& e) {
    EXPECT_NE(std::string(e.what()).find("Opus"), std::string::npos);
  }
}

TEST(CheckOffer, RejectsOfferWithoutDataChannel) {
  std::string sdp = read("chromium_offer.sdp");
  std::string no_data = sdp.substr(0, sdp.find("m=application"));
  try {
    check_offer(no_data);
    FAIL() << "accepted an offer without a data channel";
  } catch (const SdpError& e) {
    EXPECT_NE(std::string(e.what()).find("data channel"), std::string::npos);
  }
}

TEST(CheckOffer, RejectsOfferWithoutIceCredentials) {
  std::string sdp = read("chromium_offer.sdp");
  std::string stripped;
  size_t start = 0;
  while (start < sdp.size()) {
    size_t end = sdp.find('\n', start);
    std::string line =
        sdp.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
    if (line.rfind("a=ice-pwd", 0) != 0) stripped += line;
    start = end == std::string::npos ? sdp.size() : end + 1;
  }
  EXPECT_THROW(check_offer(stripped), SdpError);
}

TEST(OpusPayloadType, FindsTheFirstAudioOpus) {
  auto msg = rtgw::sdp::parse(read("chromium_offer.sdp"));
  EXPECT_EQ(rtgw::sdp::opus_payload_type(msg.get()), 111);
}

}  // namespace

namespace {

const char* kAnswer =
    "v=0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "a=candidate:1 1 UDP 2015363327 10.0.0.5 48979 typ host\r\n"
    "a=candidate:2 1 TCP 1015021823 10.0.0.5 9 typ host tcptype active\r\n"
    "a=candidate:3 1 UDP 2015363583 fd00::2 51660 typ host\r\n"
    "a=candidate:4 1 UDP 1677722111 198.51.100.9 40000 typ srflx raddr 10.0.0.5 rport 48979\r\n"
    "a=mid:0\r\n";

TEST(RewriteCandidates, NatAdvertisesOnlyTheNatAddressesForHostCandidates) {
  std::string out = rtgw::sdp::rewrite_candidates(kAnswer, {{"203.0.113.7"}, true, true});
  EXPECT_NE(out.find("a=candidate:1 1 UDP 2015363327 203.0.113.7 48979 typ host\r\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("203.0.113.7 9 typ host tcptype active"), std::string::npos) << out;
  EXPECT_EQ(out.find("10.0.0.5 48979 typ host"), std::string::npos) << out;
  EXPECT_EQ(out.find("fd00::2"), std::string::npos) << "no IPv6 NAT address: IPv6 host dropped";
  EXPECT_NE(out.find("typ srflx raddr 10.0.0.5"), std::string::npos) << "non-host untouched";
  EXPECT_NE(out.find("a=mid:0\r\n"), std::string::npos);
}

TEST(RewriteCandidates, SeveralNatAddressesAndFamilies) {
  std::string out = rtgw::sdp::rewrite_candidates(
      kAnswer, {{"203.0.113.7", "203.0.113.8", "2001:db8::1"}, true, true});
  EXPECT_NE(out.find("203.0.113.7 48979"), std::string::npos);
  EXPECT_NE(out.find("203.0.113.8 48979"), std::string::npos);
  EXPECT_NE(out.find("2001:db8::1 51660 typ host"), std::string::npos);
}

TEST(RewriteCandidates, Ipv6AndTcpSwitches) {
  std::string out = rtgw::sdp::rewrite_candidates(kAnswer, {{}, false, false});
  EXPECT_EQ(out.find("TCP"), std::string::npos);
  EXPECT_EQ(out.find("fd00::2"), std::string::npos);
  EXPECT_NE(out.find("10.0.0.5 48979 typ host"), std::string::npos);
  EXPECT_EQ(rtgw::sdp::rewrite_candidates(kAnswer, {}), kAnswer);
}

}  // namespace
