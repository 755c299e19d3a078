// SPDX-License-Identifier: MIT
// Media trust (issue 22): the fingerprint parser and comparison (sdp/dtls_fingerprint.h),
// checked against openssl's own fingerprints of tests/unit/data/dtls_cert.pem, and the
// process-wide SCTP association id allocator (webrtc/sctp_ids.h).
#include <glib.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/ref.h"
#include "sdp/dtls_fingerprint.h"
#include "sdp/session_description.h"
#include "webrtc/sctp_ids.h"
#include "webrtc/sctp_stack.h"

#ifndef RTGW_TEST_DATA
#error "RTGW_TEST_DATA must name tests/unit/data"
#endif

namespace {

using namespace rtgw::webrtc;
namespace dtls = rtgw::sdp::dtls;
using dtls::Verdict;

// openssl x509 -noout -fingerprint -sha1/-sha256/-sha384/-sha512 of dtls_cert.pem.
constexpr const char* kSha1 = "7E:34:DA:17:83:7D:5A:1A:BF:40:29:4A:00:1B:46:C0:65:77:B2:60";
constexpr const char* kSha256 =
    "55:62:FC:91:36:66:43:5D:A2:CC:F4:E7:DA:6A:B3:40:4E:9D:18:B1:00:02:9E:2A:9C:C6:58:C7:B2:97:75:"
    "E6";
constexpr const char* kSha384 =
    "C1:3F:76:83:87:9F:02:93:DE:74:B8:17:ED:D9:CA:C4:A9:30:A3:7E:39:8C:AF:5E:B2:50:3E:83:CF:A2:4D:"
    "54:11:F1:1C:84:F8:5A:AB:0E:AA:74:E7:04:9F:10:32:03";
constexpr const char* kSha512 =
    "7B:7B:9C:11:87:98:FF:D6:BE:DE:18:38:17:99:B6:17:2C:E0:FD:B9:6A:57:05:82:51:16:88:AB:A2:08:48:"
    "2B:08:B8:50:F4:C3:F6:02:FD:F0:64:75:17:67:36:47:D8:34:32:98:9A:C1:F8:9A:8B:95:44:BD:8B:D0:F3:"
    "6B:1A";

std::string cert_pem() {
  gchar* contents = nullptr;
  gsize len = 0;
  std::string path = std::string(RTGW_TEST_DATA) + "/dtls_cert.pem";
  EXPECT_TRUE(g_file_get_contents(path.c_str(), &contents, &len, nullptr)) << path;
  std::string out(contents ? contents : "", len);
  g_free(contents);
  return out;
}

dtls::Fingerprint fp(const std::string& value) {
  auto parsed = dtls::parse_fingerprint(value);
  EXPECT_TRUE(parsed) << value;
  return parsed.value_or(dtls::Fingerprint{});
}

// One hex digit changed (the last), as a lying peer's offer would.
std::string lie(std::string hex) {
  hex.back() = hex.back() == '0' ? '1' : '0';
  return hex;
}

TEST(DtlsFingerprint, MatchesOpensslForEveryHash) {
  std::string pem = cert_pem();
  for (auto [name, hex] : {std::pair{"sha-1", kSha1}, std::pair{"sha-256", kSha256},
                           std::pair{"sha-384", kSha384}, std::pair{"sha-512", kSha512}}) {
    std::string value = std::string(name) + " " + hex;
    std::string actual;
    EXPECT_EQ(dtls::verify_certificate({fp(value)}, pem, &actual), Verdict::kMatch) << value;
    EXPECT_EQ(actual, value);
    EXPECT_EQ(dtls::verify_certificate({fp(std::string(name) + " " + lie(hex))}, pem),
              Verdict::kMismatch)
        << name;
  }
}

TEST(DtlsFingerprint, CaseInsensitiveHashAndHex) {
  std::string lower = kSha256;
  for (char& c : lower) c = static_cast<char>(g_ascii_tolower(c));
  EXPECT_EQ(dtls::verify_certificate({fp("SHA-256 " + lower)}, cert_pem()), Verdict::kMatch);
  EXPECT_EQ(
      dtls::verify_certificate({fp(std::string("  sha-256\t") + kSha256 + " \r\n")}, cert_pem()),
      Verdict::kMatch);
}

TEST(DtlsFingerprint, RefusesWhatIsNotUsable) {
  for (const char* bad :
       {"", "sha-256", "md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF", "sha-224 00",
        "sha-256 00:11", "sha-256 0G:11", "sha-1 00112233445566778899AABBCCDDEEFF00112233",
        "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:"})
    EXPECT_FALSE(dtls::parse_fingerprint(bad)) << bad;
  EXPECT_EQ(dtls::verify_certificate({}, cert_pem()), Verdict::kNoFingerprint);
  EXPECT_EQ(dtls::verify_certificate({fp(std::string("sha-256 ") + kSha256)}, "no pem"),
            Verdict::kBadCertificate);
  // Stray characters inside the base64 are refused, not skipped.
  std::string pem = cert_pem();
  pem.insert(pem.find('\n') + 5, "!");
  EXPECT_FALSE(dtls::pem_to_der(pem));
}

TEST(DtlsFingerprint, StrongestHashDecides) {
  std::string pem = cert_pem();
  // A right sha-1 line cannot rescue a wrong sha-256 one.
  EXPECT_EQ(dtls::verify_certificate(
                {fp(std::string("sha-1 ") + kSha1), fp("sha-256 " + lie(kSha256))}, pem),
            Verdict::kMismatch);
  EXPECT_EQ(dtls::verify_certificate(
                {fp("sha-1 " + lie(kSha1)), fp(std::string("sha-256 ") + kSha256)}, pem),
            Verdict::kMatch);
}

TEST(DtlsFingerprint, MediaLevelElseSessionLevel) {
  std::string sdp = std::string("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n") +
                    "a=fingerprint:sha-256 " + lie(kSha256) + "\r\n" +
                    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n" +
                    "a=fingerprint:sha-256 " + kSha256 + "\r\n" +
                    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n";
  GstSDPMessage* msg = nullptr;
  ASSERT_EQ(gst_sdp_message_new_from_text(sdp.c_str(), &msg), GST_SDP_OK);
  auto media0 = dtls::media_fingerprints(msg, 0);
  auto media1 = dtls::media_fingerprints(msg, 1);
  gst_sdp_message_free(msg);
  ASSERT_EQ(media0.size(), 1u);
  ASSERT_EQ(media1.size(), 1u);
  EXPECT_EQ(dtls::verify_certificate(media0, cert_pem()), Verdict::kMatch);
  EXPECT_EQ(dtls::verify_certificate(media1, cert_pem()), Verdict::kMismatch);  // session's
}

std::string read_data(const char* name) {
  gchar* contents = nullptr;
  gsize len = 0;
  std::string path = std::string(RTGW_TEST_DATA) + "/" + name;
  EXPECT_TRUE(g_file_get_contents(path.c_str(), &contents, &len, nullptr)) << path;
  std::string out(contents ? contents : "", len);
  g_free(contents);
  return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

// An offer (or a worker's answer) must name a fingerprint the gateway can compare with.
TEST(DtlsFingerprint, OfferWithoutUsableFingerprintIsRefused) {
  std::string offer = read_data("chromium_offer.sdp");
  EXPECT_NO_THROW(rtgw::sdp::check_offer(offer));
  std::string md5 = replace_all(offer, "a=fingerprint:sha-256 ", "a=fingerprint:md5 ");
  try {
    rtgw::sdp::check_offer(md5);
    ADD_FAILURE() << "an md5 fingerprint was accepted";
  } catch (const rtgw::sdp::SdpError& e) {
    EXPECT_NE(std::string(e.what()).find("usable DTLS fingerprint"), std::string::npos) << e.what();
  }
  std::string cut = replace_all(offer, "a=fingerprint:sha-256 49:", "a=fingerprint:sha-256 ");
  EXPECT_THROW(rtgw::sdp::check_offer(cut), rtgw::sdp::SdpError);
}

// The clash webrtcbin's random choice can make: the allocator is told to propose an id that is
// live; it must hand out another one, and the proposal again once it is released.
TEST(SctpIds, NeverHandsOutALiveId) {
  sctp_ids::set_proposer([] { return static_cast<std::uint16_t>(4242); });
  std::set<std::uint16_t> got;
  for (int i = 0; i < 100; ++i) {
    auto id = sctp_ids::acquire();
    ASSERT_TRUE(id);
    EXPECT_TRUE(got.insert(*id).second) << *id;
  }
  EXPECT_TRUE(got.count(4242));
  sctp_ids::release(4242);
  EXPECT_FALSE(sctp_ids::is_live(4242));
  EXPECT_EQ(sctp_ids::acquire(), std::optional<std::uint16_t>(4242));
  for (std::uint16_t id : got) sctp_ids::release(id);
  sctp_ids::set_proposer(nullptr);
  EXPECT_EQ(sctp_ids::live_count(), 0u);
}

TEST(SctpIds, WrapsAroundAndEndsWhenAllAreLive) {
  sctp_ids::set_proposer([] { return static_cast<std::uint16_t>(G_MAXUINT16 - 1); });
  EXPECT_EQ(sctp_ids::acquire(), std::optional<std::uint16_t>(G_MAXUINT16 - 1));
  EXPECT_EQ(sctp_ids::acquire(), std::optional<std::uint16_t>(0));  // ids are [0, 65535)
  // Fill the rest with proposals that are free (each acquire O(1)), then nothing is left.
  std::uint32_t next = 1;
  sctp_ids::set_proposer([&next] { return static_cast<std::uint16_t>(next++); });
  for (std::uint32_t i = 2; i < G_MAXUINT16; ++i) ASSERT_TRUE(sctp_ids::acquire());
  EXPECT_EQ(sctp_ids::live_count(), static_cast<std::size_t>(G_MAXUINT16));
  EXPECT_FALSE(sctp_ids::acquire());
  for (std::uint32_t i = 0; i < G_MAXUINT16; ++i) sctp_ids::release(static_cast<std::uint16_t>(i));
  sctp_ids::set_proposer(nullptr);
  EXPECT_EQ(sctp_ids::live_count(), 0u);
}

// The id lives as long as the webrtcbin: released when it is finalized, and written into an
// sctpenc/sctpdec added below it while NULL.
TEST(SctpIds, AssignedToAWebrtcbinUntilFinalized) {
  gst_init(nullptr, nullptr);
  sctp_ids::set_proposer([] { return static_cast<std::uint16_t>(777); });
  auto owner = rtgw::Ref<GstElement>::sink(gst_element_factory_make("webrtcbin", nullptr));
  GstElement* bin = owner.get();
  ASSERT_TRUE(bin);
  ASSERT_TRUE(sctp_ids::assign(bin));
  EXPECT_TRUE(sctp_ids::is_live(777));
  GstElement* enc = gst_element_factory_make("sctpenc", nullptr);
  ASSERT_TRUE(enc);
  g_object_set(enc, "sctp-association-id", 5u, nullptr);
  gst_bin_add(GST_BIN(bin), enc);
  EXPECT_TRUE(sctp_ids::apply(enc));
  guint id = 0;
  g_object_get(enc, "sctp-association-id", &id, nullptr);
  EXPECT_EQ(id, 777u);
  EXPECT_EQ(sctp_ids::in_use(bin), std::optional<std::uint16_t>(777));
  owner.reset();  // the webrtcbin is finalized here
  EXPECT_FALSE(sctp_ids::is_live(777));
  sctp_ids::set_proposer(nullptr);
}

}  // namespace

namespace {
int sctp_timer_threads() {
  int count = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name.rfind("SCTP timer", 0) == 0) ++count;
  }
  return count;
}
}  // namespace

// The SCTP stack hold (webrtc/sctp_stack.h) uses id 65535, which neither webrtcbin nor sctp_ids
// hands out, so it never takes an id a call could get, and its sctpdec holds the association in
// PAUSED: usrsctp is up while the hold lives.
TEST(SctpStack, HoldsAnAssociationOutsideTheCallsIdsUntilDropped) {
  gst_init(nullptr, nullptr);
  sctp_ids::set_proposer([] { return static_cast<std::uint16_t>(G_MAXUINT16 - 1); });
  {
    rtgw::webrtc::SctpStackHold hold;
    ASSERT_TRUE(hold.held()) << hold.error();
    EXPECT_EQ(rtgw::webrtc::SctpStackHold::kAssociationId, G_MAXUINT16);
    EXPECT_EQ(sctp_ids::live_count(), 0u);
    // The allocator still hands out every id below it, the proposer's included.
    EXPECT_EQ(sctp_ids::acquire(), std::optional<std::uint16_t>(G_MAXUINT16 - 1));
    sctp_ids::release(G_MAXUINT16 - 1);
    // usrsctp is up: its timer thread runs (it names itself once started: bounded wait).
    for (int i = 0; i < 200 && sctp_timer_threads() != 1; ++i) g_usleep(10 * 1000);
    EXPECT_EQ(sctp_timer_threads(), 1);
  }
  // The last association went with the hold: usrsctp_finish() joined the timer thread.
  EXPECT_EQ(sctp_timer_threads(), 0);
  sctp_ids::set_proposer(nullptr);
  EXPECT_EQ(sctp_ids::live_count(), 0u);
}
