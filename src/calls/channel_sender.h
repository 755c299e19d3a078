// SPDX-License-Identifier: MIT
// The send side of one `oai-events` data channel, shared by the main loop and the event path's
// streaming thread (issue 28: the event round trip under load).
//
// A relayed event used to cross the main loop between the event path's appsink and the data
// channel: one more thread wake-up per event, and under load a wait behind every other call's
// main-loop work. Once the event path has decided (the filter passed a client event, the meter
// saw an upstream one), `try_direct()` sends it from the thread it came out on, as long as
// nothing of the same direction is still on its way through the main loop: an event the main
// loop must see first (a response.create for the budget, a worker's event that is not a JSON
// object, one over the size or buffered bounds, anything before the channel opened) goes there,
// and every later event of that direction follows it there until the main loop has settled it.
// So the order per direction is the arrival order, whichever way each event went.
//
// Locks (GStreamer 1.22, webrtcdatachannel.c): gst_webrtc_data_channel_send_string_full takes
// only the channel's own lock (to check OPEN and add to buffered-amount, released before the
// push) and then its appsrc's queue lock (appsrc never blocks there: `block` is off); the
// `buffered-amount` getter takes the channel lock. Neither takes the PC lock, and webrtcbin never
// holds either of them while waiting for a PC lock (its enqueue_task takes only the object lock
// and the context's). So sending into the *other* leg's channel from one leg's pc thread (where
// on-message-string runs, PC lock held) cannot deadlock. `mutex_` here is taken before those
// and never while calling back into anything of ours.
//
// Owns: the channel reference while it is open for sending, the count of events of this
// direction handed to the main loop and not yet settled, the direct/sent counters.
//
// Threads: any; one mutex. `open()`, `allow_direct()`, `close()`, `stop_direct()` and `settled()`
// on the main loop.
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/ref.h"
#include "events/event_path.h"

namespace rtgw::calls {

class ChannelSender : public events::DirectSink {
 public:
  // What actually carries a message: the data channel (DataChannelWire) or a test double.
  class Wire {
   public:
    virtual ~Wire() = default;
    // Queues `text` for sending; false (with `why`) when the channel refused it.
    virtual bool send(const std::string& text, std::string* why) = 0;
    // Bytes sent but not yet taken by SCTP.
    virtual std::uint64_t buffered_amount() = 0;
  };
  enum class Result { kSent, kBackpressure, kFailed };
  // The direct path's last step before sending (any thread, pure): the text to send, or nullopt
  // when the main loop must see the event first.
  using Prepare = std::function<std::optional<std::string>(const std::string& text)>;

  ChannelSender(std::int64_t max_message_bytes, std::int64_t max_outgoing_bytes)
      : max_message_bytes_(max_message_bytes), max_outgoing_bytes_(max_outgoing_bytes) {}

  // Main loop: the channel is open (its pending queue is sent through send() next).
  void open(std::unique_ptr<Wire> wire);
  // Main loop: the pending queue is sent; events may go out from streaming threads from now on.
  void allow_direct();
  // Main loop: closing or closed: nothing more is sent, either way.
  void close();
  // Main loop: only the main loop sends from now on (e.g. the client is gone and what comes for
  // it is dropped there).
  void stop_direct();
  // Before the pipeline runs.
  void set_prepare(Prepare prepare) { prepare_ = std::move(prepare); }

  // Main loop (or any thread): sends now, refusing what would take the buffered amount past the
  // outgoing bound when `bounded`.
  Result send(const std::string& text, bool bounded, std::string* why);
  std::uint64_t buffered_amount();

  // events::DirectSink (the event path's streaming thread).
  bool try_send(const std::string& text) override;
  void settled() override;

  std::uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  std::uint64_t sent_direct() const { return sent_direct_.load(std::memory_order_relaxed); }

 private:
  bool fits(std::uint64_t size);  // mutex_ held

  const std::int64_t max_message_bytes_;
  const std::int64_t max_outgoing_bytes_;
  Prepare prepare_;
  std::mutex mutex_;  // guards wire_, direct_, in_flight_; held across each send
  std::unique_ptr<Wire> wire_;
  bool direct_ = false;
  bool direct_stopped_ = false;
  std::uint64_t in_flight_ = 0;  // handed to the main loop, not yet settled
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> sent_direct_{0};
};

// The real wire: a webrtcbin data channel.
class DataChannelWire : public ChannelSender::Wire {
 public:
  explicit DataChannelWire(Ref<GstWebRTCDataChannel> channel) : channel_(std::move(channel)) {}
  bool send(const std::string& text, std::string* why) override;
  std::uint64_t buffered_amount() override;

 private:
  Ref<GstWebRTCDataChannel> channel_;
};

}  // namespace rtgw::calls
