// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rtpptrewrite
 * @title: rtpptrewrite
 *
 * Rewrites the payload type (and, if set, the SSRC) of every RTP packet in place and passes it
 * on: what a relay between two legs that negotiated different payload types for the same codec
 * needs, without a depayloader, a payloader or a queue. Sequence numbers, timestamps, the marker
 * bit, CSRCs, header extensions and the payload are left as they are, so the receiver sees the
 * sender's own packet loss and timing. A buffer that is not an RTP version 2 packet of at least
 * 12 bytes goes through unchanged.
 *
 * ## Caps
 * sink: `application/x-rtp`; src: the sink caps reduced to `media`, `clock-rate`,
 * `encoding-name` and `encoding-params`, with `payload` = #rtpptrewrite:pt and, if set,
 * `ssrc` = #rtpptrewrite:ssrc (what a payloader would announce). New caps are pushed before the
 * next packet when a property changes.
 *
 * ## Properties
 * - `pt` (uint 0–127, default 96): the payload type written into every packet.
 * - `ssrc` (uint, default 0): the SSRC written into every packet; 0 keeps the sender's.
 * Both may change while PLAYING (from any thread).
 *
 * ## Threads and locks
 * Everything runs in the upstream element's streaming thread (no task, no queue). The
 * properties are atomics; a generation counter tells the streaming thread to push new caps.
 *
 * ## Example
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 audiotestsrc num-buffers=50 ! opusenc \
 *   ! rtpopuspay pt=111 ! rtpptrewrite pt=96 ssrc=1234 ! fakesink silent=false -v
 * ]| shows every buffer leaving with `payload=(int)96, ssrc=(uint)1234` caps.
 */
#include "rtpptrewrite.h"

#include <atomic>
#include <utility>

#include "common/ref.h"
#include "element_util.h"

GST_DEBUG_CATEGORY_STATIC(rt_rtp_pt_rewrite_debug);
#define GST_CAT_DEFAULT rt_rtp_pt_rewrite_debug

namespace {

using rtgw::Ref;

constexpr guint kDefaultPt = 96;
constexpr gsize kRtpHeaderBytes = 12;

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                                                             GST_STATIC_CAPS("application/x-rtp"));
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                                                            GST_STATIC_CAPS("application/x-rtp"));

enum { PROP_0, PROP_PT, PROP_SSRC };

struct RewriteImpl {
  // Set in instance_init, constant afterwards (the element owns the pads).
  GstPad* sinkpad = nullptr;
  GstPad* srcpad = nullptr;

  // Any thread.
  std::atomic<guint> pt{kDefaultPt};
  std::atomic<guint32> ssrc{0};
  std::atomic<guint> generation{1};  // bumped by every property change

  // Streaming thread only (and reset() once streaming stopped).
  Ref<GstCaps> sink_caps;
  guint caps_generation = 0;  // the generation the caps on the src pad were built for
};

}  // namespace

struct _RtRtpPtRewrite {
  GstElement parent;
  RewriteImpl* impl;  // owned; see RewriteImpl for threads
};

G_DEFINE_TYPE(RtRtpPtRewrite, rt_rtp_pt_rewrite, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(rtpptrewrite, "rtpptrewrite", GST_RANK_NONE, RT_TYPE_RTP_PT_REWRITE);

namespace {

// The src caps for `sink` with the current pt/ssrc (what rtpopuspay would announce).
Ref<GstCaps> output_caps(const GstCaps* sink, guint pt, guint32 ssrc) {
  const GstStructure* in = gst_caps_get_structure(sink, 0);
  GstStructure* out =
      gst_structure_new("application/x-rtp", "payload", G_TYPE_INT, static_cast<gint>(pt), nullptr);
  for (const char* field : {"media", "clock-rate", "encoding-name", "encoding-params"}) {
    if (const GValue* v = gst_structure_get_value(in, field))
      gst_structure_set_value(out, field, v);
  }
  if (ssrc != 0) gst_structure_set(out, "ssrc", G_TYPE_UINT, ssrc, nullptr);
  return Ref<GstCaps>::adopt(gst_caps_new_full(out, nullptr));
}

// Pushes src caps if the sink caps or a property changed since the last push.
bool ensure_caps(RtRtpPtRewrite* self) {
  RewriteImpl& impl = *self->impl;
  const guint generation = impl.generation.load(std::memory_order_acquire);
  if (!impl.sink_caps || generation == impl.caps_generation) return true;
  impl.caps_generation = generation;
  auto caps = output_caps(impl.sink_caps.get(), impl.pt.load(), impl.ssrc.load());
  return gst_pad_push_event(impl.srcpad, gst_event_new_caps(caps.get()));
}

GstFlowReturn chain(GstPad*, GstObject* parent, GstBuffer* buffer) {
  auto* self = RT_RTP_PT_REWRITE(parent);
  RewriteImpl& impl = *self->impl;
  ensure_caps(self);
  const guint pt = impl.pt.load(std::memory_order_relaxed);
  const guint32 ssrc = impl.ssrc.load(std::memory_order_relaxed);

  guint8 head[kRtpHeaderBytes];
  if (gst_buffer_extract(buffer, 0, head, sizeof head) == sizeof head && (head[0] >> 6) == 2) {
    const guint32 old_ssrc =
        (guint32{head[8]} << 24) | (guint32{head[9]} << 16) | (guint32{head[10]} << 8) | head[11];
    if ((head[1] & 0x7f) != pt || (ssrc != 0 && old_ssrc != ssrc)) {
      head[1] = static_cast<guint8>((head[1] & 0x80) | (pt & 0x7f));
      if (ssrc != 0) {
        head[8] = static_cast<guint8>(ssrc >> 24);
        head[9] = static_cast<guint8>(ssrc >> 16);
        head[10] = static_cast<guint8>(ssrc >> 8);
        head[11] = static_cast<guint8>(ssrc);
      }
      buffer = gst_buffer_make_writable(buffer);
      gst_buffer_fill(buffer, 0, head, sizeof head);
    }
  }
  return gst_pad_push(impl.srcpad, buffer);
}

gboolean sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  auto* self = RT_RTP_PT_REWRITE(parent);
  RewriteImpl& impl = *self->impl;
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    auto owned = Ref<GstEvent>::adopt(event);  // replaced by our own caps
    GstCaps* caps = nullptr;
    gst_event_parse_caps(owned.get(), &caps);
    impl.sink_caps = Ref<GstCaps>::retain(caps);
    impl.caps_generation = 0;  // push the new caps now
    return ensure_caps(self);
  }
  return gst_pad_event_default(pad, parent, event);
}

// CAPS queries: any RTP on either side (the src caps are fixed per packet stream by the props).
gboolean query(GstPad* pad, GstObject* parent, GstQuery* query) {
  if (GST_QUERY_TYPE(query) != GST_QUERY_CAPS) return gst_pad_query_default(pad, parent, query);
  GstCaps* filter = nullptr;
  gst_query_parse_caps(query, &filter);
  auto templ = Ref<GstCaps>::adopt(gst_pad_get_pad_template_caps(pad));
  if (filter) {
    auto result =
        Ref<GstCaps>::adopt(gst_caps_intersect_full(filter, templ.get(), GST_CAPS_INTERSECT_FIRST));
    gst_query_set_caps_result(query, result.get());
  } else {
    gst_query_set_caps_result(query, templ.get());
  }
  return TRUE;
}

void reset(RtRtpPtRewrite* self) {
  self->impl->sink_caps = {};
  self->impl->caps_generation = 0;
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(rt_rtp_pt_rewrite_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) reset(RT_RTP_PT_REWRITE(element));
  return ret;
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  RewriteImpl& impl = *RT_RTP_PT_REWRITE(object)->impl;
  switch (id) {
    case PROP_PT:
      impl.pt.store(g_value_get_uint(value));
      break;
    case PROP_SSRC:
      impl.ssrc.store(g_value_get_uint(value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
      return;
  }
  impl.generation.fetch_add(1, std::memory_order_release);
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  RewriteImpl& impl = *RT_RTP_PT_REWRITE(object)->impl;
  switch (id) {
    case PROP_PT:
      g_value_set_uint(value, impl.pt.load());
      break;
    case PROP_SSRC:
      g_value_set_uint(value, impl.ssrc.load());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void finalize(GObject* object) {
  auto* self = RT_RTP_PT_REWRITE(object);
  delete std::exchange(self->impl, nullptr);
  G_OBJECT_CLASS(rt_rtp_pt_rewrite_parent_class)->finalize(object);
}

}  // namespace

static void rt_rtp_pt_rewrite_class_init(RtRtpPtRewriteClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_rtp_pt_rewrite_debug, "rtpptrewrite", 0, "RTP payload type rewrite");

  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  element_class->change_state = change_state;

  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_PT,
      g_param_spec_uint("pt", "Payload type", "The payload type written into every packet", 0, 127,
                        kDefaultPt, flags));
  g_object_class_install_property(
      gobject_class, PROP_SSRC,
      g_param_spec_uint("ssrc", "SSRC", "The SSRC written into every packet (0: keep the sender's)",
                        0, G_MAXUINT32, 0, flags));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "RTP payload type rewrite", "Filter/Network/RTP",
      "Rewrites the payload type (and SSRC) of RTP packets in place, without depayloading",
      "Realtime Gateway developers");
}

static void rt_rtp_pt_rewrite_init(RtRtpPtRewrite* self) {
  self->impl =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<RewriteImpl*>(nullptr),
                              [] { return new RewriteImpl(); });
  if (!self->impl) g_error("rtpptrewrite: out of memory");
  RewriteImpl& impl = *self->impl;
  impl.sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(impl.sinkpad, chain);
  gst_pad_set_event_function(impl.sinkpad, sink_event);
  gst_pad_set_query_function(impl.sinkpad, query);
  GST_PAD_SET_PROXY_ALLOCATION(impl.sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), impl.sinkpad);
  impl.srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(impl.srcpad, query);
  gst_element_add_pad(GST_ELEMENT(self), impl.srcpad);
}
