// SPDX-License-Identifier: MIT
#include "webrtc/dtls_verifier.h"

#include <algorithm>
#include <memory>

#include "sdp/session_description.h"
#include "sdp/dtls_fingerprint.h"

namespace rtgw::webrtc {
namespace dtls = ::rtgw::sdp::dtls;
namespace {

struct GArrayUnref {
  void operator()(GArray* a) const { g_array_unref(a); }
};

// The first data-channel m-line of a description (the SCTP transport's), or G_MAXUINT.
guint application_mline(const GstSDPMessage* sdp) {
  for (guint i = 0; i < gst_sdp_message_medias_len(sdp); ++i)
    if (g_strcmp0(gst_sdp_media_get_media(gst_sdp_message_get_media(sdp, i)), "application") == 0)
      return i;
  return G_MAXUINT;
}

sdp::SessionDescriptionPtr remote_description(GstElement* webrtcbin) {
  GstWebRTCSessionDescription* raw = nullptr;
  g_object_get(webrtcbin, "remote-description", &raw, nullptr);
  return sdp::SessionDescriptionPtr(raw);
}

}  // namespace

DtlsVerifier::DtlsVerifier(std::string leg, Ref<GstElement> webrtcbin, Listener* listener)
    : leg_(std::move(leg)), webrtcbin_(std::move(webrtcbin)), listener_(listener) {}

DtlsVerifier::~DtlsVerifier() = default;

void DtlsVerifier::detach() {
  lifetime_.end();
  watched_.clear();
  listener_ = nullptr;
  webrtcbin_.reset();
}

const char* DtlsVerifier::state_name() const {
  switch (state_) {
    case State::kPending:
      return "pending";
    case State::kVerified:
      return "verified";
    case State::kFailed:
      return "failed";
  }
  return "?";
}

void DtlsVerifier::scan() {
  if (!webrtcbin_ || state_ == State::kFailed) return;
  auto remote = remote_description(webrtcbin_.get());
  if (!remote) return;  // nothing to compare with yet
  // Synchronous webrtcbin actions: fine on the main loop (never on its pc thread).
  GArray* raw = nullptr;
  g_signal_emit_by_name(webrtcbin_.get(), "get-transceivers", &raw);
  std::unique_ptr<GArray, GArrayUnref> transceivers(raw);
  for (guint i = 0; transceivers && i < transceivers->len; ++i) {
    auto* transceiver = g_array_index(transceivers.get(), GstWebRTCRTPTransceiver*, i);
    guint mline = G_MAXUINT;
    Ref<GstWebRTCRTPReceiver> receiver;
    g_object_get(transceiver, "mlineindex", &mline, "receiver", receiver.out(), nullptr);
    if (!receiver || mline == G_MAXUINT) continue;
    Ref<GstWebRTCDTLSTransport> transport;
    g_object_get(receiver.get(), "transport", transport.out(), nullptr);
    if (transport) watch(transport.get(), mline);
  }
  Ref<GObject> sctp;
  g_object_get(webrtcbin_.get(), "sctp-transport", sctp.out(), nullptr);
  if (sctp) {
    Ref<GstWebRTCDTLSTransport> transport;
    g_object_get(sctp.get(), "transport", transport.out(), nullptr);
    guint mline = application_mline(remote->sdp);
    if (transport && mline != G_MAXUINT) watch(transport.get(), mline);
  }
  check_all();
}

bool DtlsVerifier::any_ice_failed() const {
  for (const Watched& w : watched_) {
    Ref<GstWebRTCICETransport> ice;
    g_object_get(w.transport.get(), "transport", ice.out(), nullptr);
    GstWebRTCICEConnectionState state = GST_WEBRTC_ICE_CONNECTION_STATE_NEW;
    if (ice) g_object_get(ice.get(), "state", &state, nullptr);
    if (state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) return true;
  }
  return false;
}

void DtlsVerifier::watch(GstWebRTCDTLSTransport* transport, guint mline) {
  auto it = std::find_if(watched_.begin(), watched_.end(),
                         [transport](const Watched& w) { return w.transport.get() == transport; });
  if (it != watched_.end()) {
    if (std::find(it->mlines.begin(), it->mlines.end(), mline) == it->mlines.end()) {
      it->mlines.push_back(mline);
      it->verified = false;  // one more m-line's fingerprint to compare with
    }
    return;
  }
  Watched w;
  w.transport = Ref<GstWebRTCDTLSTransport>::retain(transport);
  w.mlines.push_back(mline);
  // On a DTLS streaming thread: post, the certificate is read on the main loop.
  w.on_state = connect_signal<void(GstWebRTCDTLSTransport*, GParamSpec*)>(
      transport, "notify::state",
      [alive = lifetime_.watch(), this](GstWebRTCDTLSTransport*, GParamSpec*) {
        post_if_alive(alive, [this] { check_all(); });
      });
  watched_.push_back(std::move(w));
}

void DtlsVerifier::check_all() {
  if (!webrtcbin_ || state_ == State::kFailed) return;
  for (Watched& w : watched_)
    if (!w.verified) check(w);
  if (state_ == State::kFailed) return;
  bool all = !watched_.empty() && std::all_of(watched_.begin(), watched_.end(),
                                              [](const Watched& w) { return w.verified; });
  if (all && state_ == State::kPending) {
    state_ = State::kVerified;
    post_if_alive(lifetime_.watch(), [this] {
      if (listener_) listener_->OnDtlsVerified(*this);
    });
  }
}

void DtlsVerifier::check(Watched& w) {
  GstWebRTCDTLSTransportState state = GST_WEBRTC_DTLS_TRANSPORT_STATE_NEW;
  g_object_get(w.transport.get(), "state", &state, nullptr);
  if (state != GST_WEBRTC_DTLS_TRANSPORT_STATE_CONNECTED) return;
  gchar* pem_raw = nullptr;
  g_object_get(w.transport.get(), "remote-certificate", &pem_raw, nullptr);
  UniqueStr pem(pem_raw);
  auto remote = remote_description(webrtcbin_.get());
  Failure failure;
  for (guint mline : w.mlines) {
    std::vector<dtls::Fingerprint> expected;
    if (remote) expected = dtls::media_fingerprints(remote->sdp, mline);
    std::string actual;
    dtls::Verdict verdict = dtls::verify_certificate(expected, pem ? pem.get() : "", &actual);
    if (verdict == dtls::Verdict::kMatch) continue;
    failure.reason = verdict == dtls::Verdict::kBadCertificate ? "dtls_no_certificate"
                                                               : "dtls_fingerprint_mismatch";
    std::string named;
    for (const auto& fp : expected) named += (named.empty() ? "" : ", ") + dtls::to_string(fp);
    failure.detail = std::string(dtls::verdict_name(verdict)) + " on m-line " +
                     std::to_string(mline) + ": the SDP names " +
                     (named.empty() ? "no usable fingerprint" : named) + ", the certificate is " +
                     (actual.empty() ? "unreadable" : actual);
    break;
  }
  if (failure.reason.empty()) {
    w.verified = true;
    return;
  }
  state_ = State::kFailed;
  post_if_alive(lifetime_.watch(), [this, failure] {
    if (listener_) listener_->OnDtlsFailed(*this, failure);
  });
}

}  // namespace rtgw::webrtc
