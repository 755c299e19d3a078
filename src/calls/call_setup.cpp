// SPDX-License-Identifier: MIT
#include "calls/call_setup.h"

#include "calls/event_channel.h"
#include "common/random.h"

namespace rtgw::calls {

// --- WebRtcSetupMedia ----------------------------------------------------------------------------

WebRtcSetupMedia::WebRtcSetupMedia(Parts parts, const config::WebRtcConfig& webrtc,
                                   int client_opus_pt)
    : parts_(std::move(parts)),
      webrtc_(webrtc),
      client_opus_pt_(client_opus_pt),
      client_ssrc_(random_u32_between(1, G_MAXINT32 - 1)),
      upstream_ssrc_(random_u32_between(1, G_MAXINT32 - 1)) {
  // The audio going back to the client must carry the client's own Opus payload type. Each pay
  // sends with a fixed SSRC that the leg's answer/offer declares (a=ssrc): stacks that route RTP
  // by declared SSRC only (werift) drop undeclared streams.
  g_object_set(parts_.client_audio_out.get(), "pt", static_cast<guint>(client_opus_pt_), "ssrc",
               client_ssrc_, nullptr);
  g_object_set(parts_.upstream_audio_out.get(), "pt", static_cast<guint>(client_opus_pt_), "ssrc",
               upstream_ssrc_, nullptr);
}

SetupFailure WebRtcSetupMedia::local_description_failure(const char* leg,
                                                         const std::string& error) const {
  if (webrtc_.udp_port_min > 0 && error.find("produced no candidate") != std::string::npos)
    return {SetupFailure::Kind::kNoCapacity,
            0,
            {},
            "no free UDP port in " + std::to_string(webrtc_.udp_port_min) + "-" +
                std::to_string(webrtc_.udp_port_max) + " (" + leg + ")"};
  return {SetupFailure::Kind::kInternal, 0, {}, std::string(leg) + ": " + error};
}

void WebRtcSetupMedia::accept_client_offer(sdp::CheckedOffer offer, Step done) {
  parts_.client_leg->set_remote_description(
      GST_WEBRTC_SDP_TYPE_OFFER, std::move(offer.message),
      [this, alive = lifetime_.watch(), done = std::move(done)](const std::string& error) {
        if (!alive.alive()) return;
        if (!error.empty()) {
          done(SetupFailure{
              SetupFailure::Kind::kInvalidOffer, 0, {}, "the offer was refused: " + error});
          return;
        }
        // Between set-remote-description and create-answer (WEBRTCBIN-NOTES): a sendrecv audio
        // transceiver without a payload type, so the offer's PT wins.
        std::string caps_text =
            "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,ssrc=(uint)" +
            std::to_string(client_ssrc_);
        auto caps = Ref<GstCaps>::adopt(gst_caps_from_string(caps_text.c_str()));
        auto pad = parts_.client_leg->request_audio_sink(caps.get());
        auto src =
            Ref<GstPad>::adopt(gst_element_get_static_pad(parts_.client_audio_out.get(), "src"));
        if (!pad || gst_pad_link(src.get(), pad.get()) != GST_PAD_LINK_OK) {
          done(SetupFailure{
              SetupFailure::Kind::kInternal, 0, {}, "cannot link audio to the client leg"});
          return;
        }
        done(std::nullopt);
      });
}

void WebRtcSetupMedia::create_client_answer(Described done) {
  parts_.client_leg->create_local_description(
      false, [this, alive = lifetime_.watch(), done = std::move(done)](const std::string& err,
                                                                       const std::string& sdp) {
        if (!alive.alive()) return;
        if (!err.empty()) {
          done(local_description_failure("client answer", err), {});
          return;
        }
        // The client learns only what the operator advertises (NAT 1:1, families).
        done(std::nullopt, sdp::rewrite_candidates(
                               sdp, {webrtc_.nat_1to1_ips, webrtc_.ice_ipv6, webrtc_.ice_tcp}));
      });
}

void WebRtcSetupMedia::create_upstream_offer(Described done) {
  // Offer Opus with the client's payload type so both legs usually agree and no mapping is needed.
  std::string caps_text =
      "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,encoding-params=(string)2,"
      "payload=" +
      std::to_string(client_opus_pt_) + ",minptime=(string)10,useinbandfec=(string)1,ssrc=(uint)" +
      std::to_string(upstream_ssrc_);
  auto caps = Ref<GstCaps>::adopt(gst_caps_from_string(caps_text.c_str()));
  auto pad = parts_.upstream_leg->request_audio_sink(caps.get());
  auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(parts_.upstream_audio_out.get(), "src"));
  if (!pad || gst_pad_link(src.get(), pad.get()) != GST_PAD_LINK_OK) {
    done(
        SetupFailure{SetupFailure::Kind::kInternal, 0, {}, "cannot link audio to the upstream leg"},
        {});
    return;
  }

  GstWebRTCDataChannel* channel = nullptr;
  UniqueStructure options(gst_structure_new("options", "ordered", G_TYPE_BOOLEAN, TRUE, nullptr));
  g_signal_emit_by_name(parts_.upstream_leg->element(), "create-data-channel", EventChannel::kLabel,
                        options.get(), &channel);
  if (!channel) {
    done(
        SetupFailure{
            SetupFailure::Kind::kInternal, 0, {}, "cannot create the upstream data channel"},
        {});
    return;
  }
  parts_.on_upstream_channel(Ref<GstWebRTCDataChannel>::adopt(channel));

  parts_.upstream_leg->create_local_description(
      true, [this, alive = lifetime_.watch(), done = std::move(done)](const std::string& err,
                                                                      const std::string& offer) {
        if (!alive.alive()) return;
        if (!err.empty()) {
          done(local_description_failure("upstream offer", err), {});
          return;
        }
        // NAT addresses concern the client leg; the upstream sees the real ones.
        done(std::nullopt, sdp::rewrite_candidates(offer, {{}, webrtc_.ice_ipv6, webrtc_.ice_tcp}));
      });
}

void WebRtcSetupMedia::accept_upstream_answer(sdp::SdpMessagePtr answer, int opus_pt, Step done) {
  // Map payload types: what goes to the upstream carries the upstream's Opus PT.
  g_object_set(parts_.upstream_audio_out.get(), "pt", static_cast<guint>(opus_pt), nullptr);
  if (opus_pt != client_opus_pt_) parts_.upstream_leg->set_audio_payload_type(opus_pt);
  parts_.upstream_leg->set_remote_description(
      GST_WEBRTC_SDP_TYPE_ANSWER, std::move(answer),
      [alive = lifetime_.watch(), done = std::move(done)](const std::string& error) {
        if (!alive.alive()) return;
        if (!error.empty()) {
          done(SetupFailure{SetupFailure::Kind::kUpstreamUnreachable,
                            0,
                            {},
                            "the worker's answer was refused: " + error});
          return;
        }
        done(std::nullopt);
      });
}

// --- CallSetup -----------------------------------------------------------------------------------

CallSetup::CallSetup(std::string log_id, std::unique_ptr<SetupMedia> media,
                     workers::WorkerLease& lease, workers::FailoverFn failover,
                     std::string upstream_model, Done done)
    : log_id_(std::move(log_id)),
      media_(std::move(media)),
      lease_(lease),
      failover_(std::move(failover)),
      upstream_model_(std::move(upstream_model)),
      done_(std::move(done)),
      cancellable_(Ref<GCancellable>::adopt(g_cancellable_new())) {}

CallSetup::~CallSetup() { g_cancellable_cancel(cancellable_.get()); }

void CallSetup::start(sdp::CheckedOffer offer, std::optional<std::string> session_json) {
  session_json_ = std::move(session_json);
  answer_.steps.started_us = g_get_monotonic_time();
  media_->accept_client_offer(
      std::move(offer), [this, alive = lifetime_.watch()](std::optional<SetupFailure> failure) {
        if (!alive.alive() || finished_) return;
        if (failure) {
          fail(std::move(*failure));
          return;
        }
        answer_.steps.client_offer_accepted_us = g_get_monotonic_time();
        media_->create_client_answer([this, alive = lifetime_.watch()](
                                         std::optional<SetupFailure> failure, std::string sdp) {
          if (!alive.alive() || finished_) return;
          if (failure) {
            fail(std::move(*failure));
            return;
          }
          client_answer_ = std::move(sdp);
          answer_.steps.client_answer_us = g_get_monotonic_time();
          maybe_finish();
        });
        client_offer_accepted_ = true;
        maybe_send_offer();
      });
  // The legs overlap from the start: each webrtcbin works on its own thread, so the upstream
  // offer is gathered while the client's offer is taken (measured: ~4 ms of set-up saved,
  // tests/bench/README.md).
  if (!finished_) start_upstream();
}

void CallSetup::start_upstream() {
  media_->create_upstream_offer(
      [this, alive = lifetime_.watch()](std::optional<SetupFailure> failure, std::string offer) {
        if (!alive.alive() || finished_) return;
        if (failure) {
          fail(std::move(*failure));
          return;
        }
        offer_request_ =
            workers::OfferRequest{std::move(offer), upstream_model_, std::move(session_json_)};
        upstream_offer_ready_ = true;
        maybe_send_offer();
      });
}

void CallSetup::maybe_send_offer() {
  if (finished_ || offer_sent_ || !client_offer_accepted_ || !upstream_offer_ready_) return;
  offer_sent_ = true;
  answer_.steps.upstream_offer_us = g_get_monotonic_time();
  send_offer_upstream();
}

void CallSetup::send_offer_upstream() {
  lease_->exchange(offer_request_, cancellable_.get(),
                   [this, alive = lifetime_.watch()](workers::UpstreamResult result) {
                     if (!alive.alive() || finished_) return;
                     on_upstream_result(std::move(result));
                   });
}

void CallSetup::on_upstream_result(workers::UpstreamResult result) {
  if (auto* failure = std::get_if<workers::UpstreamFailure>(&result)) {
    // A worker's own failure (unreachable, timeout, 5xx, 429) counts against it, and the same
    // offer goes to the next worker of the model, before the client has an answer. An upstream
    // 4xx is the request's fault: it goes back to the client as is.
    if (workers::fail_over(*failure, lease_, tried_workers_, failover_, log_id_)) {
      send_offer_upstream();
      return;
    }
    using K = workers::UpstreamFailure::Kind;
    SetupFailure f;
    f.message = failure->message;
    switch (failure->kind) {
      case K::kTimeout:
        f.kind = SetupFailure::Kind::kUpstreamTimeout;
        break;
      case K::kConnect:
      case K::kProtocol:
        f.kind = SetupFailure::Kind::kUpstreamUnreachable;
        break;
      case K::kStatus:
        f.kind = SetupFailure::Kind::kUpstreamStatus;
        f.status = failure->status;
        if (workers::is_auth_failure(*failure))  // its body may quote the worker key
          f.message = "the worker refused the gateway's credentials (HTTP " +
                      std::to_string(failure->status) + ")";
        else
          f.body = failure->body;
        break;
    }
    fail(std::move(f));
    return;
  }
  auto& answer = std::get<workers::UpstreamAnswer>(result);
  answer_.steps.worker_answered_us = g_get_monotonic_time();
  lease_.settle(workers::SetupOutcome::kSuccess);
  answer_.upstream_answer_ms = answer.answer_ms;
  answer_.upstream_call_id = answer.upstream_call_id;
  sdp::SdpMessagePtr message;
  try {
    message = sdp::parse(answer.sdp);
  } catch (const sdp::SdpError& e) {
    fail({SetupFailure::Kind::kUpstreamUnreachable,
          0,
          {},
          std::string("the worker's answer is not valid SDP: ") + e.what()});
    return;
  }
  int pt = sdp::opus_payload_type(message.get());
  if (pt < 0) {
    fail({SetupFailure::Kind::kUpstreamUnreachable, 0, {}, "the worker's answer has no Opus"});
    return;
  }
  try {
    sdp::check_fingerprints(message.get());  // what the upstream leg's certificate must match
  } catch (const sdp::SdpError& e) {
    fail({SetupFailure::Kind::kUpstreamUnreachable,
          0,
          {},
          std::string("the worker's answer: ") + e.what()});
    return;
  }
  media_->accept_upstream_answer(std::move(message), pt,
                                 [this, alive = lifetime_.watch()](std::optional<SetupFailure> f) {
                                   if (!alive.alive() || finished_) return;
                                   if (f) {
                                     fail(std::move(*f));
                                     return;
                                   }
                                   upstream_ready_ = true;
                                   answer_.steps.upstream_ready_us = g_get_monotonic_time();
                                   maybe_finish();
                                 });
}

void CallSetup::maybe_finish() {
  if (finished_ || client_answer_.empty() || !upstream_ready_) return;
  finished_ = true;
  answer_.answer_sdp = std::move(client_answer_);
  // From the step that completed it: the call goes live now.
  done_(std::move(answer_));
}

void CallSetup::fail(SetupFailure failure) {
  if (finished_) return;
  finished_ = true;
  g_cancellable_cancel(cancellable_.get());
  lease_.settle(workers::SetupOutcome::kNeutral);  // a cancel (no-op when already settled)
  if (!answer_.upstream_call_id.empty() && lease_) lease_->hangup(answer_.upstream_call_id);
  // Always reported from the main loop, never from inside the caller's own call (a cancel from
  // the HTTP layer, a media step, an upstream answer): the owner may drop everything then.
  post_if_alive(lifetime_.watch(),
                [this, failure = std::move(failure)] { done_(std::move(failure)); });
}

}  // namespace rtgw::calls
