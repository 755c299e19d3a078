// SPDX-License-Identifier: MIT
// Stopping pipelines away from the main loop.
//
// Owns: the reaper, two long-lived worker threads (started on first use) and their queue, and the
// stuck-stop watchdog, a third thread started with them. A
// pipeline handed to `stop_pipeline_async()` is set to NULL on a reaper thread, never on the main
// loop or a streaming thread (as gst-plugins-rs webrtcsink does), and its reference is dropped
// there; `done_on_main` then runs on the main loop (default GMainContext).
//
// Threads: callers hand over on the main loop. Before the hand-over the caller has disconnected
// its bus watch, signal handlers and probes (or guards them with a liveness token), and keeps
// alive whatever data a remaining probe points at until `done_on_main` runs. At exit, the main
// thread calls `wait_for_pipeline_reaps()` before gst_deinit().
//
// The watchdog: a stop still running after the stuck-stop bound (set_state(NULL) has not
// returned: a hang in an element) holds a reaper thread for good, and two such hangs stop every
// later pipeline from being reaped. The watchdog thread notices it within a quarter of the bound,
// logs it loudly (the pipeline, the step it is in, for how long), and counts it
// (reaper_stats(): rtgw_pipeline_stops_stuck and rtgw_pipeline_stops_stuck_total); it logs again
// if the stop ends after all. It never touches the pipeline and never blocks the main loop.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/ref.h"

namespace rtgw {

struct StopOptions {
  // Polled on the reaper thread before the state change, until it returns true or `max_wait`
  // passes: for a close procedure that must finish first (a data channel's, WEBRTCBIN-NOTES).
  std::function<bool()> ready;
  std::chrono::milliseconds max_wait{400};
  // Elements of the pipeline set to NULL on the reaper thread, in this order, before the pipeline
  // is; each is locked in its state first (gst_element_set_locked_state) so that the pipeline's own
  // state change neither brings it back up (a bin child is always recursed into) nor reorders it.
  // For the webrtcbins of a relay: the pipeline's sorted state change deactivates an element
  // before the webrtcbin it feeds once their link is cut (or they form a cycle), while a buffer
  // from the other leg is waiting for preroll in that webrtcbin's sink and holds the element's
  // stream lock: the NULL state change then hangs for good (issue 14, call.cpp, echo_worker.cpp).
  std::vector<Ref<GstElement>> stop_first;
  // Elements whose sink pads get a flush-start on the reaper thread before any state change: it
  // sets every pad downstream of them flushing and wakes the pushes blocked there. For the
  // webrtcbins of a relay: 1.22's transportsendbin blocks its pads until DTLS is up, so a leg
  // that never connected holds the other leg's receiving thread inside its send path (with that
  // thread's stream locks), and stopping the other leg first waited for it for good (issue 22).
  std::vector<Ref<GstElement>> flush_first;
};

// Sets `pipeline` to NULL on a reaper thread, drops this reference there, then posts
// `done_on_main` (if any) to the main loop. An empty `pipeline` only posts `done_on_main`.
// Stopping the same pipeline twice is harmless.
void stop_pipeline_async(Ref<GstElement> pipeline, std::function<void()> done_on_main = {},
                         StopOptions options = {});

// Flushes and stops every pad task still running in `element` or below it once it is NULL, and
// returns how many it found. GStreamer 1.22's sctpdec (inside each webrtcbin) can create a stream
// pad and start its task from the SCTP receive callback after its own PAUSED -> READY removed its
// pads ("FIXME: make this threadsafe" in sctpdec_cleanup): that task then waits in its queue for
// ever and freeing the pipeline hangs in gst_task_join(). The reaper calls this after the NULL
// state change, before dropping the pipeline; it logs each such pad.
int stop_leftover_pad_tasks(GstElement* element);

// Pipelines handed over and not yet stopped.
int pending_pipeline_reaps();

// Default stuck-stop bound: far above a slow stop (a webrtcbin's takes up to ~1 s under load).
constexpr std::chrono::milliseconds kStuckStopBound{10000};
// Sets the stuck-stop bound (tests; the default is kStuckStopBound). Any thread.
void set_stuck_stop_bound(std::chrono::milliseconds bound);

struct ReaperStats {
  int stuck_now = 0;              // stops running longer than the bound right now
  std::uint64_t stuck_total = 0;  // stops that ever ran longer than the bound
};
// Any thread.
ReaperStats reaper_stats();

// Waits (at most `bound`) until every pipeline handed over so far is stopped. Returns false on
// timeout: a state change hangs, and the caller must not deinitialise GStreamer.
bool wait_for_pipeline_reaps(std::chrono::milliseconds bound);

}  // namespace rtgw
