// SPDX-License-Identifier: MIT
// SDP checks and the few rewrites the relay needs.
//
// Owns: parsing an offer with GstSdp and checking it before any worker is contacted (an audio
// m-line carrying Opus, a data-channel m-line), the Opus payload type of a description, and the
// interop fix for aiortc's BUNDLE dialect (different ice-ufrag per bundled m-line).
//
// Threads: any (pure functions over GstSdp, no shared state); called during set-up on the main
// loop.
#pragma once

#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rtgw::sdp {

struct SdpMessageDeleter {
  void operator()(GstSDPMessage* m) const { gst_sdp_message_free(m); }
};
using SdpMessagePtr = std::unique_ptr<GstSDPMessage, SdpMessageDeleter>;

// webrtcbin's description (an SDP type and a GstSDPMessage it owns).
struct SessionDescriptionDeleter {
  void operator()(GstWebRTCSessionDescription* d) const { gst_webrtc_session_description_free(d); }
};
using SessionDescriptionPtr =
    std::unique_ptr<GstWebRTCSessionDescription, SessionDescriptionDeleter>;

// Why an offer was refused (maps to 400 invalid_sdp).
class SdpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CheckedOffer {
  SdpMessagePtr message;        // the offer to hand to webrtcbin (with interop fixes applied)
  int opus_payload_type = -1;   // the first Opus PT of the first audio m-line
  bool dropped_bundle = false;  // the aiortc BUNDLE fix was applied
};

// Parses and checks a client's offer. Throws SdpError with a reason a client can act on.
CheckedOffer check_offer(const std::string& text);

// Parses any description (e.g. an upstream's answer). Throws SdpError.
SdpMessagePtr parse(const std::string& text);

// Every m-line that is not rejected (port 0) names a usable DTLS fingerprint (sha-1/256/384/512,
// media- or session-level): what the gateway compares the peer's certificate with (SPEC "Media
// trust"). Throws SdpError naming the m-line.
void check_fingerprints(const GstSDPMessage* message);

// The Opus payload type of the first audio m-line, or -1.
int opus_payload_type(const GstSDPMessage* message);

// Serializes a description.
std::string to_text(const GstSDPMessage* message);

// What a leg tells its peer about its own candidates.
struct CandidatePolicy {
  // NAT 1:1: every `typ host` candidate is advertised on these addresses instead (one per
  // address of the same IP family, same port); host candidates of a family with no NAT
  // address are dropped. Empty: host candidates unchanged.
  std::vector<std::string> nat_1to1_ips;
  bool ipv6 = true;  // false: drop IPv6 candidates
  bool tcp = true;   // false: drop TCP candidates
};

// Rewrites the `a=candidate` lines of a description's text per `policy`.
std::string rewrite_candidates(const std::string& sdp_text, const CandidatePolicy& policy);

}  // namespace rtgw::sdp
