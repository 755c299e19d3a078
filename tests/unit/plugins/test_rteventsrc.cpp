// SPDX-License-Identifier: MIT
// rteventsrc: events pushed with push-buffer go downstream in the pushing thread, whole and in
// order, with no thread of the element's own; held until PLAYING, refused when stopped.
#include <gst/app/gstappsink.h>
#include <gtest/gtest.h>

#include <dirent.h>

#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

// Threads of this process now.
int thread_count() {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  int n = 0;
  while (const dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.') n++;
  closedir(dir);
  return n;
}

class Path {
 public:
  explicit Path(const char* source = "rteventsrc name=src") {
    const std::string description =
        std::string(source) + " ! appsink name=sink sync=false async=false emit-signals=false";
    GError* raw = nullptr;
    pipeline_ = Ref<GstElement>::sink(gst_parse_launch(description.c_str(), &raw));
    UniqueError error(raw);
    EXPECT_FALSE(error) << error->message;
    src_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "src"));
    sink_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "sink"));
  }
  ~Path() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

  GstStateChangeReturn set_state(GstState state) {
    return gst_element_set_state(pipeline_.get(), state);
  }
  GstFlowReturn push(std::string_view text) {
    GstFlowReturn ret = GST_FLOW_ERROR;
    g_signal_emit_by_name(src_.get(), "push-buffer", make_buffer(text).get(), &ret);
    return ret;
  }
  Ref<GstSample> pull(GstClockTime timeout = GST_SECOND) {
    return Ref<GstSample>::adopt(gst_app_sink_try_pull_sample(GST_APP_SINK(sink_.get()), timeout));
  }
  std::string pull_text(GstClockTime timeout = GST_SECOND) {
    auto sample = pull(timeout);
    return sample ? buffer_text(gst_sample_get_buffer(sample.get())) : "";
  }
  GstElement* src() const { return src_.get(); }
  GstElement* sink() const { return sink_.get(); }

 private:
  Ref<GstElement> pipeline_;
  Ref<GstElement> src_;
  Ref<GstElement> sink_;
};

TEST(RtEventSrc, PushGoesDownstreamInThePushingThreadWithStickyEvents) {
  Path path;
  ASSERT_NE(path.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  // Where the buffer crossed the src pad.
  GThread* seen_in = nullptr;
  auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(path.src(), "src"));
  gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo*, gpointer data) {
        *static_cast<GThread**>(data) = g_thread_self();
        return GST_PAD_PROBE_OK;
      },
      &seen_in, nullptr);

  ASSERT_EQ(path.push(R"({"type":"session.update"})"), GST_FLOW_OK);
  EXPECT_EQ(seen_in, g_thread_self()) << "the buffer went downstream in another thread";
  auto sample = path.pull();
  ASSERT_TRUE(sample);
  EXPECT_EQ(buffer_text(gst_sample_get_buffer(sample.get())), R"({"type":"session.update"})");
  // Stamped with the running time; caps and a TIME segment came first.
  EXPECT_TRUE(GST_BUFFER_PTS_IS_VALID(gst_sample_get_buffer(sample.get())));
  GstCaps* caps = gst_sample_get_caps(sample.get());
  ASSERT_TRUE(caps);
  EXPECT_TRUE(
      gst_structure_has_name(gst_caps_get_structure(caps, 0), "application/x-realtime-event"));
  ASSERT_TRUE(gst_sample_get_segment(sample.get()));
  EXPECT_EQ(gst_sample_get_segment(sample.get())->format, GST_FORMAT_TIME);
  auto start = Ref<GstEvent>::adopt(gst_pad_get_sticky_event(pad.get(), GST_EVENT_STREAM_START, 0));
  EXPECT_TRUE(start);
}

TEST(RtEventSrc, HasNoThreadOfItsOwnWhereAppsrcHasOne) {
  {  // Whatever GStreamer starts once per process is started before counting.
    Path warm;
    warm.set_state(GST_STATE_PLAYING);
    warm.push("{}");
    warm.pull();
  }
  int ours = 0, appsrc = 0;
  {
    const int before = thread_count();
    Path path;
    path.set_state(GST_STATE_PLAYING);
    ASSERT_EQ(path.push("{}"), GST_FLOW_OK);
    ASSERT_FALSE(path.pull_text().empty());
    ours = thread_count() - before;
  }
  {
    // The same count sees appsrc's streaming thread: the measure can fail.
    const int before = thread_count();
    Path path("appsrc name=src is-live=true format=time caps=application/x-realtime-event");
    path.set_state(GST_STATE_PLAYING);
    ASSERT_EQ(path.push("{}"), GST_FLOW_OK);
    ASSERT_FALSE(path.pull_text().empty());
    appsrc = thread_count() - before;
  }
  EXPECT_EQ(ours, 0);
  EXPECT_GE(appsrc, 1);
}

TEST(RtEventSrc, HoldsWhatIsPushedBeforePlayingAndReleasesItInOrder) {
  Path path;
  ASSERT_EQ(path.set_state(GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
  for (const char* text : {"1", "2", "3"}) ASSERT_EQ(path.push(text), GST_FLOW_OK);
  EXPECT_FALSE(path.pull(100 * GST_MSECOND)) << "a buffer left before PLAYING";
  ASSERT_NE(path.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_EQ(path.push("4"), GST_FLOW_OK);
  for (const char* text : {"1", "2", "3", "4"}) EXPECT_EQ(path.pull_text(), text);
}

TEST(RtEventSrc, RefusesWhenStoppedAndAfterEndOfStream) {
  Path path;
  EXPECT_EQ(path.push("{}"), GST_FLOW_FLUSHING);  // NULL
  path.set_state(GST_STATE_READY);
  EXPECT_EQ(path.push("{}"), GST_FLOW_FLUSHING);
  path.set_state(GST_STATE_PLAYING);
  ASSERT_EQ(path.push("a"), GST_FLOW_OK);
  // (appsink holds EOS back in the pushing thread until its queue is read.)
  EXPECT_EQ(path.pull_text(), "a");
  GstFlowReturn ret = GST_FLOW_ERROR;
  g_signal_emit_by_name(path.src(), "end-of-stream", &ret);
  EXPECT_EQ(ret, GST_FLOW_OK);
  EXPECT_EQ(path.push("b"), GST_FLOW_EOS);
  EXPECT_FALSE(path.pull(100 * GST_MSECOND));
  EXPECT_TRUE(gst_app_sink_is_eos(GST_APP_SINK(path.sink())));
  // Held events are dropped by a stop, and a restart starts clean.
  path.set_state(GST_STATE_PAUSED);
  path.set_state(GST_STATE_READY);
  path.set_state(GST_STATE_PAUSED);
  ASSERT_EQ(path.push("held"), GST_FLOW_OK);
  path.set_state(GST_STATE_READY);
  path.set_state(GST_STATE_PLAYING);
  ASSERT_EQ(path.push("c"), GST_FLOW_OK);
  EXPECT_EQ(path.pull_text(), "c");
}

TEST(RtEventSrc, ConcurrentPushersLoseNothingAndKeepTheirOrder) {
  Path path;
  g_object_set(path.sink(), "max-buffers", 0u, "drop", FALSE, nullptr);
  path.set_state(GST_STATE_PLAYING);
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::thread> pushers;
  for (int t = 0; t < kThreads; ++t)
    pushers.emplace_back([&path, t] {
      for (int i = 0; i < kEach; ++i)
        EXPECT_EQ(path.push(std::to_string(t) + ":" + std::to_string(i)), GST_FLOW_OK);
    });
  for (auto& p : pushers) p.join();
  std::vector<int> next(kThreads, 0);
  for (int n = 0; n < kThreads * kEach; ++n) {
    const std::string text = path.pull_text();
    ASSERT_FALSE(text.empty()) << "only " << n << " events came out";
    const int t = std::stoi(text.substr(0, text.find(':')));
    const int i = std::stoi(text.substr(text.find(':') + 1));
    ASSERT_EQ(i, next[t]) << "thread " << t << "'s events out of order";
    next[t]++;
  }
}

}  // namespace
}  // namespace rtgw::rtevents::test
