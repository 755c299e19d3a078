// SPDX-License-Identifier: MIT
#include "webrtc/dtls_certificate.h"

#include "sdp/dtls_fingerprint.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string_view>

namespace rtgw::webrtc::dtls_certificate {
namespace {

template <typename T, void (*Free)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, OpenSslDeleter<X509, X509_free>>;
using Name = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME, X509_NAME_free>>;
using Bio = std::unique_ptr<BIO, OpenSslDeleter<BIO, BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, OpenSslDeleter<BIGNUM, BN_free>>;

void check(bool ok, const char* step) {
  if (!ok) throw std::runtime_error(std::string("ECDSA DTLS certificate: ") + step + " failed");
}

std::string make_ecdsa_pem() {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "P-256 key generation");
  Cert cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  // A random 64-bit serial and a random name, as GStreamer does for its RSA one.
  Bignum serial(BN_new());
  check(serial && BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1, "BN_rand");
  check(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
        "serial number");
  std::string common_name = "rtgw-";
  for (int i = 0; i < 8; i++) common_name += "0123456789abcdef"[g_random_int_range(0, 16)];
  Name name(X509_NAME_new());
  check(name && X509_NAME_add_entry_by_NID(
                    name.get(), NID_commonName, MBSTRING_ASC,
                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1,
        "subject name");
  check(X509_set_subject_name(cert.get(), name.get()) == 1, "X509_set_subject_name");
  check(X509_set_issuer_name(cert.get(), name.get()) == 1, "X509_set_issuer_name");
  // A day back covers a peer whose clock is behind; peers check the fingerprint, not the dates.
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 86400) != nullptr, "notAfter");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  Bio bio(BIO_new(BIO_s_mem()));
  check(bio != nullptr, "BIO_new");
  // Certificate first, then the key: the order GstDtlsCertificate reads them in.
  check(PEM_write_bio_X509(bio.get(), cert.get()) == 1, "PEM_write_bio_X509");
  check(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  check(size > 0 && data, "BIO_get_mem_data");
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

Kind parse(const std::string& name) { return name == "ecdsa" ? Kind::kEcdsa : Kind::kRsa; }

const std::string& ecdsa_pem() {
  static const std::string pem = make_ecdsa_pem();  // C++ makes this once, thread-safe
  return pem;
}

void apply(GstElement* added, Kind kind) {
  if (kind != Kind::kEcdsa) return;
  GstElementFactory* factory = gst_element_get_factory(added);
  if (!factory || g_strcmp0(GST_OBJECT_NAME(factory), "dtlssrtpdec") != 0) return;
  try {
    g_object_set(added, "pem", ecdsa_pem().c_str(), nullptr);
  } catch (const std::exception& e) {
    // On a webrtcbin thread: never unwind into GStreamer. The leg keeps the RSA certificate.
    g_warning("%s; this DTLS transport keeps GStreamer's RSA certificate", e.what());
  }
}

const std::string& ecdsa_fingerprint() {
  static const std::string fingerprint = [] {
    auto der = sdp::dtls::pem_to_der(ecdsa_pem());
    if (!der) throw std::runtime_error("ECDSA DTLS certificate: its PEM does not decode");
    sdp::dtls::Fingerprint f{sdp::dtls::Hash::kSha256,
                             sdp::dtls::digest_of(sdp::dtls::Hash::kSha256, *der)};
    return sdp::dtls::to_string(f);
  }();
  return fingerprint;
}

std::string with_own_fingerprint(std::string sdp, Kind kind) {
  if (kind != Kind::kEcdsa) return sdp;
  static constexpr std::string_view kAttribute = "a=fingerprint:";
  const std::string& fingerprint = ecdsa_fingerprint();
  for (size_t at = sdp.find(kAttribute); at != std::string::npos;
       at = sdp.find(kAttribute, at + kAttribute.size())) {
    // Only at a line start; the value runs to the line end (CRLF or LF).
    if (at != 0 && sdp[at - 1] != '\n') continue;
    size_t value = at + kAttribute.size();
    size_t end = sdp.find_first_of("\r\n", value);
    if (end == std::string::npos) end = sdp.size();
    sdp.replace(value, end - value, fingerprint);
  }
  return sdp;
}

}  // namespace rtgw::webrtc::dtls_certificate
