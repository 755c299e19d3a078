// SPDX-License-Identifier: MIT
#include "webrtc/receive_bypass.h"

namespace rtgw::webrtc {
namespace {

GST_DEBUG_CATEGORY_STATIC(bypass_debug);
#define GST_CAT_DEFAULT bypass_debug

std::atomic<bool> bypass_enabled{true};

void init_debug() {
  static bool done = [] {
    GST_DEBUG_CATEGORY_INIT(bypass_debug, "rtgwbypass", 0, "receive-queue bypass");
    return true;
  }();
  (void)done;
}

bool has_factory(GstElement* element, const char* name) {
  GstElementFactory* factory = element ? gst_element_get_factory(element) : nullptr;
  return factory && g_strcmp0(GST_OBJECT_NAME(factory), name) == 0;
}

// A probe's user data: the bypass, and a reference to the element that holds it.
struct ProbeData {
  ReceiveBypass* bypass;
  Ref<GstElement> owner;
};

Ref<GstElement> parent_of(GstPad* pad) {
  return Ref<GstElement>::adopt(pad ? GST_ELEMENT(gst_pad_get_parent(pad)) : nullptr);
}

}  // namespace

void set_receive_queue_bypass(bool enabled) { bypass_enabled.store(enabled); }
bool receive_queue_bypass_enabled() { return bypass_enabled.load(); }

ReceiveBypass::~ReceiveBypass() { unbind(); }

bool ReceiveBypass::bind(GstElement* owner, GstPad* src_pad) {
  init_debug();
  unbind();
  if (!receive_queue_bypass_enabled()) return false;
  // src_pad -> capsfilter -> queue -> dtlssrtpdec (transportreceivebin 1.22).
  auto filter_sink = Ref<GstPad>::adopt(gst_pad_get_peer(src_pad));
  Ref<GstElement> filter = parent_of(filter_sink.get());
  if (!has_factory(filter.get(), "capsfilter")) return false;
  auto filter_src = Ref<GstPad>::adopt(gst_element_get_static_pad(filter.get(), "src"));
  auto queue_sink = Ref<GstPad>::adopt(filter_src ? gst_pad_get_peer(filter_src.get()) : nullptr);
  Ref<GstElement> queue = parent_of(queue_sink.get());
  if (!has_factory(queue.get(), "queue")) return false;
  auto queue_src = Ref<GstPad>::adopt(gst_element_get_static_pad(queue.get(), "src"));
  auto decoder_sink = Ref<GstPad>::adopt(queue_src ? gst_pad_get_peer(queue_src.get()) : nullptr);
  if (!decoder_sink) return false;
  queue_ = std::move(queue);
  queue_sink_ = std::move(queue_sink);
  queue_src_ = std::move(queue_src);
  decoder_sink_ = std::move(decoder_sink);
  mode_.store(Mode::kQueued);
  restart_pending_ = false;
  // The probes keep `owner` (which holds this object) alive while they can still run.
  queue_sink_probe_ =
      gst_pad_add_probe(queue_sink_.get(), GST_PAD_PROBE_TYPE_BUFFER, on_queue_sink,
                        UserData<ProbeData>::make(ProbeData{this, Ref<GstElement>::retain(owner)}),
                        &UserData<ProbeData>::destroy);
  decoder_sink_probe_ =
      gst_pad_add_probe(decoder_sink_.get(), GST_PAD_PROBE_TYPE_BUFFER, on_decoder_sink,
                        UserData<ProbeData>::make(ProbeData{this, Ref<GstElement>::retain(owner)}),
                        &UserData<ProbeData>::destroy);
  GST_DEBUG_OBJECT(owner, "bypass bound to %" GST_PTR_FORMAT, queue_.get());
  return true;
}

void ReceiveBypass::unbind() {
  if (queue_sink_ && queue_sink_probe_) gst_pad_remove_probe(queue_sink_.get(), queue_sink_probe_);
  if (decoder_sink_ && decoder_sink_probe_)
    gst_pad_remove_probe(decoder_sink_.get(), decoder_sink_probe_);
  queue_sink_probe_ = decoder_sink_probe_ = 0;
  // A task we stopped and nobody started again: the queue's own deactivation (before this, in
  // transportreceivebin's READY->NULL) has joined it already.
  queue_ = nullptr;
  queue_sink_ = nullptr;
  queue_src_ = nullptr;
  decoder_sink_ = nullptr;
  mode_.store(Mode::kQueued);
  restart_pending_ = false;
}

bool ReceiveBypass::passing() const { return !gst_pad_is_blocked(queue_src_.get()); }

bool ReceiveBypass::decoder_has_segment() const {
  // Sticky events go before the first buffer, in order: a segment on dtlssrtpdec's sink means
  // stream-start and caps went too, so a buffer chained straight in is in a configured stream.
  GstEvent* segment = gst_pad_get_sticky_event(decoder_sink_.get(), GST_EVENT_SEGMENT, 0);
  if (!segment) return false;
  gst_event_unref(segment);
  return true;
}

bool ReceiveBypass::queue_empty() const {
  guint buffers = 1;
  g_object_get(queue_.get(), "current-level-buffers", &buffers, nullptr);
  return buffers == 0;
}

GstFlowReturn ReceiveBypass::push(GstPad* src_pad, GstBuffer* buffer) {
  if (!queue_) return gst_pad_push(src_pad, buffer);
  Mode mode = mode_.load(std::memory_order_acquire);
  if (mode == Mode::kDirect && !passing()) {
    // Blocked again (ICE left connected, or BLOCK): from this packet on, the queue's thread.
    mode_.store(Mode::kQueued, std::memory_order_release);
    restart_pending_ = true;
    mode = Mode::kQueued;
    GST_DEBUG_OBJECT(queue_.get(), "bypass: blocked, back to the queue");
  }
  if (mode == Mode::kQueued) {
    if (restart_pending_) try_restart_task();
    if (!restart_pending_ && passing() && decoder_has_segment()) mode = Mode::kDraining;
  }
  if (mode != Mode::kDraining) return gst_pad_push(src_pad, buffer);
  // DIRECT is decided by the queue's thread under this lock; held across the enqueue so it never
  // sees an empty queue with a packet on its way in.
  std::lock_guard<std::mutex> lock(mutex_);
  if (mode_.load() == Mode::kQueued) {
    mode_.store(Mode::kDraining, std::memory_order_release);
    GST_DEBUG_OBJECT(queue_.get(), "bypass: draining the queue");
  } else if (mode_.load() == Mode::kDraining && !passing()) {
    mode_.store(Mode::kQueued, std::memory_order_release);
  }
  return gst_pad_push(src_pad, buffer);
}

// The ICE thread (rtgw-ice-N), in the push through the capsfilter (queue sink's stream lock held).
GstPadProbeReturn ReceiveBypass::on_queue_sink(GstPad*, GstPadProbeInfo* info, gpointer data) {
  ReceiveBypass* self = UserData<ProbeData>::from(data).bypass;
  if (self->mode_.load(std::memory_order_acquire) != Mode::kDirect) return GST_PAD_PROBE_OK;
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  GST_PAD_PROBE_INFO_DATA(info) = nullptr;
  GstFlowReturn ret = gst_pad_chain(self->decoder_sink_.get(), buffer);
  self->direct_.fetch_add(1, std::memory_order_relaxed);
  // A flushing or stopped decoder is reported to the source as the queue would (which ignores
  // both); HANDLED means the buffer was consumed here.
  GST_PAD_PROBE_INFO_FLOW_RETURN(info) = ret;
  return GST_PAD_PROBE_HANDLED;
}

// dtlssrtpdec's sink, under its stream lock: the queue's thread (DRAINING), or the ICE thread
// (DIRECT).
GstPadProbeReturn ReceiveBypass::on_decoder_sink(GstPad*, GstPadProbeInfo*, gpointer data) {
  ReceiveBypass* self = UserData<ProbeData>::from(data).bypass;
  if (self->mode_.load(std::memory_order_acquire) != Mode::kDraining) return GST_PAD_PROBE_OK;
  std::unique_lock<std::mutex> lock(self->mutex_, std::try_to_lock);
  // Busy: the ICE thread is enqueueing one more packet, which this thread will push next.
  if (!lock.owns_lock()) return GST_PAD_PROBE_OK;
  if (self->mode_.load() == Mode::kDraining && self->passing() && self->queue_empty())
    self->stop_own_task();
  return GST_PAD_PROBE_OK;
}

// The queue's thread, inside its last push: stops its own task without joining (a join from the
// task's thread would deadlock); the loop returns after this push and the thread leaves.
void ReceiveBypass::stop_own_task() {
  GstPad* pad = queue_src_.get();
  Ref<GstTask> task;
  GST_OBJECT_LOCK(pad);
  if (GST_PAD_TASK(pad)) task = Ref<GstTask>::retain(GST_PAD_TASK(pad));
  GST_OBJECT_UNLOCK(pad);
  if (!task) return;
  GST_OBJECT_LOCK(task.get());
  bool own = task->thread == g_thread_self() && GST_TASK_STATE(task.get()) == GST_TASK_STARTED;
  GST_OBJECT_UNLOCK(task.get());
  if (!own) return;  // not pushed by the queue's running task: stay in DRAINING
  gst_task_stop(task.get());
  mode_.store(Mode::kDirect, std::memory_order_release);
  switches_.fetch_add(1, std::memory_order_relaxed);
  GST_DEBUG_OBJECT(queue_.get(), "bypass: queue empty, its task stopped, direct from now on");
}

// the ICE thread. The pad's object lock is what gst_pad_start/pause/stop_task take: while it is
// held, nobody else changes the task, and a deactivating pad is already flagged flushing.
void ReceiveBypass::try_restart_task() {
  GstPad* pad = queue_src_.get();
  GST_OBJECT_LOCK(pad);
  GstTask* task = GST_PAD_TASK(pad);
  if (GST_PAD_IS_FLUSHING(pad) || !task) {
    // Being stopped or flushed: its own start (activation, flush-stop) brings the task back.
    restart_pending_ = false;
  } else {
    GST_OBJECT_LOCK(task);
    bool stopped = GST_TASK_STATE(task) == GST_TASK_STOPPED;
    bool running = task->running;
    GST_OBJECT_UNLOCK(task);
    if (!stopped) {
      restart_pending_ = false;  // someone (a flush) started or paused it already
    } else if (!running) {
      // The thread has left: join returns at once (and releases the pool reference start_task
      // took), then a new thread from the pool runs the queue's loop again.
      gst_task_join(task);
      gst_task_start(task);
      restart_pending_ = false;
      GST_DEBUG_OBJECT(queue_.get(), "bypass: queue task started again");
    }
    // else: its last push is still finishing; the next packet tries again (never wait here).
  }
  GST_OBJECT_UNLOCK(pad);
}

}  // namespace rtgw::webrtc
