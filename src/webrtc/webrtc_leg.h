// SPDX-License-Identifier: MIT
// One webrtcbin of a call: the client leg (answerer) or the upstream leg (offerer).
//
// Owns: the leg's own state (its connection state as reported, its RTP statistics), the
// webrtcbin's configuration (latency, STUN, libnice UPnP off, port range), the
// promise-based SDP steps (set remote, create offer/answer, set local, wait for ICE gathering
// with a bound, read the local description with its candidates), audio transceiver set-up, and
// turning webrtcbin's thread callbacks into main-loop calls.
//
// Threads: every public method runs on the main loop, and every `Done` callback is invoked on the
// main loop. webrtcbin signals arrive on its `:pc` thread or streaming threads; the leg copies
// what it needs and posts to the main loop. A callback still queued when the leg is destroyed is
// dropped (the leg's liveness token has expired).
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/main_thread.h"
#include "common/ref.h"
#include "config/config.h"
#include "sdp/session_description.h"

namespace rtgw::webrtc {

class WebRtcLeg {
 public:
  // Main-loop notifications about the leg.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnLegConnectionState(WebRtcLeg& leg, GstWebRTCPeerConnectionState state) = 0;
  };

  // `error` is empty on success.
  using Done = std::function<void(const std::string& error)>;
  using DescriptionDone = std::function<void(const std::string& error, const std::string& sdp)>;

  WebRtcLeg(std::string name, Ref<GstElement> webrtcbin, const config::WebRtcConfig& config,
            Listener* listener);
  ~WebRtcLeg();
  WebRtcLeg(const WebRtcLeg&) = delete;
  WebRtcLeg& operator=(const WebRtcLeg&) = delete;

  const std::string& name() const { return name_; }
  GstElement* element() const { return webrtcbin_.get(); }

  void set_remote_description(GstWebRTCSDPType type, sdp::SdpMessagePtr message, Done done);
  // Creates an offer or answer, sets it as local description, waits (bounded) for ICE gathering
  // and returns the local description including the gathered candidates.
  void create_local_description(bool offer, DescriptionDone done);

  // Requests a sink pad whose transceiver sends and receives audio with `codec_preferences`.
  Ref<GstPad> request_audio_sink(GstCaps* codec_preferences);
  // The remote answered with payload type `pt` for the audio we offered: the audio transceiver's
  // codec preferences follow, so webrtcbin's sink pad accepts the packets we send with it.
  void set_audio_payload_type(int pt);

  GstWebRTCPeerConnectionState connection_state() const;

  // What webrtcbin's own counters say this leg received (its RTP session's view).
  struct RtpStats {
    guint64 packets_received = 0;
    gint64 packets_lost = 0;
  };
  // The leg's state as last reported to the listener (main loop), kept after detach().
  GstWebRTCPeerConnectionState reported_state() const { return reported_state_; }
  const RtpStats& rtp_stats() const { return rtp_stats_; }
  // Reads the figures into rtp_stats(): summed over the remote RTP sources of the leg's RTP
  // session (what get-stats reports as inbound-rtp packets-received / packets-lost), read
  // synchronously from rtpbin's session: no get-stats promise, no hop to the pc thread.
  void poll_rtp_stats();
  // Final: forgets the webrtcbin (signals, pending descriptions, queued callbacks); what the leg
  // reported stays readable. The pipeline is stopped after it.
  void detach();

 private:
  Ref<GstWebRTCRTPTransceiver> audio_transceiver_;  // from request_audio_sink()
  struct Pending;                                   // a description waiting for ICE gathering
  void set_local_description(GstWebRTCSessionDescription* desc, DescriptionDone done);
  void on_gathering_state_changed();
  void finish_gathering(bool timed_out);

  std::string name_;
  Ref<GstElement> webrtcbin_;
  config::WebRtcConfig config_;
  Listener* listener_;
  std::vector<SignalConnection> signals_;
  std::unique_ptr<Pending> gathering_;
  SourceGuard gathering_timeout_;
  GstWebRTCPeerConnectionState reported_state_ = GST_WEBRTC_PEER_CONNECTION_STATE_NEW;
  RtpStats rtp_stats_;
  Lifetime lifetime_;  // checked by every callback posted from webrtcbin's threads
};

}  // namespace rtgw::webrtc
