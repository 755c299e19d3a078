// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rteventparse
 * @title: rteventparse
 *
 * Splits a byte stream of JSON lines ("JSON Lines": one event per line) into one realtime event
 * per buffer, so that rteventfilter and rtusagemeter can run from gst-launch-1.0 on a file.
 * Lines end with "\n" (a trailing "\r" is removed too); blank lines (only spaces, tabs or "\r")
 * are skipped; a last line without a final newline is emitted at EOS. Line content is not
 * validated: a malformed line goes downstream as is, like a malformed client event would. Output
 * buffers share the input's memory where a line lies within one input buffer.
 *
 * ## Caps
 * sink: ANY (e.g. filesrc's raw bytes); src: `application/x-realtime-event`. Upstream caps are
 * replaced, and the outgoing segment is a TIME segment (output buffers carry no timestamps).
 *
 * ## Properties
 * None.
 *
 * ## Messages
 * None. Every event on the src pad is pushed from the sink pad's streaming thread.
 *
 * ## Threads and locks
 * The line buffer (a GstAdapter) and the caps/segment flags belong to the streaming thread;
 * reset() clears them at FLUSH_STOP (streaming thread) and at PAUSED→READY (after streaming
 * stopped), so no lock is needed.
 *
 * ## Example
 * From the source root, after `meson compile -C build` (examples/README.md shows the output):
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 -m \
 *   filesrc location=plugins/rtevents/examples/events.jsonl ! rteventparse ! \
 *   rteventfilter key-name=team-b model=gpt-realtime-mini \
 *     policy="$(cat plugins/rtevents/examples/policy.json)" ! \
 *   rtusagemeter ! fakesink
 * ]| prints 4 `rtevent-decision` and 2 `rtusage-turn` element messages.
 */
#include "rteventparse.h"

#include <gst/base/gstadapter.h>

#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ref.h"
#include "element_util.h"

GST_DEBUG_CATEGORY_STATIC(rt_event_parse_debug);
#define GST_CAT_DEFAULT rt_event_parse_debug

namespace {

using rtgw::Ref;

GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));

// C++ state of one element, created in instance_init, deleted in finalize.
struct ParseImpl {
  // Set in instance_init, constant afterwards (the element owns the pads).
  GstPad* sinkpad = nullptr;
  GstPad* srcpad = nullptr;

  // Streaming thread only (see reset()).
  Ref<GstAdapter> partial = Ref<GstAdapter>::adopt(gst_adapter_new());  // the unfinished line
  bool segment_sent = false;
};

}  // namespace

struct _RtEventParse {
  GstElement parent;
  ParseImpl* impl;  // owned; see ParseImpl for threads
};

G_DEFINE_TYPE(RtEventParse, rt_event_parse, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(rteventparse, "rteventparse", GST_RANK_NONE, RT_TYPE_EVENT_PARSE);

namespace {

// Drops the unfinished line and forgets the segment. Streaming thread or stopped streaming.
void reset(RtEventParse* self) {
  gst_adapter_clear(self->impl->partial.get());
  self->impl->segment_sent = false;
}

void ensure_caps(RtEventParse* self) {
  ParseImpl& impl = *self->impl;
  if (gst_pad_has_current_caps(impl.srcpad)) return;
  const auto caps = Ref<GstCaps>::adopt(gst_static_pad_template_get_caps(&src_template));
  gst_pad_push_event(impl.srcpad, gst_event_new_caps(caps.get()));
}

void ensure_segment(RtEventParse* self, guint32 seqnum) {
  ParseImpl& impl = *self->impl;
  ensure_caps(self);
  if (impl.segment_sent) return;
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  GstEvent* event = gst_event_new_segment(&segment);
  if (seqnum != GST_SEQNUM_INVALID) gst_event_set_seqnum(event, seqnum);
  gst_pad_push_event(impl.srcpad, event);
  impl.segment_sent = true;
}

// Pushes one line (without its "\n") unless it is blank. Takes `line`.
GstFlowReturn push_line(RtEventParse* self, Ref<GstBuffer> line) {
  gsize keep = 0;
  bool blank = true;
  {
    rtgw::rtevents::MappedBuffer map(line.get(), GST_MAP_READ);
    if (!map) return GST_FLOW_ERROR;
    const std::string_view text = map.view();
    keep = text.size();
    if (keep > 0 && text[keep - 1] == '\r') --keep;
    blank = std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(keep),
                        [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
  }
  if (blank) return GST_FLOW_OK;
  if (keep != gst_buffer_get_size(line.get())) {
    line =
        Ref<GstBuffer>::adopt(gst_buffer_copy_region(line.get(), GST_BUFFER_COPY_MEMORY, 0, keep));
  }
  ensure_segment(self, GST_SEQNUM_INVALID);
  GST_LOG_OBJECT(self, "event of %" G_GSIZE_FORMAT " bytes", keep);
  return gst_pad_push(self->impl->srcpad, line.release());
}

// Takes everything in the adapter as one line.
GstFlowReturn flush_partial(RtEventParse* self) {
  GstAdapter* partial = self->impl->partial.get();
  const gsize n = gst_adapter_available(partial);
  if (n == 0) return GST_FLOW_OK;
  return push_line(self, Ref<GstBuffer>::adopt(gst_adapter_take_buffer(partial, n)));
}

GstFlowReturn handle_buffer(RtEventParse* self, const Ref<GstBuffer>& buffer) {
  GstAdapter* partial = self->impl->partial.get();
  const gsize size = gst_buffer_get_size(buffer.get());
  // Newline positions of this buffer (each byte is scanned once).
  std::vector<gsize> newlines;
  {
    rtgw::rtevents::MappedBuffer map(buffer.get(), GST_MAP_READ);
    if (!map) {
      GST_ELEMENT_ERROR(self, RESOURCE, READ, (nullptr), ("could not map input buffer"));
      return GST_FLOW_ERROR;
    }
    const std::string_view text = map.view();
    for (gsize pos = text.find('\n'); pos != std::string_view::npos;
         pos = text.find('\n', pos + 1)) {
      newlines.push_back(pos);
    }
  }
  gsize start = 0;
  for (const gsize nl : newlines) {
    if (nl > start) {
      gst_adapter_push(
          partial, gst_buffer_copy_region(buffer.get(), GST_BUFFER_COPY_MEMORY, start, nl - start));
    }
    start = nl + 1;
    const GstFlowReturn ret = flush_partial(self);
    if (ret != GST_FLOW_OK) return ret;
  }
  if (start < size) {
    gst_adapter_push(
        partial, gst_buffer_copy_region(buffer.get(), GST_BUFFER_COPY_MEMORY, start, size - start));
  }
  return GST_FLOW_OK;
}

gboolean handle_sink_event(RtEventParse* self, GstPad* pad, GstEvent* event_in) {
  auto event = Ref<GstEvent>::adopt(event_in);
  switch (GST_EVENT_TYPE(event.get())) {
    case GST_EVENT_CAPS:
      // Whatever the bytes were, what leaves is realtime events.
      ensure_caps(self);
      return TRUE;
    case GST_EVENT_SEGMENT:
      // Byte positions mean nothing downstream; send a TIME segment instead.
      self->impl->segment_sent = false;
      ensure_segment(self, gst_event_get_seqnum(event.get()));
      return TRUE;
    case GST_EVENT_EOS: {
      const GstFlowReturn ret = flush_partial(self);
      if (ret != GST_FLOW_OK) GST_DEBUG_OBJECT(self, "last line: %s", gst_flow_get_name(ret));
      break;
    }
    case GST_EVENT_FLUSH_STOP:
      reset(self);
      break;
    default:
      break;
  }
  return gst_pad_event_default(pad, GST_OBJECT(self), event.release());
}

// ----- trampolines -----------------------------------------------------------------------------

GstFlowReturn chain(GstPad* pad, GstObject* parent, GstBuffer* buffer) {
  auto* self = RT_EVENT_PARSE(parent);
  auto owned = Ref<GstBuffer>::adopt(buffer);
  bool threw = false;
  const GstFlowReturn ret = rtgw::rtevents::guarded_flow(
      GST_CAT_DEFAULT, self, "chain", &threw, [&] { return handle_buffer(self, owned); });
  if (threw) GST_ELEMENT_ERROR(self, CORE, FAILED, (nullptr), ("internal error splitting lines"));
  return ret;
}

gboolean sink_event(GstPad* pad, GstObject* parent, GstEvent* event) {
  auto* self = RT_EVENT_PARSE(parent);
  // On an exception the event reference is released by the Ref inside handle_sink_event.
  return rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "sink_event", FALSE,
                                 [&] { return handle_sink_event(self, pad, event); });
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  auto* self = RT_EVENT_PARSE(element);
  const GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(rt_event_parse_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "change_state", [&] { reset(self); });
  }
  return ret;
}

void finalize(GObject* object) {
  auto* self = RT_EVENT_PARSE(object);
  delete std::exchange(self->impl, nullptr);
  G_OBJECT_CLASS(rt_event_parse_parent_class)->finalize(object);
}

}  // namespace

static void rt_event_parse_class_init(RtEventParseClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_event_parse_debug, "rteventparse", 0, "JSON lines to realtime events");

  gobject_class->finalize = finalize;
  element_class->change_state = change_state;

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Realtime event line splitter", "Codec/Parser",
      "Splits a byte stream of JSON lines into one realtime event per buffer (blank lines "
      "skipped)",
      "Realtime Gateway developers");
}

static void rt_event_parse_init(RtEventParse* self) {
  self->impl =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<ParseImpl*>(nullptr),
                              [] { return new ParseImpl(); });
  if (!self->impl) g_error("rteventparse: out of memory");
  ParseImpl& impl = *self->impl;
  impl.sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(impl.sinkpad, chain);
  gst_pad_set_event_function(impl.sinkpad, sink_event);
  gst_element_add_pad(GST_ELEMENT(self), impl.sinkpad);
  impl.srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_use_fixed_caps(impl.srcpad);
  gst_element_add_pad(GST_ELEMENT(self), impl.srcpad);
}
