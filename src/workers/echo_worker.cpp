// SPDX-License-Identifier: MIT
#include "workers/echo_worker.h"

#include <atomic>
#include <cmath>

#include "calls/webrtc_leg.h"
#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "sdp/session_description.h"

namespace rtgw::workers {

namespace {

std::string random_id(const char* prefix, int hex_digits) {
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < hex_digits; i++) id += hex[g_random_int_range(0, 16)];
  return id;
}

constexpr double kOpusFrameMs = 20.0;           // what browsers and aiortc send
constexpr double kAudioTokensPerSecond = 10.0;  // OpenAI's realtime audio rate: 1 token / 100 ms

}  // namespace

class EchoSession : public calls::WebRtcLeg::Listener {
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
    leg_ = std::make_unique<calls::WebRtcLeg>(
        "echo", Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo")),
        webrtc, this);
    echo_in_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo_in"));
    echo_out_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "echo_out"));

    // Received audio loops back (pad-added runs on a streaming thread: link and return).
    auto* head = echo_in_.get();
    gulong handler = g_signal_connect(leg_->element(), "pad-added",
                                      G_CALLBACK(+[](GstElement*, GstPad* pad, gpointer data) {
                                        if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
                                        auto sink = Ref<GstPad>::adopt(gst_element_get_static_pad(
                                            static_cast<GstElement*>(data), "sink"));
                                        if (!gst_pad_is_linked(sink.get()))
                                          gst_pad_link(pad, sink.get());
                                      }),
                                      head);
    signals_.emplace_back(leg_->element(), handler);
    auto in_pad = Ref<GstPad>::adopt(gst_element_get_static_pad(echo_in_.get(), "sink"));
    gst_pad_add_probe(
        in_pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
        [](GstPad*, GstPadProbeInfo*, gpointer data) -> GstPadProbeReturn {
          static_cast<std::atomic<std::uint64_t>*>(data)->fetch_add(1);
          return GST_PAD_PROBE_OK;
        },
        &packets_heard_, nullptr);

    struct Ctx {
      std::weak_ptr<int> alive;
      EchoSession* session;
    };
    handler = g_signal_connect_data(
        leg_->element(), "on-data-channel",
        G_CALLBACK(+[](GstElement*, GstWebRTCDataChannel* channel, gpointer data) {
          auto* ctx = static_cast<Ctx*>(data);
          // Connected here, on the pc thread, so no message that follows is missed.
          g_signal_connect_data(
              channel, "on-message-string",
              G_CALLBACK(+[](GstWebRTCDataChannel*, const gchar* text, gpointer d) {
                auto* c = static_cast<Ctx*>(d);
                std::string copy = text ? text : "";
                EchoSession* s = c->session;
                post_to_main([alive = c->alive, s, copy] {
                  if (alive.lock()) s->on_event(copy);
                });
              }),
              new Ctx{ctx->alive, ctx->session},
              [](gpointer d, GClosure*) { delete static_cast<Ctx*>(d); }, GConnectFlags(0));
          auto ref = Ref<GstWebRTCDataChannel>::retain(channel);
          EchoSession* s = ctx->session;
          post_to_main([alive = ctx->alive, s, ref] {
            if (alive.lock()) s->on_channel(ref);
          });
        }),
        new Ctx{alive_, this}, [](gpointer d, GClosure*) { delete static_cast<Ctx*>(d); },
        GConnectFlags(0));
    signals_.emplace_back(leg_->element(), handler);
  }

  ~EchoSession() override {
    signals_.clear();
    if (channel_) gst_webrtc_data_channel_close(channel_.get());
    // Break the webrtcbin -> echo -> webrtcbin cycle before ordering the state change.
    auto src = Ref<GstPad>::adopt(gst_element_get_static_pad(echo_out_.get(), "src"));
    if (auto peer = Ref<GstPad>::adopt(gst_pad_get_peer(src.get())))
      gst_pad_unlink(src.get(), peer.get());
    gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
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

  void OnLegConnectionState(calls::WebRtcLeg&, GstWebRTCPeerConnectionState state) override {
    if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED ||
        state == GST_WEBRTC_PEER_CONNECTION_STATE_CLOSED)
      on_end_(id_);
  }

 private:
  void on_channel(Ref<GstWebRTCDataChannel> channel) {
    channel_ = std::move(channel);
    session_id_ = random_id("sess_", 24);
    json::ObjectBuilder session;
    session.set("id", session_id_)
        .set("object", "realtime.session")
        .set("type", "realtime")
        .set("model", "echo");
    json::ObjectBuilder created;
    created.set("type", "session.created")
        .set("event_id", random_id("event_", 24))
        .set_object("session", std::move(session));
    send(created.str());
  }

  void send(const std::string& text) {
    if (!channel_) return;
    UniqueError err;
    if (!gst_webrtc_data_channel_send_string_full(channel_.get(), text.c_str(), ErrorOut(err)))
      g_message("[echo %s] send failed: %s", id_.c_str(), err ? err->message : "?");
  }

  void on_event(const std::string& text) {
    auto node = json::parse(text);
    if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) {
      send_error("invalid_json", "the echo worker expects JSON events");
      return;
    }
    JsonObject* event = json_node_get_object(node.get());
    std::string type = json::get_string(event, "type").value_or("");
    if (type == "session.update") {
      json::ObjectBuilder updated;
      updated.set("type", "session.updated").set("event_id", random_id("event_", 24));
      if (json::get_object(event, "session")) {
        auto copy = Ref<JsonNode>::adopt(json_node_copy(json_object_get_member(event, "session")));
        json_object_set_string_member(json_node_get_object(copy.get()), "id", session_id_.c_str());
        updated.set_node("session", copy);
      }
      send(updated.str());
    } else if (type == "response.create") {
      respond();
    } else if (type == "input_audio_buffer.clear" || type == "conversation.item.create" ||
               type == "response.cancel" || type == "input_audio_buffer.commit") {
      // Accepted without a reply beyond what the real API would send that matters here.
    } else {
      send_error("unknown_event", "the echo worker does not handle '" + type + "'");
    }
  }

  void respond() {
    std::uint64_t packets = packets_heard_.load();
    double heard_ms = static_cast<double>(packets - packets_at_last_response_) * kOpusFrameMs;
    packets_at_last_response_ = packets;
    auto audio_tokens =
        static_cast<gint64>(std::llround(heard_ms / 1000.0 * kAudioTokensPerSecond));
    std::string response_id = random_id("resp_", 24);

    json::ObjectBuilder response;
    response.set("id", response_id).set("object", "realtime.response").set("status", "in_progress");
    json::ObjectBuilder created;
    created.set("type", "response.created")
        .set("event_id", random_id("event_", 24))
        .set_object("response", std::move(response));
    send(created.str());

    std::string transcript =
        "echo: heard " + std::to_string(static_cast<gint64>(heard_ms)) + " ms of audio";
    json::ObjectBuilder delta;
    delta.set("type", "response.output_text.delta")
        .set("event_id", random_id("event_", 24))
        .set("response_id", response_id)
        .set("delta", transcript);
    send(delta.str());

    gint64 text_tokens = static_cast<gint64>((transcript.size() + 3) / 4);
    json::ObjectBuilder input_details;
    input_details.set("text_tokens", gint64{0})
        .set("audio_tokens", audio_tokens)
        .set("image_tokens", gint64{0})
        .set("cached_tokens", gint64{0});
    json::ObjectBuilder output_details;
    output_details.set("text_tokens", text_tokens).set("audio_tokens", audio_tokens);
    json::ObjectBuilder usage;
    usage.set("total_tokens", audio_tokens * 2 + text_tokens)
        .set("input_tokens", audio_tokens)
        .set("output_tokens", audio_tokens + text_tokens)
        .set_object("input_token_details", std::move(input_details))
        .set_object("output_token_details", std::move(output_details));
    json::ObjectBuilder done_response;
    done_response.set("id", response_id)
        .set("object", "realtime.response")
        .set("status", "completed")
        .set_object("usage", std::move(usage));
    json::ObjectBuilder done;
    done.set("type", "response.done")
        .set("event_id", random_id("event_", 24))
        .set_object("response", std::move(done_response));
    send(done.str());
  }

  void send_error(const std::string& code, const std::string& message) {
    json::ObjectBuilder error;
    error.set("type", "invalid_request_error").set("code", code).set("message", message);
    json::ObjectBuilder event;
    event.set("type", "error")
        .set("event_id", random_id("event_", 24))
        .set_object("error", std::move(error));
    send(event.str());
  }

  std::string id_;
  std::function<void(const std::string&)> on_end_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  Ref<GstElement> pipeline_;
  std::unique_ptr<calls::WebRtcLeg> leg_;
  Ref<GstElement> echo_in_;
  Ref<GstElement> echo_out_;
  Ref<GstWebRTCDataChannel> channel_;
  std::vector<SignalConnection> signals_;
  std::string session_id_;
  gint64 started_us_ = 0;
  std::atomic<std::uint64_t> packets_heard_{0};
  std::uint64_t packets_at_last_response_ = 0;
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
    struct CancelCtx {
      EchoWorker* worker;
      std::string id;
    };
    g_signal_connect_data(
        cancellable, "cancelled", G_CALLBACK(+[](GCancellable*, gpointer data) {
          auto* ctx = static_cast<CancelCtx*>(data);
          post_to_main([worker = ctx->worker, id = ctx->id] { worker->end_session(id); });
        }),
        new CancelCtx{this, id},
        [](gpointer data, GClosure*) { delete static_cast<CancelCtx*>(data); }, GConnectFlags(0));
  }
  std::unique_ptr<EchoSession> session;
  try {
    session = std::make_unique<EchoSession>(id, webrtc_, [this](const std::string& ended) {
      post_to_main([this, ended] { end_session(ended); });
    });
  } catch (const std::exception& e) {
    done(UpstreamFailure{UpstreamFailure::Kind::kConnect, 0, {}, e.what()});
    return;
  }
  EchoSession* raw = session.get();
  sessions_[id] = std::move(session);
  raw->answer(request.offer_sdp, [this, id, done = std::move(done)](UpstreamResult result) {
    if (std::holds_alternative<UpstreamFailure>(result)) {
      std::string ended = id;
      post_to_main([this, ended] { end_session(ended); });
    }
    done(std::move(result));
  });
}

void EchoWorker::hangup(const std::string& upstream_call_id) {
  // Deferred: the caller may be inside one of this session's callbacks.
  post_to_main([this, upstream_call_id] { end_session(upstream_call_id); });
}

void EchoWorker::end_session(const std::string& id) { sessions_.erase(id); }

}  // namespace rtgw::workers
