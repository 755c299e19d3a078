// SPDX-License-Identifier: MIT
// What a call lets through before both of its legs' peers are verified (SPEC "Media trust").
//
// Until both legs' DTLS certificates match their SDP fingerprints (webrtc/dtls_verifier.h),
// nothing one leg sends reaches the other: audio is dropped at the head of each relay chain, and
// events received on either data channel are held here (bounded, in arrival order) before they
// enter the event path, so neither the policy, the meter, the worker nor the client sees them.
// Once both legs are verified the held events go on, in order, and the gate stays open. On a
// failed verification the gate shuts for good: what it held is dropped (counted, logged by the
// call, which ends at once).
//
// Held, not refused: an honest peer's first event (a session.update sent on `on-open`) often
// arrives a few milliseconds before the main loop has checked the certificate.
//
// Owns: the held events and the counters of what was dropped.
//
// Threads: `push_event()` and the audio probe run on webrtcbin's threads; `open_gate()` and
// `shut()` on the main loop. One mutex guards the state and the queue; held events are pushed on
// while it is held (rteventsrc pushes downstream in the caller's thread and never calls back
// here), so an event arriving during the flush waits and keeps its place.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "common/ref.h"

namespace rtgw::calls {

class MediaGate {
 public:
  explicit MediaGate(std::int64_t max_held_bytes) : max_held_bytes_(max_held_bytes) {}

  // Into `source` (an event source of the call's event path): pushed now when open, held while
  // pending, dropped when shut or when the hold is full. Any thread.
  void push_event(GstElement* source, const char* data, gsize length);
  // Adds a probe to `pad` that drops buffers until the gate opens. The probe holds a reference to
  // this gate (the pad may outlive the call until the reaper stops the pipeline).
  static void gate_audio(const std::shared_ptr<MediaGate>& gate, GstPad* pad);

  // Main loop: both legs are verified; the held events go on.
  void open_gate();
  // Main loop: a leg failed verification; drop what is held, let nothing through from now on.
  void shut();

  bool is_open() const { return state_.load() == State::kOpen; }
  std::uint64_t events_held() const { return events_held_.load(); }
  std::uint64_t events_dropped() const { return events_dropped_.load(); }
  std::uint64_t audio_dropped() const { return audio_dropped_.load(); }

 private:
  enum class State { kPending, kOpen, kShut };
  struct Held {
    Ref<GstElement> source;
    std::string text;
  };

  const std::int64_t max_held_bytes_;
  std::atomic<State> state_{State::kPending};
  std::mutex mutex_;  // guards held_, held_bytes_ and the state's transitions
  std::deque<Held> held_;
  std::int64_t held_bytes_ = 0;
  std::atomic<std::uint64_t> events_held_{0};
  std::atomic<std::uint64_t> events_dropped_{0};
  std::atomic<std::uint64_t> audio_dropped_{0};
};

}  // namespace rtgw::calls
