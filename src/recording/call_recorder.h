// SPDX-License-Identifier: MIT
// A recorded call's recording branches: each audio direction's Opus RTP, as relayed, into an
// Ogg/Opus file, without decoding (SPEC "Telemetry, recording, transcripts").
//
// Built only for a call whose key or model matches `recording` (recording_plan.h): a call that
// is not recorded has none of this, no element, thread or probe. For each direction the call's
// pipeline gets a bin `recording_<direction>`:
//
//   <head> src pad ──probe──► appsrc (leaky downstream) ! rtpopusdepay ! opusparse ! oggmux
//                                 ! filesink (sync=false, async=false, unbuffered)
//
// where <head> is the direction's named chain head (client_audio_in, upstream_audio_in). The
// probe (after the media gate's, so nothing from an unverified peer is recorded) hands the
// packet to the appsrc by reference, no copy, and never blocks: the appsrc drops its oldest
// packets when its queue is full, and the relay never sees the branch's flow result, so a slow or
// failing disk cannot stall or end the call. The branch's one thread (the appsrc's) re-times each
// packet from its RTP timestamp (arrival times jitter: webrtcbin here forwards packets as they
// arrive, through rtpforward, with no jitterbuffer), so the file's duration is the sender's.
//
// At hang-up `finish()` sends EOS into both branches, so oggmux writes its last page and the
// file is a complete Ogg stream; the call's teardown waits for that (bounded) before its pipeline
// is stopped. A write error (full disk) stops that branch for good: logged once, counted
// (failures_total(): rtgw_recording_failures_total), and the call goes on.
//
// Owns: the two branches (their elements are the pipeline's), the probes on the heads.
//
// Threads: methods on the main loop; the probes on the streaming threads (the head's and the
// branch's own), which touch only their branch's atomics and post to the main loop.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "recording/recording_plan.h"
#include "recording/sidecar.h"

namespace rtgw::recording {

// Recording branches stopped by a write error since start-up (process-wide, any thread).
std::uint64_t failures_total();

class CallRecorder {
 public:
  struct Direction {
    std::string name;  // "client" or "upstream": the file's suffix
    std::string head;  // the pipeline element whose src pad carries that direction's RTP
  };

  // Adds one branch per direction to `pipeline` (before it starts). Throws std::runtime_error
  // when an element is missing (gstreamer1.0-plugins-good/-base/-bad).
  CallRecorder(GstElement* pipeline, RecordingPlan plan, const std::vector<Direction>& directions);
  ~CallRecorder();
  CallRecorder(const CallRecorder&) = delete;
  CallRecorder& operator=(const CallRecorder&) = delete;

  // After the call's pipeline went to PLAYING (main loop): starts the branches (their state is
  // locked until then). A branch whose file cannot be opened fails (logged, counted) and is
  // removed from `pipeline`; the call goes on.
  void start(GstElement* pipeline);
  // Hang-up: nothing more is recorded; EOS goes into every branch still running. Idempotent.
  void finish();
  // Teardown: when some branch has not written its end yet, calls `done` once they all have (or
  // failed), or after `bound_ms` at most (a stuck disk), and returns true; false (and `done` is
  // not called) when there is nothing to wait for.
  bool wait_finished(guint bound_ms, std::function<void()> done);
  // A bus error from one of the branches' elements: that branch stops (logged once, counted) and
  // true is returned; the call goes on. False for any other element's error.
  bool handle_error(GstMessage* message);
  // "recording", "finished" or "failed" per direction, and the files (GET /v1/realtime/calls/{id}).
  json::ObjectBuilder describe() const;

  // Internal: a branch (its probes hold it) and its report that its end is written (main loop).
  struct Branch;
  void on_branch_done();

 private:
  void fail(Branch& branch, const std::string& why);

  RecordingPlan plan_;
  std::vector<std::shared_ptr<Branch>> branches_;
  Sidecar sidecar_;  // who owns the files, when the call started and ended
  bool started_ = false;
  bool finishing_ = false;
  bool waited_ = false;
  std::function<void()> on_finished_;
  SourceGuard finish_bound_;
  Lifetime lifetime_;
};

}  // namespace rtgw::recording
