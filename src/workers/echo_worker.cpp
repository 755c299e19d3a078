// SPDX-License-Identifier: MIT
#include "workers/echo_worker.h"

#include <atomic>
#include <chrono>
#include <cmath>

#include "common/json.h"
#include "common/main_thread.h"
#include "common/pipeline_reaper.h"
#include "common/random.h"
#include "common/ref.h"
#include "sdp/session_description.h"
#include "webrtc/sctp_ids.h"
#include "webrtc/webrtc_leg.h"
#include "workers/echo_protocol.h"

namespace rtgw::workers {

namespace {

constexpr double kOpusFrameMs = 20.0;     // what browsers and aiortc send
constexpr int kChannelCloseWaitMs = 400;  // bound on the data channel's close before stopping

}  // namespace

class EchoSession : public webrtc::WebRtcLeg::Listener {
 public:
  EchoSession(std::string id, const config::WebRtcConfig& webrtc,
              std::function<void(const std::string&)> on_end)
      : id_(std::move(id)), on_end_(std::move(on_end)) {
    UniqueError err;
    GstElement* raw = gst_parse_launch_full(
        "webrtcbin name=echo bundle-policy=max-bundle "
        "queue name=echo_in leaky=downstream max-size-buffers=100 max-size-bytes=0 max-size-time=0 "
        "! rtpopusdepay ! rtpopuspay name=echo_out",
        nullptr, GST_PARSE_FLAG_FATAL_ERRORS, ErrorOut(err));
    if (!raw) throw std::runtime_error(std::string("echo pipeline: ") + (err ? err->message : "?"));
    pipeline_ = Ref<GstElement>::sink(raw);
    gst_object_set_name(GST_OBJECT(pipeline_.get()), id_.c_str());
    leg_ = std::make_unique<webrtc::WebRtcLeg>(
        "echo", Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo")),
        webrtc, this);
    // Its webrtcbin lives in the gateway's process too: its SCTP association id comes from the
    // same process-wide allocator as the calls' (webrtc/sctp_ids.h).
    webrtc::sctp_ids::assign(leg_->element());
    connect_signal_for_lifetime<void(GstBin*, GstBin*, GstElement*)>(
        pipeline_.get(), "deep-element-added",
        [](GstBin*, GstBin*, GstElement* added) { webrtc::sctp_ids::apply(added); });
    echo_in_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo_in"));
    echo_out_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo_out"));

    // Received audio loops back (pad-added runs on a streaming thread: link and return).
    signals_.push_back(connect_signal<void(GstElement*, GstPad*)>(
        leg_->element(), "pad-added", [head = echo_in_](GstElement*, GstPad* pad) {
          if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
          auto sink = Ref<GstPad>::adopt(gst_element_get_static_pad(head.get(), "sink"));
          if (!gst_pad_is_linked(sink.get())) gst_pad_link(pad, sink.get());
        }));
    auto in_pad = Ref<GstPad>::adopt(gst_element_get_static_pad(echo_in_.get(), "sink"));
    gst_pad_add_probe(
        in_pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
        [](GstPad*, GstPadProbeInfo*, gpointer data) -> GstPadProbeReturn {
          static_cast<std::atomic<std::uint64_t>*>(data)->fetch_add(1);
          return GST_PAD_PROBE_OK;
        },
        packets_heard_.get(), nullptr);

    // On the pc thread: connect the message handler there, so no message that follows is missed;
    // everything else is posted behind the liveness check.
    signals_.push_back(connect_signal<void(GstElement*, GstWebRTCDataChannel*)>(
        leg_->element(), "on-data-channel",
        [alive = lifetime_.watch(), this](GstElement*, GstWebRTCDataChannel* channel) {
          connect_signal_for_lifetime<void(GstWebRTCDataChannel*, const gchar*)>(
              channel, "on-message-string",
              [alive, this](GstWebRTCDataChannel*, const gchar* text) {
                post_if_alive(alive,
                              [this, copy = std::string(text ? text : "")] { on_event(copy); });
              });
          post_if_alive(
              alive, [this, ref = Ref<GstWebRTCDataChannel>::retain(channel)] { on_channel(ref); });
        }));
  }

  ~EchoSession() override {
    // Fixed order: stop callbacks (the leg's and ours; the channel's message handler checks
    // `lifetime_` on the main loop), start the channel's close, break the webrtcbin -> echo ->
    // webrtcbin cycle, then let the reaper stop the pipeline off the main loop once the close
    // procedure is over: stopping while it runs on the pc thread deadlocks 1.22
    // (WEBRTCBIN-NOTES). The packet probe counts into a counter the reaper keeps alive.
    signals_.clear();
    StopOptions options;
    // webrtcbin first: a looped-back buffer in flight may be waiting for preroll in its sink
    // (PLAYING -> PAUSED) while holding the stream locks of the echo chain; the whole pipeline at
    // once deactivated echo_out's pads before that sink left PAUSED, and the state change hung.
    options.stop_first.push_back(Ref<GstElement>::retain(leg_->element()));
    leg_.reset();
    if (channel_) {
      gst_webrtc_data_channel_close(channel_.get());
      options.ready = [channel = channel_] {
        GstWebRTCDataChannelState state;
        g_object_get(channel.get(), "ready-state", &state, nullptr);
        return state == GST_WEBRTC_DATA_CHANNEL_STATE_CLOSED;
      };
      options.max_wait = std::chrono::milliseconds(kChannelCloseWaitMs);
    }
    auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(echo_out_.get(), "src"));
    if (auto peer = Ref<GstPad>::adopt(gst_pad_get_peer(src.get())))
      gst_pad_unlink(src.get(), peer.get());
    stop_pipeline_async(
        std::move(pipeline_), [heard = packets_heard_] {}, std::move(options));
  }

  void answer(const std::string& offer_sdp, std::function<void(UpstreamResult)> done) {
    sdp::SdpMessagePtr offer;
    int pt = -1;
    try {
      offer = sdp::parse(offer_sdp);
      pt = sdp::opus_payload_type(offer.get());
    } catch (const sdp::SdpError& e) {
      done(UpstreamFailure{
          UpstreamFailure::Kind::kStatus, 400,
          R"({"error":{"type":"invalid_request_error","code":"invalid_sdp","message":"echo: bad offer"}})",
          e.what()});
      return;
    }
    g_object_set(echo_out_.get(), "pt", static_cast<guint>(pt < 0 ? 96 : pt), nullptr);
    gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING);
    started_us_ = g_get_monotonic_time();
    leg_->set_remote_description(
        GST_WEBRTC_SDP_TYPE_OFFER, std::move(offer), [this, done](const std::string& err) {
          if (!err.empty()) {
            done(UpstreamFailure{UpstreamFailure::Kind::kProtocol, 0, {}, "echo: " + err});
            return;
          }
          auto caps = Ref<GstCaps>::adopt(gst_caps_from_string(
              "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000"));
          auto pad = leg_->request_audio_sink(caps.get());
          auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(echo_out_.get(), "src"));
          if (pad) gst_pad_link(src.get(), pad.get());
          leg_->create_local_description(
              false, [this, done](const std::string& e, const std::string& sdp) {
                if (!e.empty()) {
                  done(UpstreamFailure{UpstreamFailure::Kind::kProtocol, 0, {}, "echo: " + e});
                  return;
                }
                UpstreamAnswer answer;
                answer.sdp = sdp;
                answer.upstream_call_id = id_;
                answer.answer_ms = (g_get_monotonic_time() - started_us_) / 1000.0;
                done(std::move(answer));
              });
        });
  }

  void OnLegConnectionState(webrtc::WebRtcLeg&, GstWebRTCPeerConnectionState state) override {
    if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED ||
        state == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED)
      on_end_(id_);
  }

  // The call's initial session (multipart `session`, or a token's), before the channel opens.
  void configure(const std::string& session_json) { protocol_.configure(session_json); }

 private:
  void on_channel(Ref<GstWebRTCDataChannel> channel) {
    channel_ = std::move(channel);
    protocol_.start();
  }

  void send(const std::string& text) {
    if (!channel_) return;
    UniqueError err;
    if (!gst_webrtc_data_channel_send_string_full(channel_.get(), text.c_str(), ErrorOut(err)))
      g_message("[echo %s] send failed: %s", id_.c_str(), err ? err->message : "?");
  }

  void on_event(const std::string& text) { protocol_.on_event(text); }

  // RTP audio heard since the previous response.
  double take_heard_ms() {
    std::uint64_t packets = packets_heard_->load();
    double heard = static_cast<double>(packets - packets_at_last_response_) * kOpusFrameMs;
    packets_at_last_response_ = packets;
    return heard;
  }

  std::string id_;
  std::function<void(const std::string&)> on_end_;
  Ref<GstElement> pipeline_;
  std::unique_ptr<webrtc::WebRtcLeg> leg_;
  Ref<GstElement> echo_in_;
  Ref<GstElement> echo_out_;
  Ref<GstWebRTCDataChannel> channel_;
  std::vector<SignalConnection> signals_;
  gint64 started_us_ = 0;
  // Bumped on a streaming thread; shared with the reaper, which outlives the probe.
  std::shared_ptr<std::atomic<std::uint64_t>> packets_heard_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  std::uint64_t packets_at_last_response_ = 0;
  EchoProtocol protocol_{[this](const std::string& text) { send(text); },
                         [this] { return take_heard_ms(); }};
  Lifetime lifetime_;  // checked by every callback posted from webrtcbin's threads
};

// An echo session over the WebSocket path: the protocol without media, answered in process.
// Like a real socket, everything it says arrives later on the main loop, never inside send().
class EchoSocket : public UpstreamSocket {
 public:
  EchoSocket(const SocketRequest& request, UpstreamSocket::Listener* listener)
      : listener_(listener) {
    // A translation socket is one from its first event (its URL says so, as OpenAI's does).
    if (request.translation) {
      json::ObjectBuilder session;
      session.set("type", "translation").set("model", request.upstream_model);
      protocol_.configure(session.str());
    }
    post([this] { protocol_.start(); });
  }

  bool send_text(const std::string& text) override {
    if (closed_) return false;
    post([this, text] { protocol_.on_event(text); });
    return true;
  }

  void close(int code, const std::string& reason) override {
    if (closed_) return;
    closed_ = true;
    // The echo of the close handshake.
    post([this, code, reason] { listener_->OnUpstreamClosed(code, reason); });
  }

 private:
  void post(std::function<void()> fn) { post_if_alive(lifetime_.watch(), std::move(fn)); }

  UpstreamSocket::Listener* listener_;
  bool closed_ = false;
  Lifetime lifetime_;
  EchoProtocol protocol_{[this](const std::string& text) {
    if (!closed_) listener_->OnUpstreamText(text);
  }};
};

EchoWorker::EchoWorker(const config::WebRtcConfig& webrtc) : webrtc_(webrtc) {
  // The echo leg talks to the gateway's own upstream leg on this host: no STUN needed.
  webrtc_.stun_server.clear();
  webrtc_.turn_servers.clear();
}

EchoWorker::~EchoWorker() = default;

void EchoWorker::exchange(const OfferRequest& request, GCancellable* cancellable,
                          std::function<void(UpstreamResult)> done) {
  std::string id = random_id("rtc_echo_", 24);
  if (cancellable) {
    // A call ended during set-up (or later) ends its echo session too: nobody would hang it up.
    // The cancellable is the call's: it may outlive this worker.
    connect_signal_for_lifetime<void(GCancellable*)>(
        cancellable, "cancelled", [alive = lifetime_.watch(), this, id](GCancellable*) {
          post_if_alive(alive, [this, id] { end_session(id); });
        });
  }
  std::unique_ptr<EchoSession> session;
  try {
    session = std::make_unique<EchoSession>(id, webrtc_,
                                            [this](const std::string& ended) { end_later(ended); });
  } catch (const std::exception& e) {
    done(UpstreamFailure{UpstreamFailure::Kind::kConnect, 0, {}, e.what()});
    return;
  }
  EchoSession* raw = session.get();
  if (request.session_json) raw->configure(*request.session_json);
  sessions_[id] = std::move(session);
  raw->answer(request.offer_sdp, [this, id, done = std::move(done)](UpstreamResult result) {
    if (std::holds_alternative<UpstreamFailure>(result)) end_later(id);
    done(std::move(result));
  });
}

void EchoWorker::hangup(const std::string& upstream_call_id) { end_later(upstream_call_id); }

void EchoWorker::end_later(const std::string& id) {
  // Deferred: the caller may be inside one of this session's callbacks (or the worker's, which
  // may be gone by then: the cancellable belongs to a call).
  post_if_alive(lifetime_.watch(), [this, id] { end_session(id); });
}

void EchoWorker::end_session(const std::string& id) { sessions_.erase(id); }

void EchoWorker::open_socket(const SocketRequest& request, UpstreamSocket::Listener* listener,
                             GCancellable*, std::function<void(SocketResult)> done) {
  done(std::make_unique<EchoSocket>(request, listener));
}

}  // namespace rtgw::workers
