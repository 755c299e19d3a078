// SPDX-License-Identifier: MIT
// One side's `oai-events` data channel.
//
// Owns: the GstWebRTCDataChannel of one leg, the bounded queue of events waiting for it to open
// (events::PendingQueue), and the wiring of its signals: received messages are pushed straight into
// the call's event source for that direction (on webrtcbin's thread, which is allowed: the source
// is thread safe and never blocks; with rteventsrc the filter and meter run right there), open,
// close and error are posted to the main loop. Sending goes through its ChannelSender, which the
// event path may also use from its streaming thread (`direct()`, channel_sender.h).
//
// Threads: public methods on the main loop only.
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "calls/channel_sender.h"
#include "calls/media_gate.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "events/event_relay.h"

namespace rtgw::calls {

class EventChannel {
 public:
  // The label of the one data channel a call relays: the gateway opens it towards the worker and
  // accepts only it from the client.
  static constexpr const char* kLabel = "oai-events";
  // Largest message webrtcbin 1.22 can carry (it advertises no a=max-message-size).
  static constexpr std::size_t kMaxMessageBytes = 65536;

  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnEventChannelOpen(EventChannel& channel) = 0;
    virtual void OnEventChannelClosed(EventChannel& channel, const std::string& why) = 0;
  };

  // kBackpressure: the channel is open but its peer does not read: its buffered amount would
  // pass the outgoing bound (the message is not sent).
  enum class SendResult { kSent, kQueued, kTooLarge, kQueueFull, kBackpressure, kFailed };
  // Rewrites a received event before it enters the event path (nullopt: unchanged). Pure and
  // thread safe: it runs on webrtcbin's thread.
  using Transform = std::optional<std::string> (*)(std::string_view text);

  EventChannel(std::string side, std::int64_t max_message_bytes, std::int64_t max_pending_bytes,
               std::int64_t max_outgoing_bytes, Listener* listener);
  ~EventChannel();
  EventChannel(const EventChannel&) = delete;
  EventChannel& operator=(const EventChannel&) = delete;

  // Attaches the channel. Safe to call on the webrtcbin thread that announced it (its message
  // handler must be connected there so nothing that follows is missed); the rest is posted.
  // A message longer than `max_transform_bytes` enters the path untransformed (the filter refuses
  // it by size before anything parses it). With a `gate`, received events pass through it (held
  // until the call's peers are verified).
  static void wire_inbound(GstWebRTCDataChannel* channel, Ref<GstElement> inbound_source,
                           Transform transform = nullptr,
                           std::size_t max_transform_bytes = kMaxMessageBytes,
                           std::shared_ptr<MediaGate> gate = nullptr);
  void attach(Ref<GstWebRTCDataChannel> channel, bool already_open);
  // The sender for the event path's streaming thread (events::EventPath::set_direct), which sends
  // `prepare(text)` directly once the channel is open and its pending queue sent. Before the
  // pipeline runs.
  std::shared_ptr<events::DirectSink> direct(ChannelSender::Prepare prepare);
  // Main loop: from now on only the main loop sends (what the direct path would send must be
  // seen there first, e.g. dropped while the client is gone).
  void stop_direct() { sender_->stop_direct(); }

  // Sends now if open, else queues (bounded in bytes).
  SendResult send(const std::string& text);
  // Starts closing an open channel (the peer is told); returns false when there is nothing to
  // wait for. The listener hears OnEventChannelClosed when it is done.
  bool begin_close();
  // Final: forgets the channel's signals and queue. The pipeline must be stopped after it.
  void close();
  bool closing() const { return closing_ && !closed_; }

  const std::string& side() const { return side_; }
  bool open() const { return open_; }
  std::int64_t max_message_bytes() const { return max_message_bytes_; }
  std::uint64_t sent() const { return sender_->sent(); }
  std::uint64_t sent_direct() const { return sender_->sent_direct(); }
  std::int64_t pending_bytes() const { return pending_.bytes(); }
  std::int64_t max_outgoing_bytes() const { return max_outgoing_bytes_; }
  // Bytes sent but not yet taken by SCTP (the channel's `buffered-amount`); 0 when not open.
  std::uint64_t buffered_amount() const;

 private:
  void flush();
  void opened();
  void on_closed(const std::string& why);

  std::string side_;
  std::int64_t max_message_bytes_;
  std::int64_t max_outgoing_bytes_;
  Listener* listener_;
  Ref<GstWebRTCDataChannel> channel_;
  std::vector<SignalConnection> signals_;
  bool open_ = false;
  bool closed_ = false;
  bool closing_ = false;
  events::PendingQueue pending_;  // until the channel opens
  // Shared with the event path's streaming thread; the only way anything is sent.
  std::shared_ptr<ChannelSender> sender_;
  bool direct_ = false;  // direct() was asked for
  Lifetime lifetime_;    // checked by every callback posted from webrtcbin's threads
};

}  // namespace rtgw::calls
