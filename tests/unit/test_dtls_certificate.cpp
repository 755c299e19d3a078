// SPDX-License-Identifier: MIT
// webrtc/dtls_certificate.h: the ECDSA P-256 DTLS certificate, its fingerprint, the SDP fix for
// webrtcbin 1.22's fingerprint of a `pem` with a key, and handing it to a dtlssrtpdec.
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <string>

#include "common/ref.h"
#include "sdp/dtls_fingerprint.h"
#include "webrtc/dtls_certificate.h"

namespace {

using namespace rtgw::webrtc;
namespace dtls = rtgw::sdp::dtls;

std::string certificate_block(const std::string& pem) {
  auto begin = pem.find("-----BEGIN CERTIFICATE-----");
  auto end = pem.find("-----END CERTIFICATE-----");
  if (begin == std::string::npos || end == std::string::npos) return {};
  return pem.substr(begin, end - begin);
}

TEST(DtlsCertificate, EcdsaPemIsAP256CertificateAndItsKeyMadeOnce) {
  const std::string& pem = dtls_certificate::ecdsa_pem();
  EXPECT_EQ(&pem, &dtls_certificate::ecdsa_pem());
  ASSERT_NE(pem.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  ASSERT_NE(pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  // Certificate first: GstDtlsCertificate reads the X509 then the key.
  EXPECT_LT(pem.find("BEGIN CERTIFICATE"), pem.find("BEGIN PRIVATE KEY"));

  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  ASSERT_NE(cert, nullptr);
  EVP_PKEY* public_key = X509_get0_pubkey(cert);
  ASSERT_NE(public_key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(public_key), EVP_PKEY_EC);
  char group[32] = {};
  size_t group_len = 0;
  EXPECT_EQ(EVP_PKEY_get_group_name(public_key, group, sizeof group, &group_len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_verify(cert, public_key), 1);  // self-signed with its own key
  (void)BIO_reset(bio);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(X509_check_private_key(cert, key), 1);  // the key belongs to the certificate
  EVP_PKEY_free(key);
  X509_free(cert);
  BIO_free(bio);
}

TEST(DtlsCertificate, FingerprintIsTheSha256OfTheCertificateAlone) {
  auto der = dtls::pem_to_der(dtls_certificate::ecdsa_pem());
  ASSERT_TRUE(der);
  auto parsed = dtls::parse_fingerprint(dtls_certificate::ecdsa_fingerprint());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->hash, dtls::Hash::kSha256);
  EXPECT_EQ(parsed->digest, dtls::digest_of(dtls::Hash::kSha256, *der));
  EXPECT_EQ(dtls::verify_certificate({*parsed}, dtls_certificate::ecdsa_pem(), nullptr),
            dtls::Verdict::kMatch);
}

TEST(DtlsCertificate, EveryFingerprintLineOfTheSdpNamesTheEcdsaCertificate) {
  const std::string sdp =
      "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
      "a=fingerprint:sha-256 AA:BB\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
      "a=fingerprint:sha-256 CC:DD\r\na=x-not-a=fingerprint:sha-1 00\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-1 EE\n";
  std::string fixed = dtls_certificate::with_own_fingerprint(sdp, dtls_certificate::Kind::kEcdsa);
  const std::string line = "a=fingerprint:" + dtls_certificate::ecdsa_fingerprint();
  size_t count = 0;
  for (size_t at = fixed.find(line); at != std::string::npos; at = fixed.find(line, at + 1))
    count++;
  EXPECT_EQ(count, 3u) << fixed;
  EXPECT_EQ(fixed.find("AA:BB"), std::string::npos);
  EXPECT_NE(fixed.find("a=x-not-a=fingerprint:sha-1 00\r\n"), std::string::npos) << fixed;
  EXPECT_NE(fixed.find("m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"), std::string::npos);
  EXPECT_EQ(dtls_certificate::with_own_fingerprint(sdp, dtls_certificate::Kind::kRsa), sdp);
}

TEST(DtlsCertificate, ApplyGivesADtlsSrtpDecTheEcdsaCertificateAndOnlyWhenAsked) {
  gst_init(nullptr, nullptr);
  auto dec = rtgw::Ref<GstElement>::sink(gst_element_factory_make("dtlssrtpdec", nullptr));
  ASSERT_TRUE(dec);
  auto read_pem = [](GstElement* e) {
    gchar* raw = nullptr;
    g_object_get(e, "pem", &raw, nullptr);
    rtgw::UniqueStr pem(raw);
    return std::string(pem ? pem.get() : "");
  };
  const std::string ours = certificate_block(dtls_certificate::ecdsa_pem());
  dtls_certificate::apply(dec.get(), dtls_certificate::Kind::kRsa);
  EXPECT_NE(certificate_block(read_pem(dec.get())), ours);  // GStreamer's RSA one
  dtls_certificate::apply(dec.get(), dtls_certificate::Kind::kEcdsa);
  EXPECT_EQ(certificate_block(read_pem(dec.get())), ours);

  auto queue = rtgw::Ref<GstElement>::sink(gst_element_factory_make("queue", nullptr));
  dtls_certificate::apply(queue.get(), dtls_certificate::Kind::kEcdsa);  // not a DTLS element
}

TEST(DtlsCertificate, ParseNamesTheTwoKinds) {
  EXPECT_EQ(dtls_certificate::parse("ecdsa"), dtls_certificate::Kind::kEcdsa);
  EXPECT_EQ(dtls_certificate::parse("rsa"), dtls_certificate::Kind::kRsa);
}

}  // namespace
