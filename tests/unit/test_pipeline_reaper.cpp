// SPDX-License-Identifier: MIT
// The pipeline reaper: a pipeline's state change to NULL runs off the main loop, the main loop
// keeps dispatching meanwhile, `done` comes back on the main loop, stopping twice is harmless, and
// the watchdog reports a stop that does not return.
//
// A tiny element whose READY→NULL change sleeps stands in for a webrtcbin that takes its time.
#include <gst/app/app.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "common/pipeline_reaper.h"
#include "common/ref.h"

namespace {

constexpr gulong kSlowStopUs = 500 * 1000;

std::atomic<GThread*> g_stopped_on{nullptr};
std::atomic<int> g_stops{0};

struct SlowStop {
  GstElement parent;
};
struct SlowStopClass {
  GstElementClass parent_class;
};

GType slow_stop_get_type();
G_DEFINE_TYPE(SlowStop, slow_stop, GST_TYPE_ELEMENT)

GstStateChangeReturn slow_stop_change_state(GstElement* element, GstStateChange transition) {
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) {
    g_stopped_on = g_thread_self();
    g_stops++;
    g_usleep(kSlowStopUs);
  }
  return GST_ELEMENT_CLASS(slow_stop_parent_class)->change_state(element, transition);
}

void slow_stop_class_init(SlowStopClass* klass) {
  GST_ELEMENT_CLASS(klass)->change_state = slow_stop_change_state;
  gst_element_class_set_static_metadata(GST_ELEMENT_CLASS(klass), "Slow stop", "Testing",
                                        "Sleeps while going to NULL", "rtgw");
}

void slow_stop_init(SlowStop*) {}

// A fake stuck stop: its READY→NULL change does not return until the test releases it (or 20 s
// pass, so a failing test cannot hang the suite).
std::atomic<bool> g_release_stuck{false};
std::atomic<bool> g_stuck_entered{false};

struct StuckStop {
  GstElement parent;
};
struct StuckStopClass {
  GstElementClass parent_class;
};

GType stuck_stop_get_type();
G_DEFINE_TYPE(StuckStop, stuck_stop, GST_TYPE_ELEMENT)

GstStateChangeReturn stuck_stop_change_state(GstElement* element, GstStateChange transition) {
  if (transition == GST_STATE_CHANGE_READY_TO_NULL) {
    g_stuck_entered = true;
    gint64 give_up = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    while (!g_release_stuck && g_get_monotonic_time() < give_up) g_usleep(1000);
  }
  return GST_ELEMENT_CLASS(stuck_stop_parent_class)->change_state(element, transition);
}

void stuck_stop_class_init(StuckStopClass* klass) {
  GST_ELEMENT_CLASS(klass)->change_state = stuck_stop_change_state;
  gst_element_class_set_static_metadata(GST_ELEMENT_CLASS(klass), "Stuck stop", "Testing",
                                        "Hangs going to NULL until released", "rtgw");
}

void stuck_stop_init(StuckStop*) {}

class PipelineReaperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gst_init(nullptr, nullptr);
    g_stopped_on = nullptr;
    g_stops = 0;
    loop_ = rtgw::Ref<GMainLoop>::adopt(g_main_loop_new(nullptr, FALSE));
  }

  // A playing pipeline holding one slow element; `finalized_on` records where it is freed.
  rtgw::Ref<GstElement> make_pipeline(GThread** finalized_on) {
    auto pipeline = rtgw::Ref<GstElement>::sink(gst_pipeline_new("reaped"));
    gst_bin_add(GST_BIN(pipeline.get()), GST_ELEMENT(g_object_new(slow_stop_get_type(), nullptr)));
    EXPECT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    g_object_weak_ref(
        G_OBJECT(pipeline.get()),
        [](gpointer data, GObject*) { *static_cast<GThread**>(data) = g_thread_self(); },
        finalized_on);
    return pipeline;
  }

  // Runs the main loop until quit or `bound` passes (then fails the test).
  void run_loop(guint bound_ms) {
    rtgw::SourceGuard guard(g_timeout_add(
        bound_ms,
        [](gpointer data) -> gboolean {
          ADD_FAILURE() << "the main loop was not quit in time";
          g_main_loop_quit(static_cast<GMainLoop*>(data));
          return G_SOURCE_REMOVE;
        },
        loop_.get()));
    g_main_loop_run(loop_.get());
  }

  rtgw::Ref<GMainLoop> loop_;
};

TEST_F(PipelineReaperTest, StopsOffTheMainLoopWhichKeepsDispatching) {
  GThread* finalized_on = nullptr;
  auto pipeline = make_pipeline(&finalized_on);
  GThread* main_thread = g_thread_self();

  // A 10 ms ticker records the longest gap between its runs while the slow stop is in progress.
  struct Ticks {
    int count = 0;
    gint64 last_us = g_get_monotonic_time();
    gint64 max_gap_us = 0;
  } ticks;
  rtgw::SourceGuard ticker(g_timeout_add(
      10,
      [](gpointer data) -> gboolean {
        auto* t = static_cast<Ticks*>(data);
        gint64 now = g_get_monotonic_time();
        t->max_gap_us = std::max(t->max_gap_us, now - t->last_us);
        t->last_us = now;
        t->count++;
        return G_SOURCE_CONTINUE;
      },
      &ticks));

  GThread* done_on = nullptr;
  gint64 t0 = g_get_monotonic_time();
  rtgw::stop_pipeline_async(std::move(pipeline), [&] {
    done_on = g_thread_self();
    g_main_loop_quit(loop_.get());
  });
  EXPECT_LT(g_get_monotonic_time() - t0, 50 * 1000) << "the hand-over blocked its caller";
  EXPECT_EQ(finalized_on, nullptr) << "freed before the reaper ran";
  run_loop(10000);

  EXPECT_EQ(g_stops.load(), 1);
  ASSERT_NE(g_stopped_on.load(), nullptr);
  EXPECT_NE(g_stopped_on.load(), main_thread) << "NULL state change ran on the calling thread";
  ASSERT_NE(finalized_on, nullptr) << "the reaper kept the pipeline";
  EXPECT_NE(finalized_on, main_thread) << "the last reference was dropped on the main loop";
  EXPECT_EQ(done_on, main_thread) << "done did not run on the main loop";
  EXPECT_GE(g_get_monotonic_time() - t0, static_cast<gint64>(kSlowStopUs));
  // The loop kept dispatching while the element slept for 500 ms.
  EXPECT_GE(ticks.count, 10);
  EXPECT_LT(ticks.max_gap_us, 250 * 1000) << "the main loop stalled";
  EXPECT_EQ(rtgw::pending_pipeline_reaps(), 0);
}

TEST_F(PipelineReaperTest, StoppingTwiceIsHarmless) {
  GThread* finalized_on = nullptr;
  auto pipeline = make_pipeline(&finalized_on);
  int done = 0;
  auto count = [&] {
    if (++done == 3) g_main_loop_quit(loop_.get());
  };
  rtgw::stop_pipeline_async(pipeline, count);
  rtgw::stop_pipeline_async(std::move(pipeline), count);
  rtgw::stop_pipeline_async({}, count);  // nothing to stop: done still comes
  run_loop(10000);
  EXPECT_TRUE(rtgw::wait_for_pipeline_reaps(std::chrono::seconds(5)));
  EXPECT_EQ(done, 3);
  EXPECT_EQ(g_stops.load(), 1) << "the element went READY→NULL more than once";
  EXPECT_NE(finalized_on, nullptr);
}

TEST_F(PipelineReaperTest, WaitForReapsIsBoundedAndReportsCompletion) {
  GThread* finalized_on = nullptr;
  rtgw::stop_pipeline_async(make_pipeline(&finalized_on));
  EXPECT_EQ(rtgw::pending_pipeline_reaps(), 1);
  // Still sleeping in its state change: a short bound times out.
  EXPECT_FALSE(rtgw::wait_for_pipeline_reaps(std::chrono::milliseconds(50)));
  EXPECT_TRUE(rtgw::wait_for_pipeline_reaps(std::chrono::seconds(5)));
  EXPECT_EQ(rtgw::pending_pipeline_reaps(), 0);
  EXPECT_NE(finalized_on, nullptr);
}

TEST_F(PipelineReaperTest, WaitsForReadinessWithinItsBound) {
  std::atomic<bool> closed{false};
  std::atomic<int> stops_when_ready{-1};
  GThread* finalized_on = nullptr;
  rtgw::StopOptions options;
  options.ready = [&] {
    if (!closed) return false;
    stops_when_ready = g_stops.load();
    return true;
  };
  options.max_wait = std::chrono::seconds(5);
  rtgw::stop_pipeline_async(make_pipeline(&finalized_on), {}, std::move(options));
  g_usleep(100 * 1000);
  EXPECT_EQ(g_stops.load(), 0) << "stopped before its close procedure finished";
  closed = true;
  EXPECT_TRUE(rtgw::wait_for_pipeline_reaps(std::chrono::seconds(5)));
  EXPECT_EQ(stops_when_ready.load(), 0);
  EXPECT_EQ(g_stops.load(), 1);

  // Never ready: the bound lets the stop proceed anyway.
  rtgw::StopOptions never;
  never.ready = [] { return false; };
  never.max_wait = std::chrono::milliseconds(100);
  rtgw::stop_pipeline_async(make_pipeline(&finalized_on), {}, std::move(never));
  EXPECT_TRUE(rtgw::wait_for_pipeline_reaps(std::chrono::seconds(5)));
  EXPECT_EQ(g_stops.load(), 2);
}

// Issue 14, reduced: a relayed call's leg-to-leg chain. A thread (here appsrc's; in a call the
// other leg's jitterbuffer) holds the stream lock of `x` (rtpptrewrite in a call) while its buffer
// waits for preroll in a sink inside bin `w` (the other webrtcbin's nicesink), because the
// pipeline is PAUSED. `x` is no longer linked to `w` (Call::unlink_legs) and `w` feeds `y` (the
// identity heading the other direction, itself unlinked), so neither `x` nor `y` is a sink and
// GstBin's sort picks among them by degree and then by list order: `x` (added last, so listed
// first) goes PAUSED -> READY before `w`, and stopping the pipeline as a whole waits for ever on
// x's stream lock (what gdb showed in the gateway). Stopping `w` first releases the buffer; `w` is
// locked in its state so the pipeline does not bring it back up (its READY -> NULL runs once).
TEST_F(PipelineReaperTest, StopsTheGivenBinsFirstSoABufferWaitingForPrerollCannotHangTheStop) {
  auto pipeline = rtgw::Ref<GstElement>::sink(gst_pipeline_new("legs"));
  GstBin* bin = GST_BIN(pipeline.get());
  GstElement* src = gst_element_factory_make("appsrc", "src");
  GstElement* x = gst_element_factory_make("identity", "x");
  GstElement* w = gst_bin_new("w");
  GstElement* sink = gst_element_factory_make("fakesink", "sink");
  GstElement* wout = gst_element_factory_make("identity", "wout");
  GstElement* y = gst_element_factory_make("identity", "y");
  ASSERT_TRUE(src && x && w && sink && wout && y);
  g_object_set(src, "format", GST_FORMAT_TIME, nullptr);
  g_object_set(sink, "async", FALSE, "sync", FALSE, "signal-handoffs", TRUE, nullptr);
  gst_bin_add_many(GST_BIN(w), sink, wout, GST_ELEMENT(g_object_new(slow_stop_get_type(), nullptr)),
                   nullptr);
  {
    auto target = rtgw::Ref<GstPad>::adopt(gst_element_get_static_pad(sink, "sink"));
    gst_element_add_pad(w, gst_ghost_pad_new("sink", target.get()));
    auto out = rtgw::Ref<GstPad>::adopt(gst_element_get_static_pad(wout, "src"));
    gst_element_add_pad(w, gst_ghost_pad_new("src", out.get()));
  }
  gst_bin_add_many(bin, y, w, src, x, nullptr);  // GstBin lists the last added first
  ASSERT_TRUE(gst_element_link_many(src, x, w, nullptr));
  ASSERT_TRUE(gst_element_link(w, y));
  auto w_ref = rtgw::Ref<GstElement>::retain(w);

  std::atomic<bool> prerolling{false};
  g_signal_connect(sink, "preroll-handoff",
                   G_CALLBACK(+[](GstElement*, GstBuffer*, GstPad*, gpointer flag) {
                     static_cast<std::atomic<bool>*>(flag)->store(true);
                   }),
                   &prerolling);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, 16, nullptr);
  GST_BUFFER_PTS(buffer) = 0;
  ASSERT_EQ(gst_app_src_push_buffer(GST_APP_SRC(src), buffer), GST_FLOW_OK);
  for (int i = 0; i < 500 && !prerolling; ++i) g_usleep(10 * 1000);
  ASSERT_TRUE(prerolling.load()) << "the buffer never reached the sink";
  g_usleep(50 * 1000);  // now waiting for preroll, holding x's stream lock
  {
    auto x_src = rtgw::Ref<GstPad>::adopt(gst_element_get_static_pad(x, "src"));
    auto peer = rtgw::Ref<GstPad>::adopt(gst_pad_get_peer(x_src.get()));
    ASSERT_TRUE(gst_pad_unlink(x_src.get(), peer.get()));
  }

  rtgw::StopOptions options;
  options.stop_first.push_back(w_ref);
  rtgw::stop_pipeline_async(std::move(pipeline), {}, std::move(options));
  EXPECT_TRUE(rtgw::wait_for_pipeline_reaps(std::chrono::seconds(10)))
      << "the NULL state change hung";
  EXPECT_EQ(GST_STATE(w_ref.get()), GST_STATE_NULL);
  EXPECT_EQ(g_stops.load(), 1) << "the stopped bin was brought back up by the pipeline";
}

// GStreamer 1.22's sctpdec can add a stream pad and start its task from the SCTP receive
// callback after its own stop removed its pads; that task waits for ever and freeing the
// pipeline hangs in gst_task_join(). Emulated here: after NULL, a pad is activated again and
// given a task that blocks until the pad is flushed. The reaper's sweep flushes and stops it.
TEST_F(PipelineReaperTest, ALeftoverPadTaskIsFlushedAndStoppedAfterNull) {
  auto pipeline = rtgw::Ref<GstElement>::sink(gst_pipeline_new("late"));
  GstElement* w = gst_bin_new("w");
  GstElement* e = gst_element_factory_make("identity", "e");
  ASSERT_TRUE(w && e);
  gst_bin_add(GST_BIN(w), e);
  gst_bin_add(GST_BIN(pipeline.get()), w);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_EQ(gst_element_set_state(pipeline.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  EXPECT_EQ(rtgw::stop_leftover_pad_tasks(pipeline.get()), 0);

  // sctpdec's stream pad: its task waits in a data queue that only a FLUSH_START event on the pad
  // (or the element's own stop) flushes; deactivating the pad does not wake it.
  static std::atomic<bool> queue_flushed;
  queue_flushed = false;
  auto pad = rtgw::Ref<GstPad>::adopt(gst_element_get_static_pad(e, "src"));
  gst_pad_set_event_function(pad.get(), [](GstPad* p, GstObject* parent, GstEvent* event) {
    if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_START) queue_flushed = true;
    return gst_pad_event_default(p, parent, event);
  });
  ASSERT_TRUE(gst_pad_set_active(pad.get(), TRUE));
  ASSERT_TRUE(gst_pad_start_task(
      pad.get(),
      [](gpointer data) {
        while (!queue_flushed) g_usleep(1000);
        gst_pad_pause_task(static_cast<GstPad*>(data));
      },
      pad.get(), nullptr));
  g_usleep(20 * 1000);

  EXPECT_EQ(rtgw::stop_leftover_pad_tasks(pipeline.get()), 1);
  GST_OBJECT_LOCK(pad.get());
  EXPECT_EQ(GST_PAD_TASK(pad.get()), nullptr);
  GST_OBJECT_UNLOCK(pad.get());
  EXPECT_EQ(rtgw::stop_leftover_pad_tasks(pipeline.get()), 0);
  pad.reset();
  pipeline.reset();  // would join the task for ever without the sweep
}

// The watchdog: a stop whose set_state(NULL) does not return within the bound is logged loudly and
// counted (rtgw_pipeline_stops_stuck, rtgw_pipeline_stops_stuck_total), while the main loop keeps
// dispatching; when it ends after all, it is no longer counted as stuck now.
TEST_F(PipelineReaperTest, AStuckStopIsLoggedAndCountedWithoutBlockingTheMainLoop) {
  g_release_stuck = false;
  g_stuck_entered = false;
  rtgw::set_stuck_stop_bound(std::chrono::milliseconds(200));
  const rtgw::ReaperStats before = rtgw::reaper_stats();
  auto pipeline = rtgw::Ref<GstElement>::sink(gst_pipeline_new("stuck"));
  gst_bin_add(GST_BIN(pipeline.get()), GST_ELEMENT(g_object_new(stuck_stop_get_type(), nullptr)));
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  bool done = false;
  rtgw::stop_pipeline_async(std::move(pipeline), [&] { done = true; });
  // The main loop runs meanwhile: this waits on it, a tick at a time, for the watchdog's count.
  gint64 t0 = g_get_monotonic_time();
  gint64 max_gap_us = 0;
  gint64 last = t0;
  while (rtgw::reaper_stats().stuck_now == before.stuck_now &&
         g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC) {
    g_main_context_iteration(nullptr, FALSE);
    g_usleep(2000);
    gint64 now = g_get_monotonic_time();
    max_gap_us = std::max(max_gap_us, now - last);
    last = now;
  }
  EXPECT_TRUE(g_stuck_entered.load());
  rtgw::ReaperStats stuck = rtgw::reaper_stats();
  EXPECT_EQ(stuck.stuck_now, before.stuck_now + 1);
  EXPECT_EQ(stuck.stuck_total, before.stuck_total + 1);
  EXPECT_GE(g_get_monotonic_time() - t0, 200 * 1000) << "counted before the bound";
  EXPECT_LT(max_gap_us, 250 * 1000) << "the main loop stalled";
  EXPECT_FALSE(done);
  // Counted once, however long it stays stuck.
  g_usleep(300 * 1000);
  EXPECT_EQ(rtgw::reaper_stats().stuck_total, before.stuck_total + 1);

  g_release_stuck = true;
  t0 = g_get_monotonic_time();
  while (!done && g_get_monotonic_time() - t0 < 5 * G_USEC_PER_SEC) {
    g_main_context_iteration(nullptr, FALSE);
    g_usleep(1000);
  }
  EXPECT_TRUE(done);
  rtgw::ReaperStats after = rtgw::reaper_stats();
  EXPECT_EQ(after.stuck_now, before.stuck_now);
  EXPECT_EQ(after.stuck_total, before.stuck_total + 1);
  rtgw::set_stuck_stop_bound(rtgw::kStuckStopBound);
}

}  // namespace
