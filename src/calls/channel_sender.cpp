// SPDX-License-Identifier: MIT
#include "calls/channel_sender.h"

namespace rtgw::calls {

void ChannelSender::open(std::unique_ptr<Wire> wire) {
  std::lock_guard lock(mutex_);
  wire_ = std::move(wire);
}

void ChannelSender::allow_direct() {
  std::lock_guard lock(mutex_);
  direct_ = wire_ && !direct_stopped_;
}

void ChannelSender::close() {
  std::unique_ptr<Wire> gone;
  {
    std::lock_guard lock(mutex_);
    gone = std::move(wire_);
    direct_ = false;
  }
  // The channel reference is dropped outside the lock.
}

void ChannelSender::stop_direct() {
  std::lock_guard lock(mutex_);
  direct_ = false;
  direct_stopped_ = true;
}

bool ChannelSender::fits(std::uint64_t size) {
  // webrtcbin buffers without limit what SCTP cannot send yet (a peer that does not read).
  return wire_->buffered_amount() + size <= static_cast<std::uint64_t>(max_outgoing_bytes_);
}

ChannelSender::Result ChannelSender::send(const std::string& text, bool bounded, std::string* why) {
  std::lock_guard lock(mutex_);
  if (!wire_) {
    if (why) *why = "channel closed";
    return Result::kFailed;
  }
  if (bounded && !fits(text.size())) return Result::kBackpressure;
  if (!wire_->send(text, why)) return Result::kFailed;
  sent_.fetch_add(1, std::memory_order_relaxed);
  return Result::kSent;
}

std::uint64_t ChannelSender::buffered_amount() {
  std::lock_guard lock(mutex_);
  return wire_ ? wire_->buffered_amount() : 0;
}

bool ChannelSender::try_send(const std::string& text) {
  // The pure step first, outside the lock (it may parse the event).
  std::optional<std::string> out;
  if (!prepare_)
    out = text;
  else
    out = prepare_(text);
  std::lock_guard lock(mutex_);
  // Anything the main loop must handle, or that would be refused there, goes there (and the
  // error or the queue is decided there, as before); so does everything after it.
  const bool direct = direct_ && in_flight_ == 0 && wire_ && out &&
                      static_cast<std::int64_t>(out->size()) <= max_message_bytes_ &&
                      fits(out->size()) && wire_->send(*out, nullptr);
  if (direct) {
    sent_.fetch_add(1, std::memory_order_relaxed);
    sent_direct_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  in_flight_++;
  return false;
}

void ChannelSender::settled() {
  std::lock_guard lock(mutex_);
  if (in_flight_ > 0) in_flight_--;
}

bool DataChannelWire::send(const std::string& text, std::string* why) {
  UniqueError err;
  if (gst_webrtc_data_channel_send_string_full(channel_.get(), text.c_str(), ErrorOut(err)))
    return true;
  if (why) *why = err ? err->message : "?";
  return false;
}

std::uint64_t DataChannelWire::buffered_amount() {
  guint64 amount = 0;
  g_object_get(channel_.get(), "buffered-amount", &amount, nullptr);
  return amount;
}

}  // namespace rtgw::calls
