// SPDX-License-Identifier: MIT
// DTLS certificate fingerprints (RFC 8122 `a=fingerprint`): parsing, hashing, comparing.
//
// Owns: nothing but pure functions. webrtcbin 1.22 never compares a peer's certificate with the
// fingerprint its SDP names (upstream does since 1.28.5); webrtc/dtls_verifier.h does, with
// these.
//
// What is accepted: `<hash> <hex>:<hex>:...` with hash sha-1, sha-256, sha-384 or sha-512 (any
// case), each byte as two hex digits (any case), colon separated, exactly the hash's length.
// Anything else (md5, sha-224, a short or long digest, stray characters) is not usable.
//
// Threads: any (no shared state).
#pragma once

#include <gst/sdp/sdp.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtgw::sdp::dtls {

enum class Hash { kSha1, kSha256, kSha384, kSha512 };

struct Fingerprint {
  Hash hash = Hash::kSha256;
  std::vector<std::uint8_t> digest;
  bool operator==(const Fingerprint&) const = default;
};

// The SDP name of a hash ("sha-256").
const char* hash_name(Hash hash);
// Digest length in bytes.
std::size_t hash_size(Hash hash);

// Parses an `a=fingerprint` value ("sha-256 AB:CD:..."); nullopt when not usable.
std::optional<Fingerprint> parse_fingerprint(std::string_view value);
// "sha-256 AB:CD:..." (upper-case hex), the form parse_fingerprint reads back.
std::string to_string(const Fingerprint& fingerprint);

// The usable fingerprints that apply to m-line `media_index`: its own `a=fingerprint` lines, or
// the session-level ones when it has none (RFC 8122 section 5). Unusable lines are skipped.
std::vector<Fingerprint> media_fingerprints(const GstSDPMessage* message, guint media_index);

// The DER bytes of the first CERTIFICATE block of a PEM text; nullopt when there is none or its
// base64 does not decode.
std::optional<std::vector<std::uint8_t>> pem_to_der(std::string_view pem);

// Hash of `der` with `hash`.
std::vector<std::uint8_t> digest_of(Hash hash, const std::vector<std::uint8_t>& der);

enum class Verdict {
  kMatch,           // the certificate hashes to an expected fingerprint
  kMismatch,        // it does not
  kNoFingerprint,   // no usable fingerprint was expected
  kBadCertificate,  // the PEM holds no decodable certificate
};
const char* verdict_name(Verdict verdict);

// Checks a peer certificate (PEM) against the fingerprints its SDP names. Only the strongest
// hash named counts (a sha-1 line beside a sha-256 one cannot downgrade the check); the
// certificate must match one of the fingerprints of that hash. `actual`, when given, receives
// the certificate's fingerprint with that hash (for the log).
Verdict verify_certificate(const std::vector<Fingerprint>& expected, std::string_view pem,
                           std::string* actual = nullptr);

}  // namespace rtgw::sdp::dtls
