// SPDX-License-Identifier: MIT
// Fuzz target `sdp`: a client's offer through sdp::check_offer (the checks and the aiortc BUNDLE
// fix), then what the gateway does with a checked offer (serialize, Opus PT, candidate rewrites).
// sdp::parse serves the upstream's answers too. Only SdpError may be thrown.
#include <glib.h>

#include "fuzz_util.h"
#include "sdp/session_description.h"

using namespace rtgw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::as_view(data, size));
  try {
    sdp::CheckedOffer offer = sdp::check_offer(text);
    if (offer.opus_payload_type < 0) fuzz::fail("accepted offer without an Opus payload type");
    std::string serialized = sdp::to_text(offer.message.get());
    (void)sdp::opus_payload_type(offer.message.get());
    // The BUNDLE fix only removes an attribute: what is left still parses.
    if (offer.dropped_bundle && !serialized.empty()) {
      try {
        (void)sdp::parse(serialized);
      } catch (const sdp::SdpError&) {
      }
    }
  } catch (const sdp::SdpError&) {
  }
  // Candidate rewriting works on any text (answers included).
  sdp::CandidatePolicy nat;
  nat.nat_1to1_ips = {"203.0.113.7", "2001:db8::7"};
  nat.tcp = false;
  (void)sdp::rewrite_candidates(text, nat);
  sdp::CandidatePolicy v4only;
  v4only.ipv6 = false;
  (void)sdp::rewrite_candidates(text, v4only);
  return 0;
}
