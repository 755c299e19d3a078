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
      pending_(max_pending_bytes),
      sender_(std::make_shared<ChannelSender>(max_message_bytes_, max_outgoing_bytes)) {}

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
          opened();
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
  if (already_open || state == GST_WEBRTC_DATA_CHANNEL_STATE_OPEN) opened();
}

std::shared_ptr<events::DirectSink> EventChannel::direct(ChannelSender::Prepare prepare) {
  direct_ = true;
  sender_->set_prepare(std::move(prepare));
  return sender_;
}

void EventChannel::opened() {
  open_ = true;
  // The pending queue goes first, then the direct path may start (its events came later).
  sender_->open(std::make_unique<DataChannelWire>(channel_));
  flush();
  if (direct_) sender_->allow_direct();
  if (listener_) listener_->OnEventChannelOpen(*this);
}

EventChannel::SendResult EventChannel::send(const std::string& text) {
  if (static_cast<std::int64_t>(text.size()) > max_message_bytes_) return SendResult::kTooLarge;
  if (closed_) return SendResult::kFailed;
  if (!open_) return pending_.push(text) ? SendResult::kQueued : SendResult::kQueueFull;
  // The bound on what waits for a peer that does not read is checked in the sender, under the
  // same lock as the direct path's sends.
  std::string why;
  switch (sender_->send(text, true, &why)) {
    case ChannelSender::Result::kSent:
      return SendResult::kSent;
    case ChannelSender::Result::kBackpressure:
      return SendResult::kBackpressure;
    case ChannelSender::Result::kFailed:
      break;
  }
  g_warning("[%s] data channel send failed: %s", side_.c_str(), why.c_str());
  return SendResult::kFailed;
}

std::uint64_t EventChannel::buffered_amount() const {
  if (!channel_ || !open_) return 0;
  return sender_->buffered_amount();
}

void EventChannel::flush() {
  if (!open_) return;
  for (std::string& text : pending_.take()) {
    std::string why;
    if (sender_->send(text, false, &why) != ChannelSender::Result::kSent)
      g_warning("[%s] data channel send failed: %s", side_.c_str(), why.c_str());
  }
}

bool EventChannel::begin_close() {
  if (!channel_ || !open_ || closed_) return false;
  // The stream reset tells the peer at once; on-close follows when its side is reset too.
  sender_->close();
  gst_webrtc_data_channel_close(channel_.get());
  open_ = false;
  closing_ = true;
  return true;
}

void EventChannel::on_closed(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  open_ = false;
  sender_->close();
  if (listener_) listener_->OnEventChannelClosed(*this, why);
}

void EventChannel::close() {
  sender_->close();
  signals_.clear();
  closed_ = true;
  open_ = false;
  pending_.clear();
}

}  // namespace rtgw::calls
