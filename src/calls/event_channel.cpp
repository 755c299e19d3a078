// SPDX-License-Identifier: MIT
#include "calls/event_channel.h"

#include <gst/app/app.h>

#include <algorithm>
#include <cstring>

#include "common/main_thread.h"

namespace rtgw::calls {

void push_event(GstElement* appsrc, const char* data, gsize length) {
  GstBuffer* buffer = gst_buffer_new_memdup(data, length);
  // appsrc takes the buffer; a flushing or EOS appsrc just refuses it (the call is ending).
  gst_app_src_push_buffer(GST_APP_SRC(appsrc), buffer);
}

void pull_events(GstElement* appsink, std::weak_ptr<int> alive,
                 std::function<void(std::string)> on_event) {
  struct SinkCtx {
    std::weak_ptr<int> alive;
    std::function<void(std::string)> on_event;
  };
  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = [](GstAppSink* sink, gpointer data) -> GstFlowReturn {
    auto* ctx = static_cast<SinkCtx*>(data);
    auto sample = Ref<GstSample>::adopt(gst_app_sink_pull_sample(sink));
    if (!sample) return GST_FLOW_OK;
    GstBuffer* buffer = gst_sample_get_buffer(sample.get());
    GstMapInfo map;
    if (!buffer || !gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_OK;
    std::string text(reinterpret_cast<const char*>(map.data), map.size);
    gst_buffer_unmap(buffer, &map);
    // The closure lives as long as the appsink: copy what the main loop needs.
    post_to_main([alive = ctx->alive, on_event = ctx->on_event, text = std::move(text)]() mutable {
      if (alive.lock()) on_event(std::move(text));
    });
    return GST_FLOW_OK;
  };
  gst_app_sink_set_callbacks(GST_APP_SINK(appsink), &callbacks,
                             new SinkCtx{std::move(alive), std::move(on_event)},
                             [](gpointer data) { delete static_cast<SinkCtx*>(data); });
}

namespace {

struct InboundCtx {
  Ref<GstElement> appsrc;
  EventChannel::Transform transform;

  void push(const char* data, gsize length) const {
    if (transform)
      if (auto rewritten = transform(std::string_view(data, length))) {
        push_event(appsrc.get(), rewritten->data(), rewritten->size());
        return;
      }
    push_event(appsrc.get(), data, length);
  }
};

struct StateCtx {
  std::weak_ptr<int> alive;
  EventChannel* channel;
};

}  // namespace

EventChannel::EventChannel(std::string side, std::int64_t max_message_bytes,
                           std::int64_t max_pending_bytes, std::int64_t max_outgoing_bytes,
                           Ref<GstElement> inbound_appsrc, Listener* listener)
    : side_(std::move(side)),
      max_message_bytes_(std::min<std::int64_t>(max_message_bytes, kMaxMessageBytes)),
      max_pending_bytes_(max_pending_bytes),
      max_outgoing_bytes_(max_outgoing_bytes),
      inbound_appsrc_(std::move(inbound_appsrc)),
      listener_(listener) {}

EventChannel::~EventChannel() = default;

void EventChannel::wire_inbound(GstWebRTCDataChannel* channel, Ref<GstElement> inbound_appsrc,
                                Transform transform) {
  auto* ctx = new InboundCtx{std::move(inbound_appsrc), transform};
  // Connected for the channel's lifetime: the closure dies with the channel object.
  g_signal_connect_data(
      channel, "on-message-string",
      G_CALLBACK(+[](GstWebRTCDataChannel*, const gchar* text, gpointer data) {
        if (!text) return;
        static_cast<InboundCtx*>(data)->push(text, strlen(text));
      }),
      ctx, [](gpointer data, GClosure*) { delete static_cast<InboundCtx*>(data); },
      GConnectFlags(0));
  // Binary messages are not realtime events; relay them as text so nothing vanishes unseen.
  auto* ctx2 = new InboundCtx{ctx->appsrc, transform};
  g_signal_connect_data(
      channel, "on-message-data",
      G_CALLBACK(+[](GstWebRTCDataChannel*, GBytes* bytes, gpointer data) {
        if (!bytes) return;
        gsize len = 0;
        auto* p = static_cast<const char*>(g_bytes_get_data(bytes, &len));
        static_cast<InboundCtx*>(data)->push(p, len);
      }),
      ctx2, [](gpointer data, GClosure*) { delete static_cast<InboundCtx*>(data); },
      GConnectFlags(0));
}

void EventChannel::attach(Ref<GstWebRTCDataChannel> channel, bool already_open) {
  channel_ = std::move(channel);
  auto connect = [&](const char* signal, GCallback cb) {
    auto* ctx = new StateCtx{alive_, this};
    gulong id = g_signal_connect_data(
        channel_.get(), signal, cb, ctx,
        [](gpointer data, GClosure*) { delete static_cast<StateCtx*>(data); }, GConnectFlags(0));
    signals_.emplace_back(channel_.get(), id);
  };
  connect("on-open", G_CALLBACK(+[](GstWebRTCDataChannel*, gpointer data) {
            auto* ctx = static_cast<StateCtx*>(data);
            EventChannel* self = ctx->channel;
            post_to_main([alive = ctx->alive, self] {
              if (!alive.lock() || self->open_ || self->closed_ || !self->listener_) return;
              self->open_ = true;
              self->flush();
              if (self->listener_) self->listener_->OnEventChannelOpen(*self);
            });
          }));
  connect("on-close", G_CALLBACK(+[](GstWebRTCDataChannel*, gpointer data) {
            auto* ctx = static_cast<StateCtx*>(data);
            EventChannel* self = ctx->channel;
            post_to_main([alive = ctx->alive, self] {
              if (!alive.lock() || self->closed_) return;
              self->closed_ = true;
              self->open_ = false;
              if (self->listener_)
                self->listener_->OnEventChannelClosed(*self, "data channel closed");
            });
          }));
  connect("on-error", G_CALLBACK(+[](GstWebRTCDataChannel*, GError* error, gpointer data) {
            auto* ctx = static_cast<StateCtx*>(data);
            EventChannel* self = ctx->channel;
            std::string why = std::string("data channel error: ") + (error ? error->message : "?");
            post_to_main([alive = ctx->alive, self, why] {
              if (!alive.lock() || self->closed_) return;
              self->closed_ = true;
              self->open_ = false;
              if (self->listener_) self->listener_->OnEventChannelClosed(*self, why);
            });
          }));
  GstWebRTCDataChannelState state;
  g_object_get(channel_.get(), "ready-state", &state, nullptr);
  if (already_open || state == GST_WEBRTC_DATA_CHANNEL_STATE_OPEN) {
    open_ = true;
    flush();
    if (listener_) listener_->OnEventChannelOpen(*this);
  }
}

EventChannel::SendResult EventChannel::send(const std::string& text) {
  if (static_cast<std::int64_t>(text.size()) > max_message_bytes_) return SendResult::kTooLarge;
  if (closed_) return SendResult::kFailed;
  if (!open_) {
    if (pending_bytes_ + static_cast<std::int64_t>(text.size()) > max_pending_bytes_)
      return SendResult::kQueueFull;
    pending_.push_back(text);
    pending_bytes_ += static_cast<std::int64_t>(text.size());
    return SendResult::kQueued;
  }
  // webrtcbin buffers without limit what SCTP cannot send yet (a peer that does not read).
  if (buffered_amount() + text.size() > static_cast<std::uint64_t>(max_outgoing_bytes_))
    return SendResult::kBackpressure;
  UniqueError err;
  if (!gst_webrtc_data_channel_send_string_full(channel_.get(), text.c_str(), ErrorOut(err))) {
    g_warning("[%s] data channel send failed: %s", side_.c_str(), err ? err->message : "?");
    return SendResult::kFailed;
  }
  sent_++;
  return SendResult::kSent;
}

std::uint64_t EventChannel::buffered_amount() const {
  if (!channel_ || !open_) return 0;
  guint64 amount = 0;
  g_object_get(channel_.get(), "buffered-amount", &amount, nullptr);
  return amount;
}

void EventChannel::flush() {
  while (open_ && !pending_.empty()) {
    std::string text = std::move(pending_.front());
    pending_.pop_front();
    pending_bytes_ -= static_cast<std::int64_t>(text.size());
    UniqueError err;
    if (!gst_webrtc_data_channel_send_string_full(channel_.get(), text.c_str(), ErrorOut(err))) {
      g_warning("[%s] data channel send failed: %s", side_.c_str(), err ? err->message : "?");
      continue;
    }
    sent_++;
  }
}

bool EventChannel::begin_close() {
  if (!channel_ || !open_ || closed_) return false;
  // The stream reset tells the peer at once; on-close follows when its side is reset too.
  gst_webrtc_data_channel_close(channel_.get());
  open_ = false;
  closing_ = true;
  return true;
}

void EventChannel::close() {
  signals_.clear();
  closed_ = true;
  open_ = false;
  pending_.clear();
  pending_bytes_ = 0;
}

}  // namespace rtgw::calls
