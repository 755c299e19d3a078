// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rteventsrc
 * @title: rteventsrc
 *
 * The live source at the head of an event path: the application pushes one realtime event per
 * buffer with the `push-buffer` action signal (appsrc's signature), and the buffer goes
 * downstream at once, in the pushing thread. Unlike appsrc there is no queue and no streaming
 * thread: an event received on a webrtcbin data channel crosses the filter and the meter in the
 * thread that received it, one thread hop less per event and one thread less per path.
 *
 * ## Caps
 * src: `application/x-realtime-event` (one UTF-8 JSON event per buffer). Stream-start, caps and
 * a TIME segment go downstream before the first buffer after each start.
 *
 * ## Action signals
 * - `push-buffer` (GstBuffer*) → GstFlowReturn: pushes the buffer downstream and returns the
 *   downstream result. The buffer is not taken (the element takes its own reference), as with
 *   appsrc. A buffer without a PTS is stamped with the pipeline's running time.
 * - `end-of-stream` () → GstFlowReturn: sends EOS; later pushes return GST_FLOW_EOS until the
 *   element is restarted.
 *
 * ## States
 * A live source: READY→PAUSED and PLAYING→PAUSED return NO_PREROLL. Below PAUSED a push returns
 * GST_FLOW_FLUSHING. In PAUSED pushes are held, in order and without limit (like appsrc's
 * default), and go downstream when the element reaches PLAYING: a sink prerolling in PAUSED
 * would otherwise block the pushing thread. Held buffers are dropped at PAUSED→READY. A fatal
 * downstream result (not-linked, not-negotiated, error) is posted as an element error, as
 * basesrc does.
 *
 * ## Threads and locks
 * Any thread may push. Pushes are serialized by the src pad's stream lock, so each buffer goes
 * downstream whole and in the order its push took the lock; downstream elements run in the
 * pushing thread. The held queue and the state flags sit behind the element's own mutex, taken
 * inside the stream lock (never the other way round). The state change to PLAYING pushes the
 * held buffers from the thread that changes the state (the sinks are already PLAYING then).
 * Pushing while the pipeline goes down (the sinks already PAUSED, this element not yet) waits
 * in the sink until it stops, as appsrc's own thread would: stop pushing before stopping.
 *
 * ## Example
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 \
 *   rteventsrc name=client_events_in ! rteventfilter ! rtusagemeter direction=client ! fakesink
 * ]| runs and waits for events an application would push (gst-launch pushes none).
 */
#include "rteventsrc.h"

#include <deque>
#include <mutex>
#include <utility>

#include "common/ref.h"
#include "element_util.h"

GST_DEBUG_CATEGORY_STATIC(rt_event_src_debug);
#define GST_CAT_DEFAULT rt_event_src_debug

namespace {

using rtgw::Ref;

GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));

enum { SIGNAL_PUSH_BUFFER, SIGNAL_END_OF_STREAM, LAST_SIGNAL };
guint signals[LAST_SIGNAL];

struct EventSrcImpl {
  // Set in instance_init, constant afterwards (the element owns the pad).
  GstPad* srcpad = nullptr;

  // Behind `lock`, itself taken inside the src pad's stream lock.
  std::mutex lock;
  bool started = false;  // PAUSED or above
  bool playing = false;
  bool eos = false;       // end-of-stream was asked for (held or sent)
  bool eos_held = false;  // ... and waits for PLAYING behind the held buffers
  std::deque<Ref<GstBuffer>> held;

  // Behind the stream lock.
  bool sticky_sent = false;
};

}  // namespace

struct _RtEventSrc {
  GstElement parent;
  EventSrcImpl* impl;  // owned; see EventSrcImpl for locks
};

G_DEFINE_TYPE(RtEventSrc, rt_event_src, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(rteventsrc, "rteventsrc", GST_RANK_NONE, RT_TYPE_EVENT_SRC);

namespace {

// Stream-start, caps and segment, once per start. Stream lock held.
void send_sticky_events(RtEventSrc* self) {
  EventSrcImpl& impl = *self->impl;
  if (impl.sticky_sent) return;
  impl.sticky_sent = true;
  gchar* raw_id = gst_pad_create_stream_id(impl.srcpad, GST_ELEMENT(self), nullptr);
  rtgw::UniqueStr stream_id(raw_id);
  GstEvent* start = gst_event_new_stream_start(stream_id.get());
  gst_event_set_group_id(start, gst_util_group_id_next());
  gst_pad_push_event(impl.srcpad, start);
  auto caps = Ref<GstCaps>::adopt(gst_pad_get_pad_template_caps(impl.srcpad));
  gst_pad_push_event(impl.srcpad, gst_event_new_caps(caps.get()));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(impl.srcpad, gst_event_new_segment(&segment));
}

// The pipeline's running time now, or GST_CLOCK_TIME_NONE without a clock.
GstClockTime running_time(RtEventSrc* self) {
  auto clock = Ref<GstClock>::adopt(gst_element_get_clock(GST_ELEMENT(self)));
  if (!clock) return GST_CLOCK_TIME_NONE;
  const GstClockTime now = gst_clock_get_time(clock.get());
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  return now >= base ? now - base : 0;
}

// Sends one buffer downstream. Stream lock held.
GstFlowReturn push_downstream(RtEventSrc* self, Ref<GstBuffer> buffer) {
  EventSrcImpl& impl = *self->impl;
  send_sticky_events(self);
  GstBuffer* out = buffer.release();
  if (!GST_BUFFER_PTS_IS_VALID(out)) {
    out = gst_buffer_make_writable(out);
    GST_BUFFER_PTS(out) = running_time(self);
  }
  const GstFlowReturn ret = gst_pad_push(impl.srcpad, out);
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS)
    GST_ELEMENT_FLOW_ERROR(self, ret);
  else if (ret != GST_FLOW_OK)
    GST_DEBUG_OBJECT(self, "downstream returned %s", gst_flow_get_name(ret));
  return ret;
}

// Stream lock held.
void push_eos(RtEventSrc* self) {
  send_sticky_events(self);
  gst_pad_push_event(self->impl->srcpad, gst_event_new_eos());
}

GstFlowReturn push_buffer(RtEventSrc* self, GstBuffer* buffer) {
  EventSrcImpl& impl = *self->impl;
  GST_PAD_STREAM_LOCK(impl.srcpad);
  GstFlowReturn ret = GST_FLOW_OK;
  bool now = false;
  {
    std::lock_guard<std::mutex> guard(impl.lock);
    if (!impl.started)
      ret = GST_FLOW_FLUSHING;
    else if (impl.eos)
      ret = GST_FLOW_EOS;
    else if (!impl.playing)
      impl.held.push_back(Ref<GstBuffer>::retain(buffer));
    else
      now = true;
  }
  if (now) ret = push_downstream(self, Ref<GstBuffer>::retain(buffer));
  GST_PAD_STREAM_UNLOCK(impl.srcpad);
  return ret;
}

GstFlowReturn end_of_stream(RtEventSrc* self) {
  EventSrcImpl& impl = *self->impl;
  GST_PAD_STREAM_LOCK(impl.srcpad);
  GstFlowReturn ret = GST_FLOW_OK;
  bool now = false;
  {
    std::lock_guard<std::mutex> guard(impl.lock);
    if (!impl.started) {
      ret = GST_FLOW_FLUSHING;
    } else if (!impl.eos) {
      impl.eos = true;
      now = impl.playing;
      impl.eos_held = !now;
    }
  }
  if (now) push_eos(self);
  GST_PAD_STREAM_UNLOCK(impl.srcpad);
  return ret;
}

// PAUSED→PLAYING: what was held goes downstream, in order, before any later push.
void release_held(RtEventSrc* self) {
  EventSrcImpl& impl = *self->impl;
  GST_PAD_STREAM_LOCK(impl.srcpad);
  std::deque<Ref<GstBuffer>> held;
  bool eos = false;
  {
    std::lock_guard<std::mutex> guard(impl.lock);
    impl.playing = true;
    held.swap(impl.held);
    eos = std::exchange(impl.eos_held, false);
  }
  for (Ref<GstBuffer>& buffer : held)
    if (push_downstream(self, std::move(buffer)) != GST_FLOW_OK) break;
  if (eos) push_eos(self);
  GST_PAD_STREAM_UNLOCK(impl.srcpad);
}

gboolean src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    // Live, and nothing is added: events go downstream the moment they are pushed.
    gst_query_set_latency(query, TRUE, 0, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  auto* self = RT_EVENT_SRC(element);
  EventSrcImpl& impl = *self->impl;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED: {
      std::lock_guard<std::mutex> guard(impl.lock);
      impl.started = true;
      impl.eos = impl.eos_held = false;
      break;
    }
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
      std::lock_guard<std::mutex> guard(impl.lock);
      impl.playing = false;
      break;
    }
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      std::lock_guard<std::mutex> guard(impl.lock);
      impl.started = impl.playing = false;
      impl.held.clear();
      break;
    }
    default:
      break;
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(rt_event_src_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      release_held(self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      // The pad is inactive: no push runs, the stream lock is free to take.
      GST_PAD_STREAM_LOCK(impl.srcpad);
      impl.sticky_sent = false;
      GST_PAD_STREAM_UNLOCK(impl.srcpad);
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;  // a live source
      break;
    default:
      break;
  }
  return ret;
}

void finalize(GObject* object) {
  auto* self = RT_EVENT_SRC(object);
  delete std::exchange(self->impl, nullptr);
  G_OBJECT_CLASS(rt_event_src_parent_class)->finalize(object);
}

}  // namespace

static void rt_event_src_class_init(RtEventSrcClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_event_src_debug, "rteventsrc", 0, "realtime event source");

  gobject_class->finalize = finalize;
  element_class->change_state = change_state;

  // The class closures are plain functions: the signals are the element's API, as appsrc's are.
  signals[SIGNAL_PUSH_BUFFER] = g_signal_new_class_handler(
      "push-buffer", G_TYPE_FROM_CLASS(klass),
      static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK(push_buffer),
      nullptr, nullptr, nullptr, GST_TYPE_FLOW_RETURN, 1,
      GST_TYPE_BUFFER | G_SIGNAL_TYPE_STATIC_SCOPE);
  signals[SIGNAL_END_OF_STREAM] = g_signal_new_class_handler(
      "end-of-stream", G_TYPE_FROM_CLASS(klass),
      static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK(end_of_stream),
      nullptr, nullptr, nullptr, GST_TYPE_FLOW_RETURN, 0, G_TYPE_NONE);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Realtime event source", "Source/Network",
      "Pushes the realtime events an application hands it (push-buffer, as appsrc) downstream "
      "in the calling thread: no queue, no streaming thread",
      "Realtime Gateway developers");
}

static void rt_event_src_init(RtEventSrc* self) {
  self->impl =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<EventSrcImpl*>(nullptr),
                              [] { return new EventSrcImpl(); });
  if (!self->impl) g_error("rteventsrc: out of memory");
  EventSrcImpl& impl = *self->impl;
  impl.srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(impl.srcpad, src_query);
  gst_pad_use_fixed_caps(impl.srcpad);
  gst_element_add_pad(GST_ELEMENT(self), impl.srcpad);
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}
