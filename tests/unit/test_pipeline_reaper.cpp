// SPDX-License-Identifier: MIT
// The pipeline reaper: a pipeline's state change to NULL runs off the main loop, the main loop
// keeps dispatching meanwhile, `done` comes back on the main loop, and stopping twice is harmless.
//
// A tiny element whose READY→NULL change sleeps stands in for a webrtcbin that takes its time.
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

}  // namespace
