// SPDX-License-Identifier: MIT
// Fuzz target `fingerprint`: the DTLS fingerprint parser and comparison (media trust,
// sdp/dtls_fingerprint.h). Input: a first line, read as an `a=fingerprint` value; the rest,
// read as a peer certificate (PEM); the whole, read as an SDP whose m-lines' fingerprints are
// collected (media-level, else session-level).
//
// Invariants checked:
// - a parsed fingerprint has its hash's digest length, prints as `to_string`, and that text
//   parses back to the same fingerprint;
// - a certificate that decodes verifies against its own fingerprint (every hash), and never
//   against the same one with one byte changed; against the parsed first line it matches
//   exactly when the digests are equal;
// - a certificate that does not decode is never a match; no fingerprint is never a match.
#include <gst/sdp/sdp.h>

#include <string>

#include "fuzz_util.h"
#include "sdp/dtls_fingerprint.h"

using namespace rtgw;
using namespace rtgw::sdp::dtls;

namespace {

constexpr Hash kHashes[] = {Hash::kSha1, Hash::kSha256, Hash::kSha384, Hash::kSha512};

void check_parsed(const Fingerprint& fp, std::string_view from) {
  if (fp.digest.size() != hash_size(fp.hash)) fuzz::fail("digest length", from);
  std::string text = to_string(fp);
  auto again = parse_fingerprint(text);
  if (!again || !(*again == fp)) fuzz::fail("to_string does not parse back", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  std::size_t nl = in.find('\n');
  std::string_view first = in.substr(0, nl);
  std::string_view pem = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  auto parsed = parse_fingerprint(first);
  if (parsed) check_parsed(*parsed, first);

  if (verify_certificate({}, pem) == Verdict::kMatch) fuzz::fail("matched with no fingerprint");
  auto der = pem_to_der(pem);
  if (!der) {
    if (parsed && verify_certificate({*parsed}, pem) != Verdict::kBadCertificate)
      fuzz::fail("an undecodable certificate was judged", pem);
  } else {
    for (Hash h : kHashes) {
      Fingerprint own{h, digest_of(h, *der)};
      check_parsed(own, "own");
      if (verify_certificate({own}, pem) != Verdict::kMatch)
        fuzz::fail("a certificate does not match its own fingerprint", to_string(own));
      Fingerprint other = own;
      other.digest[size % other.digest.size()] ^= 0x01;
      if (verify_certificate({other}, pem) != Verdict::kMismatch)
        fuzz::fail("a changed fingerprint matched", to_string(other));
      // A weaker hash beside cannot turn a mismatch of the strongest into a match.
      if (h == Hash::kSha512 &&
          verify_certificate({other, Fingerprint{Hash::kSha1, digest_of(Hash::kSha1, *der)}},
                             pem) != Verdict::kMismatch)
        fuzz::fail("a sha-1 line downgraded the check", to_string(other));
    }
    if (parsed) {
      bool equal = digest_of(parsed->hash, *der) == parsed->digest;
      Verdict v = verify_certificate({*parsed}, pem);
      if ((v == Verdict::kMatch) != equal) fuzz::fail("match disagrees with the digests", first);
    }
  }

  // The whole input as an SDP: what media_fingerprints collects is usable, whatever the text.
  std::string text(in);
  GstSDPMessage* raw = nullptr;
  if (gst_sdp_message_new_from_text(text.c_str(), &raw) == GST_SDP_OK && raw) {
    for (guint i = 0; i <= gst_sdp_message_medias_len(raw); ++i)
      for (const Fingerprint& fp : media_fingerprints(raw, i)) check_parsed(fp, "sdp");
    gst_sdp_message_free(raw);
  } else if (raw) {
    gst_sdp_message_free(raw);
  }
  return 0;
}
