// SPDX-License-Identifier: MIT
#include "webrtc/ice_source.h"

#include <nice/agent.h>

#include <new>

#include "webrtc/ice_context.h"
#include "webrtc/receive_bypass.h"

namespace rtgw::webrtc {
namespace {

GST_DEBUG_CATEGORY_STATIC(ice_source_debug);
#define GST_CAT_DEFAULT ice_source_debug

struct IceSource {
  GstElement parent;
  GstPad* srcpad;
  NiceAgent* agent;  // owned (a ref), set once before READY
  guint stream;
  guint component;
  gboolean attached;     // receive callback attached (state lock)
  gboolean sent_header;  // stream-start and segment pushed (pad stream lock)
  // Bound between READY->PAUSED and PAUSED->READY (receive_bypass.h); constructed in
  // instance_init, destroyed in finalize.
  ReceiveBypass bypass;
};

struct IceSourceClass {
  GstElementClass parent_class;
};

enum { PROP_0, PROP_AGENT, PROP_STREAM, PROP_COMPONENT };

GstElementClass* parent_class = nullptr;

GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

IceSource* cast(gpointer p) { return static_cast<IceSource*>(p); }

// On the agent's ICE thread (`rtgw-ice-N`): one datagram that libnice read (after its own STUN/TURN
// handling) on this component's selected or checked pairs.
void on_receive(NiceAgent*, guint, guint, guint len, gchar* data, gpointer user_data) {
  IceSource* self = cast(user_data);
  GstPad* pad = self->srcpad;
  // Stopping: the pad is flushing before the callback is detached (change_state).
  if (GST_PAD_IS_FLUSHING(pad)) return;
  GST_PAD_STREAM_LOCK(pad);
  if (!self->sent_header) {
    gchar* id = gst_pad_create_stream_id(pad, GST_ELEMENT(self), nullptr);
    gst_pad_push_event(pad, gst_event_new_stream_start(id));
    g_free(id);
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_pad_push_event(pad, gst_event_new_segment(&segment));
    self->sent_header = TRUE;
  }
  GstBuffer* buffer = gst_buffer_new_memdup(data, len);
  // Arrival time in running time, as a live source with do-timestamp stamps it (rtpsession's
  // statistics use it).
  if (GstClock* clock = gst_element_get_clock(GST_ELEMENT(self))) {
    GstClockTime now = gst_clock_get_time(clock);
    GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
    if (now >= base) GST_BUFFER_PTS(buffer) = now - base;
    gst_object_unref(clock);
  }
  GstFlowReturn ret = self->bypass.push(pad, buffer);
  if (ret != GST_FLOW_OK && ret != GST_FLOW_FLUSHING)
    GST_LOG_OBJECT(self, "push: %s", gst_flow_get_name(ret));
  GST_PAD_STREAM_UNLOCK(pad);
}

// A live source, as nicesrc: packets come when the peer sends them, with no latency of ours.
gboolean src_query(GstPad* pad, GstObject* parent, GstQuery* query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    gst_query_set_latency(query, TRUE, 0, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

// The context the agent was made on (ice_context_for_new_agent): its receive callback must be
// attached there, so that it runs on the thread that polls the agent's sockets.
GMainContext* agent_context(NiceAgent* agent) {
  GMainContext* context = nullptr;  // a pointer property: no reference
  g_object_get(agent, "main-context", &context, nullptr);
  return context;
}

void detach(IceSource* self) {
  if (!self->attached) return;
  GMainContext* context = agent_context(self->agent);
  nice_agent_attach_recv(self->agent, self->stream, self->component, context, nullptr, nullptr);
  self->attached = FALSE;
  // A callback already being dispatched may still hold `self`: wait for it to return.
  ice_context_barrier(context);
}

GstStateChangeReturn change_state(GstElement* element, GstStateChange transition) {
  IceSource* self = cast(element);
  GstStateChangeReturn ret = parent_class->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      // The pad is active (parent's change): packets may flow from now on.
      self->sent_header = FALSE;
      self->bypass.bind(element, self->srcpad);
      if (!self->agent || !nice_agent_attach_recv(self->agent, self->stream, self->component,
                                                  agent_context(self->agent), on_receive, self)) {
        GST_ELEMENT_ERROR(
            self, RESOURCE, OPEN_READ, (nullptr),
            ("no ICE component %u/%u to receive from", self->stream, self->component));
        return GST_STATE_CHANGE_FAILURE;
      }
      self->attached = TRUE;
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      // The pad is flushing (parent's change), so a callback in flight returns at once.
      detach(self);
      self->bypass.unbind();  // no callback in flight any more
      break;
    default:
      break;
  }
  return ret;
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  IceSource* self = cast(object);
  switch (id) {
    case PROP_AGENT:
      if (self->agent) g_object_unref(self->agent);
      self->agent = static_cast<NiceAgent*>(g_value_dup_object(value));
      break;
    case PROP_STREAM:
      self->stream = g_value_get_uint(value);
      break;
    case PROP_COMPONENT:
      self->component = g_value_get_uint(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  IceSource* self = cast(object);
  switch (id) {
    case PROP_AGENT:
      g_value_set_object(value, self->agent);
      break;
    case PROP_STREAM:
      g_value_set_uint(value, self->stream);
      break;
    case PROP_COMPONENT:
      g_value_set_uint(value, self->component);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void finalize(GObject* object) {
  IceSource* self = cast(object);
  detach(self);  // only if never stopped properly
  self->bypass.~ReceiveBypass();
  if (self->agent) g_object_unref(self->agent);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

void class_init(gpointer klass, gpointer) {
  parent_class = GST_ELEMENT_CLASS(g_type_class_peek_parent(klass));
  auto* gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(
      gobject_class, PROP_AGENT,
      g_param_spec_object("agent", "Agent", "The libnice agent", NICE_TYPE_AGENT, flags));
  g_object_class_install_property(
      gobject_class, PROP_STREAM,
      g_param_spec_uint("stream", "Stream", "The agent's stream id", 0, G_MAXUINT, 0, flags));
  g_object_class_install_property(
      gobject_class, PROP_COMPONENT,
      g_param_spec_uint("component", "Component", "The stream's component id", 0, G_MAXUINT, 0,
                        flags));
  auto* element_class = GST_ELEMENT_CLASS(klass);
  element_class->change_state = change_state;
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Shared-context ICE source", "Source/Network",
      "Pushes what libnice receives from the process's shared ICE threads", "realtime-gateway");
}

void instance_init(GTypeInstance* instance, gpointer) {
  IceSource* self = cast(instance);
  new (&self->bypass) ReceiveBypass();
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, src_query);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

}  // namespace

GType ice_source_get_type() {
  static GType type = [] {
    GST_DEBUG_CATEGORY_INIT(ice_source_debug, "rtgwicesrc", 0, "shared-context ICE source");
    return g_type_register_static_simple(GST_TYPE_ELEMENT, "RtgwIceSource", sizeof(IceSourceClass),
                                         class_init, sizeof(IceSource), instance_init,
                                         static_cast<GTypeFlags>(0));
  }();
  return type;
}

bool register_ice_source() {
  return gst_element_register(nullptr, "rtgwicesrc", GST_RANK_NONE, ice_source_get_type());
}

GstElement* ice_source_new(GObject* agent, guint stream, guint component) {
  GstElement* element = gst_element_factory_make("rtgwicesrc", nullptr);
  if (element)
    g_object_set(element, "agent", agent, "stream", stream, "component", component, nullptr);
  return element;
}

}  // namespace rtgw::webrtc
