// SPDX-License-Identifier: MIT
#include "calls/media_gate.h"

#include "events/event_path.h"

namespace rtgw::calls {

void MediaGate::push_event(GstElement* source, const char* data, gsize length) {
  // Fast path once open: the flush finished under the lock before the state changed.
  if (state_.load() == State::kOpen) {
    events::push_event(source, data, length);
    return;
  }
  std::lock_guard lock(mutex_);
  switch (state_.load()) {
    case State::kOpen:
      events::push_event(source, data, length);
      return;
    case State::kShut:
      events_dropped_.fetch_add(1);
      return;
    case State::kPending:
      if (held_bytes_ + static_cast<std::int64_t>(length) > max_held_bytes_) {
        events_dropped_.fetch_add(1);
        g_warning("event of %" G_GSIZE_FORMAT
                  " bytes dropped: the call's peers are not verified yet and %" G_GINT64_FORMAT
                  " bytes wait already",
                  length, held_bytes_);
        return;
      }
      held_.push_back({Ref<GstElement>::retain(source), std::string(data, length)});
      held_bytes_ += static_cast<std::int64_t>(length);
      events_held_.fetch_add(1);
      return;
  }
}

void MediaGate::gate_audio(const std::shared_ptr<MediaGate>& gate, GstPad* pad) {
  gst_pad_add_probe(
      pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      [](GstPad*, GstPadProbeInfo*, gpointer data) -> GstPadProbeReturn {
        auto& g = *static_cast<std::shared_ptr<MediaGate>*>(data);
        if (g->is_open()) return GST_PAD_PROBE_OK;
        g->audio_dropped_.fetch_add(1, std::memory_order_relaxed);
        return GST_PAD_PROBE_DROP;
      },
      UserData<std::shared_ptr<MediaGate>>::make(gate),
      &UserData<std::shared_ptr<MediaGate>>::destroy);
}

void MediaGate::open_gate() {
  std::lock_guard lock(mutex_);
  if (state_.load() != State::kPending) return;
  for (Held& h : held_) events::push_event(h.source.get(), h.text.data(), h.text.size());
  held_.clear();
  held_bytes_ = 0;
  state_.store(State::kOpen);
}

void MediaGate::shut() {
  std::lock_guard lock(mutex_);
  if (state_.load() == State::kShut) return;
  events_dropped_.fetch_add(held_.size());
  held_.clear();
  held_bytes_ = 0;
  state_.store(State::kShut);
}

}  // namespace rtgw::calls
