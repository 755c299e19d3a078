// SPDX-License-Identifier: MIT
#include "calls/event_channel.h"

#include <algorithm>
#include <cstring>

#include "common/main_thread.h"
#include "events/event_path.h"

namespace rtgw::calls {

namespace {

// Pushes a received message into the event path (on webrtcbin's thread).
struct Inbound {
  Ref<GstElement> source;
  EventChannel::Transform transform;
  std::size_t max_transform_bytes;
  std::shared_ptr<MediaGate> gate;  // holds events until both legs' peers are verified

  void deliver(const char* data, gsize length) const {
    if (gate)
      gate->push_event(source.get(), data, length);
    else
      events::push_event(source.get(), data, length);
  }
  void push(const char* data, gsize length) const {
    // An event over the size limit is not translated (nor parsed): it goes to the filter as
    // it came, which refuses it by its size first (issue 21: a large beta event held the loop).
    if (transform && length <= max_transform_bytes)
      if (auto rewritten = transform(std::string_view(data, length))) {
        deliver(rewritten->data(), rewritten->size());
        return;
      }
    deliver(data, length);
  }
};

}  // namespace

EventChannel::EventChannel(std::string side, std::int64_t max_message_bytes,
                           std::int64_t max_pending_bytes, std::int64_t max_outgoing_bytes,
                           Listener* listener)
    : side_(std::move(side)),
      max_message_bytes_(std::min<std::int64_t>(max_message_bytes, kMaxMessageBytes)),
      max_outgoing_bytes_(max_outgoing_bytes),
      listener_(listener),
      pending_(max_pending_bytes) {}

EventChannel::~EventChannel() = default;

void EventChannel::wire_inbound(GstWebRTCDataChannel* channel, Ref<GstElement> inbound_source,
                                Transform transform, std::size_t max_transform_bytes,
                                std::shared_ptr<MediaGate> gate) {
  // Connected for the channel's lifetime: the closures (values only) die with the channel object.
  Inbound inbound{std::move(inbound_source), transform, max_transform_bytes, std::move(gate)};
  connect_signal_for_lifetime<void(GstWebRTCDataChannel*, const gchar*)>(
      channel, "on-message-string", [inbound](GstWebRTCDataChannel*, const gchar* text) {
        if (text) inbound.push(text, strlen(text));
      });
  // Binary messages are not realtime events; relay them as text so nothing vanishes unseen.
  connect_signal_for_lifetime<void(GstWebRTCDataChannel*, GBytes*)>(
      channel, "on-message-data", [inbound](GstWebRTCDataChannel*, GBytes* bytes) {
        if (!bytes) return;
        gsize len = 0;
        auto* p = static_cast<const char*>(g_bytes_get_data(bytes, &len));
        inbound.push(p, len);
      });
}

void EventChannel::attach(Ref<GstWebRTCDataChannel> channel, bool already_open) {
  channel_ = std::move(channel);
  // On webrtcbin's threads: post, and check the liveness token on the main loop.
  Liveness alive = lifetime_.watch();
  signals_.push_back(connect_signal<void(GstWebRTCDataChannel*)>(
      channel_.get(), "on-open", [alive, this](GstWebRTCDataChannel*) {
        post_if_alive(alive, [this] {
          if (open_ || closed_ || !listener_) return;
          open_ = true;
          flush();
          if (listener_) listener_->OnEventChannelOpen(*this);
        });
      }));
  signals_.push_back(connect_signal<void(GstWebRTCDataChannel*)>(
      channel_.get(), "on-close", [alive, this](GstWebRTCDataChannel*) {
        post_if_alive(alive, [this] { on_closed("data channel closed"); });
      }));
  signals_.push_back(connect_signal<void(GstWebRTCDataChannel*, GError*)>(
      channel_.get(), "on-error", [alive, this](GstWebRTCDataChannel*, GError* error) {
        std::string why = std::string("data channel error: ") + (error ? error->message : "?");
        post_if_alive(alive, [this, why] { on_closed(why); });
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
  if (!open_) return pending_.push(text) ? SendResult::kQueued : SendResult::kQueueFull;
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
  if (!open_) return;
  for (std::string& text : pending_.take()) {
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

void EventChannel::on_closed(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  open_ = false;
  if (listener_) listener_->OnEventChannelClosed(*this, why);
}

void EventChannel::close() {
  signals_.clear();
  closed_ = true;
  open_ = false;
  pending_.clear();
}

}  // namespace rtgw::calls
