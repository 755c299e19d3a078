// SPDX-License-Identifier: MIT
// The receive-queue bypass (webrtc/receive_bypass.h) on transportreceivebin's own shape,
// `head -> capsfilter -> queue (leaky, 5 MiB) -> sink`: packets go through the queue until it is
// drained, then straight from the pushing thread with the queue's task stopped; a block probe on
// the queue's src pad (transportreceivebin's BLOCK) sends them back through a restarted queue,
// never blocking the pusher; order is kept across every switch; teardown does not hang.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/ref.h"
#include "webrtc/receive_bypass.h"

namespace {

using rtgw::Ref;
using rtgw::webrtc::ReceiveBypass;
using Mode = ReceiveBypass::Mode;

bool wait_until(const std::function<bool()>& done, int ms = 5000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

struct Received {
  std::mutex mutex;
  std::vector<guint64> seq;
  std::vector<GThread*> threads;
  void add(GstBuffer* buffer) {
    std::lock_guard<std::mutex> lock(mutex);
    seq.push_back(GST_BUFFER_OFFSET(buffer));
    threads.push_back(g_thread_self());
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return seq.size();
  }
};

void on_handoff(GstElement*, GstBuffer* buffer, GstPad*, gpointer data) {
  static_cast<Received*>(data)->add(buffer);
}

GstPadProbeReturn hold(GstPad*, GstPadProbeInfo* info, gpointer) {
  if (GST_IS_EVENT(info->data) || GST_IS_QUERY(info->data)) return GST_PAD_PROBE_DROP;
  return GST_PAD_PROBE_OK;  // blocks, as transportreceivebin's pad_block
}

class ReceiveBypassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gst_init(nullptr, nullptr);
    rtgw::webrtc::set_receive_queue_bypass(true);
    GError* error = nullptr;
    pipeline_ = Ref<GstElement>::sink(gst_parse_launch(
        "identity name=head ! capsfilter caps=application/x-rtp ! queue name=q leaky=2 "
        "max-size-time=0 max-size-buffers=0 max-size-bytes=5242880 ! fakesink name=sink "
        "sync=false async=false signal-handoffs=true",
        &error));
    ASSERT_EQ(error, nullptr) << error->message;
    head_ = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "head"));
    auto sink = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "sink"));
    auto queue = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), "q"));
    queue_src_ = Ref<GstPad>::adopt(gst_element_get_static_pad(queue.get(), "src"));
    src_ = Ref<GstPad>::adopt(gst_element_get_static_pad(head_.get(), "src"));
    g_signal_connect(sink.get(), "handoff", G_CALLBACK(on_handoff), &received_);
    ASSERT_EQ(gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  }
  void TearDown() override {
    bypass_.unbind();
    if (pipeline_) gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  }

  void start_stream() {
    gst_pad_push_event(src_.get(), gst_event_new_stream_start("bypass-test"));
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_pad_push_event(src_.get(), gst_event_new_segment(&segment));
  }
  GstFlowReturn push() {
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, 100, nullptr);
    GST_BUFFER_OFFSET(buffer) = next_++;
    return bypass_.push(src_.get(), buffer);
  }
  GstTaskState task_state() {
    GST_OBJECT_LOCK(queue_src_.get());
    GstTask* task = GST_PAD_TASK(queue_src_.get());
    GstTaskState state = task ? GST_TASK_STATE(task) : GST_TASK_STOPPED;
    GST_OBJECT_UNLOCK(queue_src_.get());
    return state;
  }
  bool task_thread_gone() {
    GST_OBJECT_LOCK(queue_src_.get());
    GstTask* task = GST_PAD_TASK(queue_src_.get());
    bool gone = true;
    if (task) {
      GST_OBJECT_LOCK(task);
      gone = !task->running;
      GST_OBJECT_UNLOCK(task);
    }
    GST_OBJECT_UNLOCK(queue_src_.get());
    return gone;
  }
  void expect_in_order() {
    std::lock_guard<std::mutex> lock(received_.mutex);
    for (std::size_t i = 0; i < received_.seq.size(); ++i) ASSERT_EQ(received_.seq[i], i);
  }
  // Pushes until the queue is drained and the bypass is direct.
  void reach_direct() {
    ASSERT_TRUE(wait_until([&] {
      push();
      return bypass_.mode() == Mode::kDirect;
    })) << "mode "
        << static_cast<int>(bypass_.mode());
  }

  Ref<GstElement> pipeline_;
  Ref<GstElement> head_;
  Ref<GstPad> src_;
  Ref<GstPad> queue_src_;
  Received received_;
  ReceiveBypass bypass_;
  guint64 next_ = 0;
};

TEST_F(ReceiveBypassTest, DrainsThenPushesDirectOnTheCallersThreadWithTheQueueTaskStopped) {
  ASSERT_TRUE(bypass_.bind(head_.get(), src_.get()));
  start_stream();
  // The first packet has no stream on the decoder's side yet: it goes through the queue.
  push();
  EXPECT_EQ(bypass_.mode(), Mode::kQueued);
  ASSERT_TRUE(wait_until([&] { return received_.size() == 1; }));
  EXPECT_NE(received_.threads[0], g_thread_self());
  reach_direct();
  EXPECT_EQ(bypass_.switches(), 1u);
  EXPECT_EQ(task_state(), GST_TASK_STOPPED);
  ASSERT_TRUE(wait_until([&] { return task_thread_gone(); }));
  std::size_t before = received_.size();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(push(), GST_FLOW_OK);
  ASSERT_EQ(received_.size(), before + 50);  // synchronous: nothing waits in a queue
  {
    std::lock_guard<std::mutex> lock(received_.mutex);
    for (std::size_t i = before; i < received_.threads.size(); ++i)
      EXPECT_EQ(received_.threads[i], g_thread_self());
  }
  EXPECT_GE(bypass_.direct_packets(), 50u);
  expect_in_order();
}

TEST_F(ReceiveBypassTest, ABlockSendsPacketsBackThroughARestartedQueueWithoutBlockingThePusher) {
  ASSERT_TRUE(bypass_.bind(head_.get(), src_.get()));
  start_stream();
  reach_direct();
  ASSERT_TRUE(wait_until([&] { return task_thread_gone(); }));
  gulong block = gst_pad_add_probe(
      queue_src_.get(),
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM),
      hold, nullptr, nullptr);
  std::size_t before = received_.size();
  // These return at once (the queue takes them); the queue's thread holds them at the block.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(push(), GST_FLOW_OK);
  EXPECT_EQ(bypass_.mode(), Mode::kQueued);
  EXPECT_EQ(task_state(), GST_TASK_STARTED);
  ASSERT_TRUE(wait_until([&] { return gst_pad_is_blocking(queue_src_.get()); }));
  EXPECT_EQ(received_.size(), before);
  gst_pad_remove_probe(queue_src_.get(), block);
  ASSERT_TRUE(wait_until([&] { return received_.size() == before + 5; }));
  // Unblocked: drained again, then direct again.
  reach_direct();
  EXPECT_EQ(bypass_.switches(), 2u);
  for (int i = 0; i < 20; ++i) push();
  expect_in_order();
}

TEST_F(ReceiveBypassTest, KeepsOrderAcrossManySwitchesFromAnotherThread) {
  ASSERT_TRUE(bypass_.bind(head_.get(), src_.get()));
  start_stream();
  std::atomic<bool> stop{false};
  std::thread pusher([&] {
    while (!stop.load()) {
      push();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int round = 0; round < 20; ++round) {
    wait_until([&] { return bypass_.mode() == Mode::kDirect; }, 2000);
    gulong block = gst_pad_add_probe(
        queue_src_.get(),
        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM),
        hold, nullptr, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    gst_pad_remove_probe(queue_src_.get(), block);
  }
  stop = true;
  pusher.join();
  guint64 pushed = next_;
  ASSERT_TRUE(wait_until([&] { return received_.size() == pushed; })) << received_.size();
  expect_in_order();
  EXPECT_GE(bypass_.switches(), 2u);
}

TEST_F(ReceiveBypassTest, StopsWhileDirectWithoutHanging) {
  ASSERT_TRUE(bypass_.bind(head_.get(), src_.get()));
  start_stream();
  reach_direct();
  std::atomic<bool> stop{false};
  std::thread pusher([&] {
    while (!stop.load()) push();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(gst_element_set_state(pipeline_.get(), GST_STATE_READY), GST_STATE_CHANGE_SUCCESS);
  stop = true;
  pusher.join();
  EXPECT_EQ(push(), GST_FLOW_FLUSHING);
  bypass_.unbind();
  EXPECT_EQ(gst_element_set_state(pipeline_.get(), GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
}

TEST_F(ReceiveBypassTest, SwitchedOffKeepsTheQueue) {
  rtgw::webrtc::set_receive_queue_bypass(false);
  EXPECT_FALSE(bypass_.bind(head_.get(), src_.get()));
  start_stream();
  for (int i = 0; i < 20; ++i) push();
  ASSERT_TRUE(wait_until([&] { return received_.size() == 20; }));
  EXPECT_EQ(bypass_.mode(), Mode::kQueued);
  EXPECT_EQ(task_state(), GST_TASK_STARTED);
  {
    std::lock_guard<std::mutex> lock(received_.mutex);
    for (GThread* thread : received_.threads) EXPECT_NE(thread, g_thread_self());
  }
  expect_in_order();
  rtgw::webrtc::set_receive_queue_bypass(true);
}

TEST_F(ReceiveBypassTest, RefusesAGraphThatIsNotTransportReceiveBins) {
  // identity's src is linked to a capsfilter, but bind() is given the queue's own src pad.
  EXPECT_FALSE(bypass_.bind(head_.get(), queue_src_.get()));
}

}  // namespace
