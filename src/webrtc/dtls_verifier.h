// SPDX-License-Identifier: MIT
// Checks a leg's peer DTLS certificates against the fingerprints its remote SDP names.
//
// webrtcbin 1.22 never makes that check (upstream added it in 1.28.5), so anyone who can answer
// on the media path could stand in for the peer. This does it for one webrtcbin: each of its
// DTLS transports (the audio transceivers' and the SCTP transport's; one with BUNDLE), once
// CONNECTED, has its `remote-certificate` (PEM) hashed with the strongest function the m-lines
// it carries name (sdp/dtls_fingerprint.h) and compared. The leg is verified when every
// transport it has is; one mismatch fails it for good.
//
// Owns: the watches on the leg's GstWebRTCDTLSTransports (`notify::state`) and each one's
// verdict.
//
// Threads: public methods on the main loop. `notify::state` comes on a DTLS streaming thread:
// the handler copies nothing but posts to the main loop (behind a liveness token), where the
// certificate is read and hashed (a certificate is about 1 KiB: microseconds of SHA, less than a
// main-loop hop, so no worker thread). The listener is called on the main loop, never inside a
// public method (always posted), at most once with a failure.
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <string>
#include <vector>

#include "common/main_thread.h"
#include "common/ref.h"

namespace rtgw::webrtc {

class DtlsVerifier {
 public:
  enum class State { kPending, kVerified, kFailed };
  struct Failure {
    std::string reason;  // "dtls_fingerprint_mismatch" | "dtls_no_certificate"
    std::string detail;  // expected and actual fingerprints, for the log
  };
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnDtlsVerified(DtlsVerifier& verifier) = 0;
    virtual void OnDtlsFailed(DtlsVerifier& verifier, const Failure& failure) = 0;
  };

  DtlsVerifier(std::string leg, Ref<GstElement> webrtcbin, Listener* listener);
  ~DtlsVerifier();
  DtlsVerifier(const DtlsVerifier&) = delete;
  DtlsVerifier& operator=(const DtlsVerifier&) = delete;

  // Finds the leg's DTLS transports (call it once the descriptions are set, and again on any
  // connection state change: it only adds what is new) and checks those already connected.
  void scan();
  // Final: forgets the webrtcbin and every watch; nothing reaches the listener any more.
  void detach();

  const std::string& leg() const { return leg_; }
  State state() const { return state_; }
  const char* state_name() const;
  std::size_t transports() const { return watched_.size(); }
  // Whether the ICE transport under any of the leg's DTLS transports has failed (consent lost on
  // its pair). webrtcbin's own ice-connection-state counts only the transceivers' transports, so
  // a failed data-channel transport of an unbundled peer does not show there.
  bool any_ice_failed() const;

 private:
  struct Watched {
    Ref<GstWebRTCDTLSTransport> transport;
    std::vector<guint> mlines;  // the m-lines it carries (remote description indexes)
    SignalConnection on_state;
    bool verified = false;
  };
  void watch(GstWebRTCDTLSTransport* transport, guint mline);
  void check(Watched& watched);
  void check_all();

  std::string leg_;
  Ref<GstElement> webrtcbin_;
  Listener* listener_;
  std::vector<Watched> watched_;
  State state_ = State::kPending;
  Lifetime lifetime_;
};

}  // namespace rtgw::webrtc
