// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rtpforward
 * @title: rtpforward
 *
 * Takes the place of rtpjitterbuffer in rtpbin (through rtpbin's `request-jitterbuffer` signal)
 * in a relay: every RTP packet is pushed on at once, in the thread that received it, in the order
 * it arrived. Nothing is held, reordered, dropped, timed or retransmitted; the receiving endpoint
 * behind the relay has its own jitterbuffer. Each rtpjitterbuffer it replaces costs two threads
 * (its push thread and its timer thread) and a sleep/wake-up per packet.
 *
 * ## What rtpbin and webrtcbin 1.22 need from a jitterbuffer (and get here)
 * - rtpbin's create_stream() sets `latency` on every jitterbuffer without checking that the
 *   property exists; webrtcbin's new-jitterbuffer handler sets `do-retransmission` the same way.
 *   Both are accepted and have no effect. Every other property rtpbin sets (`mode`,
 *   `drop-on-latency`, `do-lost`, ...) is set only if it exists: not here.
 * - webrtcbin's get-stats reads `stats` and takes `num-lost`, `num-duplicates`, `num-late` and
 *   `rtx-success-count` out of it (left uninitialized if they are missing), for inbound-rtp's
 *   packets-lost, packets-duplicated, packets-discarded and packets-repaired.
 * - Pads `sink` and `src`, and a `sink_rtcp` request pad: rtpbin links the SSRC demuxer's RTCP
 *   there. RTCP is consumed (rtpjitterbuffer only uses SRs for lip sync; rtpbin's RTP session,
 *   upstream, has already handled it, so receiver and sender reports go on as before).
 * - Signals rtpbin looks up (`request-pt-map`, `handle-sync`, `on-npt-stop`, `clear-pt-map`,
 *   `set-active`) are optional: there are none.
 *
 * ## Properties
 * - `latency` (uint, ms), `do-retransmission` (boolean): accepted, no effect (see above).
 * - `stats` (GstStructure, read-only): `num-pushed` (packets forwarded), `num-lost` (packets
 *   missing from the sequence numbers seen: expected minus received, never below 0),
 *   `num-duplicates` (a sequence number seen again within the last 64), and `num-late`,
 *   `rtx-count`, `rtx-success-count` (always 0: nothing is late, nothing retransmitted).
 *
 * ## Threads and locks
 * No thread of its own, no timer. RTP and RTCP run in the upstream streaming threads; the
 * counters are under the object lock, so `stats` can be read from any thread.
 *
 * ## Example
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 audiotestsrc num-buffers=50 ! opusenc \
 *   ! rtpopuspay ! rtpforward ! fakesink silent=false -v
 * ]|
 */
#include "rtpforward.h"

#include <gst/rtp/gstrtpbuffer.h>

#include <utility>

#include "element_util.h"

GST_DEBUG_CATEGORY_STATIC(rt_rtp_forward_debug);
#define GST_CAT_DEFAULT rt_rtp_forward_debug

namespace {

constexpr guint kDefaultLatencyMs = 200;  // rtpjitterbuffer's default
// A jump of more than this many sequence numbers backwards (or forwards) is a new sequence
// (a restarted sender), not loss: rtpsource in rtpmanager uses the same bounds.
constexpr gint kMaxDropout = 3000;
constexpr gint kMaxMisorder = 100;

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                                                             GST_STATIC_CAPS("application/x-rtp"));
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                                                            GST_STATIC_CAPS("application/x-rtp"));
GstStaticPadTemplate rtcp_template = GST_STATIC_PAD_TEMPLATE(
    "sink_rtcp", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS("application/x-rtcp"));

enum { PROP_0, PROP_LATENCY, PROP_DO_RETRANSMISSION, PROP_STATS };

// Sequence-number accounting, as RFC 3550 A.3 counts loss: expected (from the first to the
// highest sequence number seen) minus received. Under the object lock.
struct Counters {
  bool started = false;
  guint16 max_seq = 0;
  guint64 window = 0;          // bit i: max_seq - i was received
  guint64 expected_prior = 0;  // expected in earlier sequences (before a restart)
  guint64 cycles_span = 0;     // max_seq - base, extended over wraps
  guint64 received = 0;        // distinct packets in this and earlier sequences
  guint64 duplicates = 0;
  guint64 pushed = 0;

  void restart(guint16 seq) {
    if (started) expected_prior += cycles_span + 1;
    started = true;
    max_seq = seq;
    window = 1;
    cycles_span = 0;
    ++received;
  }
  void packet(guint16 seq) {
    ++pushed;
    if (!started) return restart(seq);
    const gint delta = gst_rtp_buffer_compare_seqnum(max_seq, seq);  // > 0: seq is newer
    if (delta > kMaxDropout || delta < -kMaxMisorder) return restart(seq);
    if (delta > 0) {
      window = delta >= 64 ? 1 : (window << delta) | 1;
      max_seq = seq;
      cycles_span += static_cast<guint64>(delta);
      ++received;
      return;
    }
    const gint behind = -delta;
    if (behind >= 64) {  // too old to tell a duplicate from a late one: count it received
      ++received;
      return;
    }
    const guint64 bit = guint64{1} << behind;
    if (window & bit) {
      ++duplicates;
    } else {
      window |= bit;
      ++received;
    }
  }
  guint64 lost() const {
    const guint64 expected = started ? expected_prior + cycles_span + 1 : 0;
    return expected > received ? expected - received : 0;
  }
};

}  // namespace

struct _RtRtpForward {
  GstElement parent;
  GstPad* sinkpad;  // owned by the element
  GstPad* srcpad;
  guint latency_ms;            // object lock
  gboolean do_retransmission;  // object lock
  Counters* counters;          // owned; object lock
};

G_DEFINE_TYPE(RtRtpForward, rt_rtp_forward, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(rtpforward, "rtpforward", GST_RANK_NONE, RT_TYPE_RTP_FORWARD);

namespace {

GstFlowReturn chain(GstPad*, GstObject* parent, GstBuffer* buffer) {
  auto* self = RT_RTP_FORWARD(parent);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp)) {
    const guint16 seq = gst_rtp_buffer_get_seq(&rtp);
    gst_rtp_buffer_unmap(&rtp);
    GST_OBJECT_LOCK(self);
    self->counters->packet(seq);
    GST_OBJECT_UNLOCK(self);
  } else {
    GST_OBJECT_LOCK(self);
    ++self->counters->pushed;
    GST_OBJECT_UNLOCK(self);
  }
  return gst_pad_push(self->srcpad, buffer);
}

// RTCP: rtpbin's session upstream has already used it; nothing here needs it.
GstFlowReturn rtcp_chain(GstPad*, GstObject*, GstBuffer* buffer) {
  gst_buffer_unref(buffer);
  return GST_FLOW_OK;
}

gboolean rtcp_event(GstPad*, GstObject*, GstEvent* event) {
  gst_event_unref(event);
  return TRUE;
}

// Caps and accept-caps from the template; nothing else goes through the RTCP pad.
gboolean rtcp_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_CAPS:
    case GST_QUERY_ACCEPT_CAPS:
      return gst_pad_query_default(pad, parent, query);
    default:
      return FALSE;
  }
}

// Events and queries arriving at `src` go to `sink` only (not to a sink_rtcp pad).
GstIterator* src_internal_links(GstPad*, GstObject* parent) {
  GValue v = G_VALUE_INIT;
  g_value_init(&v, GST_TYPE_PAD);
  g_value_set_object(&v, RT_RTP_FORWARD(parent)->sinkpad);
  GstIterator* it = gst_iterator_new_single(GST_TYPE_PAD, &v);
  g_value_unset(&v);
  return it;
}

GstPad* request_new_pad(GstElement* element, GstPadTemplate* templ, const gchar* name,
                        const GstCaps*) {
  if (g_strcmp0(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "sink_rtcp") != 0) return nullptr;
  GstPad* pad = gst_pad_new_from_template(templ, name ? name : "sink_rtcp");
  gst_pad_set_chain_function(pad, rtcp_chain);
  gst_pad_set_event_function(pad, rtcp_event);
  gst_pad_set_query_function(pad, rtcp_query);
  gst_pad_set_active(pad, TRUE);
  if (!gst_element_add_pad(element, pad)) {
    GST_WARNING_OBJECT(element, "there is already a %s pad", GST_PAD_NAME(pad));
    gst_object_unref(pad);
    return nullptr;
  }
  return pad;
}

void release_pad(GstElement* element, GstPad* pad) {
  gst_pad_set_active(pad, FALSE);
  gst_element_remove_pad(element, pad);
}

GstStructure* make_stats(RtRtpForward* self) {
  GST_OBJECT_LOCK(self);
  const Counters c = *self->counters;
  GST_OBJECT_UNLOCK(self);
  return gst_structure_new("application/x-rtp-jitterbuffer-stats", "num-pushed", G_TYPE_UINT64,
                           c.pushed, "num-lost", G_TYPE_UINT64, c.lost(), "num-late", G_TYPE_UINT64,
                           guint64{0}, "num-duplicates", G_TYPE_UINT64, c.duplicates, "rtx-count",
                           G_TYPE_UINT64, guint64{0}, "rtx-success-count", G_TYPE_UINT64,
                           guint64{0}, nullptr);
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(rt_rtp_forward_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    auto* self = RT_RTP_FORWARD(element);
    GST_OBJECT_LOCK(self);
    *self->counters = Counters{};
    GST_OBJECT_UNLOCK(self);
  }
  return ret;
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  auto* self = RT_RTP_FORWARD(object);
  switch (id) {
    case PROP_LATENCY:
      GST_OBJECT_LOCK(self);
      self->latency_ms = g_value_get_uint(value);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_DO_RETRANSMISSION:
      GST_OBJECT_LOCK(self);
      self->do_retransmission = g_value_get_boolean(value);
      GST_OBJECT_UNLOCK(self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  auto* self = RT_RTP_FORWARD(object);
  switch (id) {
    case PROP_LATENCY:
      GST_OBJECT_LOCK(self);
      g_value_set_uint(value, self->latency_ms);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_DO_RETRANSMISSION:
      GST_OBJECT_LOCK(self);
      g_value_set_boolean(value, self->do_retransmission);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_STATS:
      g_value_take_boxed(value, make_stats(self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void finalize(GObject* object) {
  auto* self = RT_RTP_FORWARD(object);
  delete std::exchange(self->counters, nullptr);
  G_OBJECT_CLASS(rt_rtp_forward_parent_class)->finalize(object);
}

}  // namespace

static void rt_rtp_forward_class_init(RtRtpForwardClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_rtp_forward_debug, "rtpforward", 0,
                          "RTP forwarding in rtpbin's jitterbuffer slot");

  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  element_class->change_state = change_state;
  element_class->request_new_pad = request_new_pad;
  element_class->release_pad = release_pad;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                           GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency (ms)",
                        "Accepted and ignored (rtpbin sets it on every jitterbuffer): packets are "
                        "forwarded as they arrive, never held",
                        0, G_MAXUINT, kDefaultLatencyMs, rw));
  g_object_class_install_property(
      gobject_class, PROP_DO_RETRANSMISSION,
      g_param_spec_boolean("do-retransmission", "Do retransmission",
                           "Accepted and ignored (webrtcbin sets it per stream): nothing waits "
                           "for a retransmission, so no NACKs are sent",
                           FALSE, rw));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "num-pushed, num-lost (expected minus received sequence numbers), "
                         "num-duplicates; num-late, rtx-count and rtx-success-count are 0",
                         GST_TYPE_STRUCTURE,
                         static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &rtcp_template);
  gst_element_class_set_static_metadata(
      element_class, "RTP forward (no jitterbuffer)", "Filter/Network/RTP",
      "Stands in for rtpjitterbuffer in rtpbin: forwards RTP packets as they arrive, on the "
      "receiving thread, without buffering, reordering or timers",
      "Realtime Gateway developers");
}

static void rt_rtp_forward_init(RtRtpForward* self) {
  self->counters =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<Counters*>(nullptr),
                              [] { return new Counters(); });
  if (!self->counters) g_error("rtpforward: out of memory");
  self->latency_ms = kDefaultLatencyMs;
  self->do_retransmission = FALSE;
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, chain);
  GST_PAD_SET_PROXY_CAPS(self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  GST_PAD_SET_PROXY_SCHEDULING(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_iterate_internal_links_function(self->srcpad, src_internal_links);
  GST_PAD_SET_PROXY_CAPS(self->srcpad);
  GST_PAD_SET_PROXY_ALLOCATION(self->srcpad);
  GST_PAD_SET_PROXY_SCHEDULING(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
