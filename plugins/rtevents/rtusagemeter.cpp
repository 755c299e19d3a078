// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rtusagemeter
 * @title: rtusagemeter
 *
 * Meters realtime turns (SPEC "Usage metering"). Every buffer passes untouched, in place (the
 * element is always in passthrough); the element only reads the events.
 *
 * A call uses two instances, one per event path:
 * - `direction=client` (after rteventfilter on the client→upstream path) notes each
 *   `response.create`: its time, its event_id and the service tier actually sent
 *   (`response.service_tier` after filtering, else a top-level `service_tier`, else the session's
 *   last sent `session.service_tier`), and hands it to its peer;
 * - `direction=upstream` (upstream→client path) opens a turn on `response.created` (request time =
 *   the peer's oldest pending request, else now), notes the first output delta (any
 *   `response.*delta` type: response.output_audio.delta, response.output_audio_transcript.delta,
 *   response.output_text.delta, response.audio.delta, ...), and on `response.done` posts one
 *   `rtusage-turn` message. A `response.done` with no earlier event of its response is still
 *   metered: its request time is the peer's oldest pending request if any, else the
 *   `response.done` itself (duration 0). An upstream `error` naming a pending request's event_id
 *   drops that request. See usage.h for the details.
 *
 * The two instances are paired by name: set `peer` on either one to the other's name; when the
 * named instance goes READY→PAUSED it looks its peer up from its parent bin (searching upwards)
 * and the pair shares one request queue. Neither holds a reference to the other element: they
 * share a reference-counted queue, so either can be disposed first. Without a peer the upstream
 * instance meters alone (request time = `response.created`, tier "").
 *
 * ## Caps
 * `application/x-realtime-event` on both pads: one UTF-8 JSON event per buffer.
 *
 * ## Properties
 * - `direction` (RtUsageMeterDirection, default `upstream`): `upstream` or `client`.
 * - `peer` (string, default ""): name of the sibling rtusagemeter; resolved at READY→PAUSED.
 * - `turns`, `input-tokens-total`, `output-tokens-total` (guint64, read-only): totals over the
 *   element's lifetime (not reset by state changes or flushes; saturating, never wrapping).
 *
 * ## Messages
 * Element message `rtusage-turn`, posted by the `upstream` instance from its streaming thread on
 * each `response.done` (kind `response`) and on each
 * `conversation.item.input_audio_transcription.completed` that carries `usage` (kind
 * `transcription`, in any session), and on each `session.*` event that carries `usage` (kind
 * `translation`: a translation session's continuous usage):
 * - `kind` (string): `response`, `transcription` or `translation`
 * - `response-id` (kind response), `item-id` (kind transcription), `status` (string; "" when
 *   missing; "completed" for a transcription)
 * - `usage-present` (boolean): `response.usage` is an object
 * - `input-tokens`, `output-tokens`, `total-tokens`, `input-text-tokens`, `input-audio-tokens`,
 *   `input-image-tokens`, `input-cached-tokens`, `output-text-tokens`, `output-audio-tokens`,
 *   `input-cached-text-tokens`, `input-cached-audio-tokens`, `input-cached-image-tokens` (from
 *   `input_token_details.cached_tokens_details`) (gint64): 0 when missing, not a JSON integer,
 *   or negative
 * - `input-cached-details-present` (boolean): `input_token_details.cached_tokens_details` is an
 *   object
 * - `transcription-seconds` (gdouble): a duration-billed transcription's `usage.seconds`, or the
 *   audio seconds of a translation report; else 0
 * - `usage-clamped` (boolean): a token count was over 10^9 (or not a 64-bit integer) and is
 *   reported at that cap: invalid usage from the worker (see usage.h)
 * - `service-tier` (string): normalized tier sent for the turn, "" if none
 * - `first-token-latency-ms` (gdouble): request → first output delta, -1 if none was seen
 * - `turn-duration-ms` (gdouble): request → `response.done`
 * Times come from g_get_monotonic_time() when the buffers pass the meters.
 * A `peer` that cannot be resolved posts a GST_ELEMENT_WARNING from the state-change thread.
 *
 * ## Threads and locks
 * `direction`, `peer`, the link to the shared queue and the counters are guarded by the object
 * lock; the turn table belongs to the streaming thread (reset() runs on it at FLUSH_STOP, or from
 * stop() once streaming has stopped). The shared queue has its own mutex. No lock is held while
 * posting or while taking another element's object lock.
 *
 * ## Example
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 -m \
 *   filesrc location=plugins/rtevents/examples/events.jsonl ! rteventparse ! rtusagemeter ! \
 *   fakesink
 * ]| prints one `rtusage-turn` element message per `response.done` in the file.
 */
#include "rtusagemeter.h"

#include <memory>
#include <string>
#include <utility>

#include "common/ref.h"
#include "element_util.h"
#include "json.h"
#include "usage.h"
#include "usage/saturating.h"

GST_DEBUG_CATEGORY_STATIC(rt_usage_meter_debug);
#define GST_CAT_DEFAULT rt_usage_meter_debug

namespace {

using rtgw::Ref;
using rtgw::rtevents::TurnRecord;
using rtgw::rtevents::TurnTracker;
using rtgw::rtevents::UsageLink;

constexpr RtUsageMeterDirection kDefaultDirection = RT_USAGE_METER_DIRECTION_UPSTREAM;
constexpr const char* kDefaultPeer = "";

enum {
  PROP_0,
  PROP_DIRECTION,
  PROP_PEER,
  PROP_TURNS,
  PROP_INPUT_TOKENS_TOTAL,
  PROP_OUTPUT_TOKENS_TOTAL,
  PROP_OPEN_TURNS,
  N_PROPS
};
GParamSpec* properties[N_PROPS];

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));

// C++ state of one element, created in instance_init, deleted in finalize.
struct MeterImpl {
  // Immutable after construction: the queue this instance owns (read by an upstream instance,
  // written by the client instance linked to it).
  const std::shared_ptr<UsageLink> own_link = std::make_shared<UsageLink>();

  // Guarded by the object lock.
  RtUsageMeterDirection direction = kDefaultDirection;
  std::string peer = kDefaultPeer;
  std::shared_ptr<UsageLink> link = own_link;  // client direction: where requests go
  guint64 turns = 0;
  guint64 input_tokens_total = 0;
  guint64 output_tokens_total = 0;
  guint open_turns = 0;  // mirror of tracker.open_turns() for readers on other threads

  // Streaming thread only (see reset()).
  TurnTracker tracker;
};

}  // namespace

struct _RtUsageMeter {
  GstBaseTransform parent;
  MeterImpl* impl;  // owned; see MeterImpl for locking
};

GType rt_usage_meter_direction_get_type(void) {
  static const GEnumValue values[] = {
      {RT_USAGE_METER_DIRECTION_UPSTREAM,
       "Upstream→client events (response.created, deltas, response.done): meters turns",
       "upstream"},
      {RT_USAGE_METER_DIRECTION_CLIENT,
       "Client→upstream events after the filter: notes response.create times and tiers for the "
       "peer",
       "client"},
      {0, nullptr, nullptr},
  };
  // C++ guarantees a thread-safe, once-only initialization of a function-local static.
  static const GType type = g_enum_register_static("RtUsageMeterDirection", values);
  return type;
}

G_DEFINE_TYPE(RtUsageMeter, rt_usage_meter, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(rtusagemeter, "rtusagemeter", GST_RANK_NONE, RT_TYPE_USAGE_METER);

namespace {

// Forgets per-stream state: open turns and, on the upstream side, pending requests. Runs on the
// streaming thread (FLUSH_STOP) or from stop() after streaming stopped.
void reset(RtUsageMeter* self) {
  MeterImpl& impl = *self->impl;
  impl.tracker.reset();
  GST_OBJECT_LOCK(self);
  impl.open_turns = 0;
  const bool upstream = impl.direction == RT_USAGE_METER_DIRECTION_UPSTREAM;
  GST_OBJECT_UNLOCK(self);
  if (upstream) impl.own_link->clear();
}

// Resolves `peer` from the parent bin and shares the request queue with it. Called from start()
// (READY→PAUSED) without any lock held; takes each element's object lock in turn, never both.
void link_peer(RtUsageMeter* self) {
  MeterImpl& impl = *self->impl;
  GST_OBJECT_LOCK(self);
  const std::string name = impl.peer;
  const RtUsageMeterDirection direction = impl.direction;
  GST_OBJECT_UNLOCK(self);
  if (name.empty()) return;  // a peer that names us may link us; leave `link` alone

  Ref<GstElement> found;
  const auto parent = Ref<GstObject>::adopt(gst_object_get_parent(GST_OBJECT(self)));
  if (parent && GST_IS_BIN(parent.get())) {
    found =
        Ref<GstElement>::adopt(gst_bin_get_by_name_recurse_up(GST_BIN(parent.get()), name.c_str()));
  }
  if (!found || !RT_IS_USAGE_METER(found.get()) || found.get() == GST_ELEMENT(self)) {
    GST_OBJECT_LOCK(self);
    impl.link = impl.own_link;
    GST_OBJECT_UNLOCK(self);
    GST_ELEMENT_WARNING(self, CORE, FAILED, ("Usage meter peer \"%s\" not found", name.c_str()),
                        ("no rtusagemeter named \"%s\" in the parent bins; metering without "
                         "request times",
                         name.c_str()));
    return;
  }
  auto* other = RT_USAGE_METER(found.get());
  GST_OBJECT_LOCK(other);
  const RtUsageMeterDirection other_direction = other->impl->direction;
  GST_OBJECT_UNLOCK(other);
  if (other_direction == direction) {
    GST_ELEMENT_WARNING(self, CORE, FAILED,
                        ("Usage meter peer \"%s\" has the same direction", name.c_str()),
                        ("one meter must have direction=client and the other direction=upstream"));
    return;
  }
  if (direction == RT_USAGE_METER_DIRECTION_CLIENT) {
    // other->impl->own_link is immutable: no lock needed to read it.
    GST_OBJECT_LOCK(self);
    impl.link = other->impl->own_link;
    GST_OBJECT_UNLOCK(self);
  } else {
    GST_OBJECT_LOCK(other);
    other->impl->link = impl.own_link;
    GST_OBJECT_UNLOCK(other);
  }
  GST_INFO_OBJECT(self, "linked to peer %s", name.c_str());
}

const char* turn_kind(TurnRecord::Kind kind) {
  switch (kind) {
    case TurnRecord::Kind::kTranscription:
      return "transcription";
    case TurnRecord::Kind::kTranslation:
      return "translation";
    case TurnRecord::Kind::kResponse:
      break;
  }
  return "response";
}

void post_turn(RtUsageMeter* self, const TurnRecord& r) {
  using rtgw::rtevents::valid_utf8;
  const auto& u = r.usage;
  // The token counts are one field per row of the field table (usage_fields.h), set in the
  // message's historical field order.
  GstStructure* s = gst_structure_new_empty("rtusage-turn");
  // clang-format off
  gst_structure_set(s,
      "response-id", G_TYPE_STRING, valid_utf8(r.response_id).c_str(),
      "status", G_TYPE_STRING, valid_utf8(r.status).c_str(),
      "usage-present", G_TYPE_BOOLEAN, u.present ? TRUE : FALSE,
      nullptr);
  rtgw::rtevents::set_gst_token_fields(s, u, rtgw::rtevents::GstTokenPart::kCounts);
  gst_structure_set(s,
      "service-tier", G_TYPE_STRING, valid_utf8(r.service_tier).c_str(),
      "first-token-latency-ms", G_TYPE_DOUBLE, r.first_token_latency_ms,
      "turn-duration-ms", G_TYPE_DOUBLE, r.turn_duration_ms,
      "kind", G_TYPE_STRING, turn_kind(r.kind),
      "item-id", G_TYPE_STRING, valid_utf8(r.item_id).c_str(),
      nullptr);
  rtgw::rtevents::set_gst_token_fields(s, u, rtgw::rtevents::GstTokenPart::kCachedDetails);
  gst_structure_set(s,
      "transcription-seconds", G_TYPE_DOUBLE, u.seconds,
      "usage-clamped", G_TYPE_BOOLEAN, u.clamped ? TRUE : FALSE,
      nullptr);
  // clang-format on
  GST_INFO_OBJECT(self,
                  "turn %s: %s, %" G_GINT64_FORMAT " in / %" G_GINT64_FORMAT
                  " out tokens, tier \"%s\", first token %.1f ms, duration %.1f ms",
                  r.response_id.c_str(), r.status.c_str(), static_cast<gint64>(u.input_tokens),
                  static_cast<gint64>(u.output_tokens), r.service_tier.c_str(),
                  r.first_token_latency_ms, r.turn_duration_ms);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

GstFlowReturn meter_buffer(RtUsageMeter* self, GstBuffer* buffer) {
  MeterImpl& impl = *self->impl;
  rtgw::rtevents::MappedBuffer map(buffer, GST_MAP_READ);
  if (!map) {
    GST_WARNING_OBJECT(self, "could not map buffer, not metered");
    return GST_FLOW_OK;
  }
  const auto parsed = rtgw::rtevents::json::parse(map.view());  // views into `map`
  if (!parsed.root || !parsed.root->is_object()) return GST_FLOW_OK;
  const gint64 now = g_get_monotonic_time();

  GST_OBJECT_LOCK(self);
  const RtUsageMeterDirection direction = impl.direction;
  std::shared_ptr<UsageLink> link = impl.link;
  GST_OBJECT_UNLOCK(self);

  if (direction == RT_USAGE_METER_DIRECTION_CLIENT) {
    rtgw::rtevents::note_client_event(*parsed.root, now, *link);
    return GST_FLOW_OK;
  }
  const auto record = impl.tracker.on_upstream_event(*parsed.root, now, impl.own_link.get());
  const auto open_turns = static_cast<guint>(impl.tracker.open_turns());
  GST_OBJECT_LOCK(self);
  impl.open_turns = open_turns;
  GST_OBJECT_UNLOCK(self);
  if (!record) return GST_FLOW_OK;
  GST_OBJECT_LOCK(self);
  ++impl.turns;
  rtgw::usage::add_to<std::uint64_t>(impl.input_tokens_total,
                                     static_cast<guint64>(record->usage.input_tokens));
  rtgw::usage::add_to<std::uint64_t>(impl.output_tokens_total,
                                     static_cast<guint64>(record->usage.output_tokens));
  GST_OBJECT_UNLOCK(self);
  post_turn(self, *record);
  return GST_FLOW_OK;
}

// ----- GObject / GstBaseTransform trampolines --------------------------------------------------

GstFlowReturn transform_ip(GstBaseTransform* trans, GstBuffer* buffer) {
  auto* self = RT_USAGE_METER(trans);
  // Metering must never stop the event flow: on an exception the buffer still passes.
  return rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "transform_ip", GST_FLOW_OK,
                                 [&] { return meter_buffer(self, buffer); });
}

gboolean start(GstBaseTransform* trans) {
  auto* self = RT_USAGE_METER(trans);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "start", [&] { link_peer(self); });
  return TRUE;
}

gboolean stop(GstBaseTransform* trans) {
  auto* self = RT_USAGE_METER(trans);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "stop", [&] { reset(self); });
  return TRUE;
}

gboolean sink_event(GstBaseTransform* trans, GstEvent* event) {
  auto* self = RT_USAGE_METER(trans);
  if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP) {
    rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "flush", [&] { reset(self); });
  }
  return GST_BASE_TRANSFORM_CLASS(rt_usage_meter_parent_class)->sink_event(trans, event);
}

void set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  auto* self = RT_USAGE_METER(object);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "set_property", [&] {
    MeterImpl& impl = *self->impl;
    switch (prop_id) {
      case PROP_DIRECTION:
        GST_OBJECT_LOCK(self);
        impl.direction = static_cast<RtUsageMeterDirection>(g_value_get_enum(value));
        GST_OBJECT_UNLOCK(self);
        break;
      case PROP_PEER: {
        const gchar* s = g_value_get_string(value);
        std::string peer = s ? s : "";
        GST_OBJECT_LOCK(self);
        impl.peer = std::move(peer);
        GST_OBJECT_UNLOCK(self);
        break;
      }
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
        break;
    }
  });
}

void get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
  auto* self = RT_USAGE_METER(object);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "get_property", [&] {
    const MeterImpl& impl = *self->impl;
    GST_OBJECT_LOCK(self);
    switch (prop_id) {
      case PROP_DIRECTION:
        g_value_set_enum(value, impl.direction);
        break;
      case PROP_PEER:
        g_value_set_string(value, impl.peer.c_str());
        break;
      case PROP_TURNS:
        g_value_set_uint64(value, impl.turns);
        break;
      case PROP_INPUT_TOKENS_TOTAL:
        g_value_set_uint64(value, impl.input_tokens_total);
        break;
      case PROP_OUTPUT_TOKENS_TOTAL:
        g_value_set_uint64(value, impl.output_tokens_total);
        break;
      case PROP_OPEN_TURNS:
        g_value_set_uint(value, impl.open_turns);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
        break;
    }
    GST_OBJECT_UNLOCK(self);
  });
}

void finalize(GObject* object) {
  auto* self = RT_USAGE_METER(object);
  delete std::exchange(self->impl, nullptr);
  G_OBJECT_CLASS(rt_usage_meter_parent_class)->finalize(object);
}

}  // namespace

static void rt_usage_meter_class_init(RtUsageMeterClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);
  auto* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_usage_meter_debug, "rtusagemeter", 0, "Realtime turn usage meter");

  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;

  constexpr auto rw_ready = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                     GST_PARAM_MUTABLE_READY);
  constexpr auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_DIRECTION] = g_param_spec_enum(
      "direction", "Direction",
      "Event path this meter sits on: upstream (upstream→client, meters turns) or client "
      "(client→upstream after the filter, notes response.create requests for the peer)",
      RT_TYPE_USAGE_METER_DIRECTION, kDefaultDirection, rw_ready);
  properties[PROP_PEER] = g_param_spec_string(
      "peer", "Peer",
      "Name of the sibling rtusagemeter of the other direction, looked up from the parent bin at "
      "READY→PAUSED; the pair shares the queue of pending response.create requests",
      kDefaultPeer, rw_ready);
  properties[PROP_TURNS] = g_param_spec_uint64(
      "turns", "Turns",
      "Turns metered (response.done and metered transcriptions) since the element was created", 0,
      G_MAXUINT64, 0, ro);
  properties[PROP_INPUT_TOKENS_TOTAL] = g_param_spec_uint64(
      "input-tokens-total", "Input tokens total",
      "Sum of usage.input_tokens over all metered turns", 0, G_MAXUINT64, 0, ro);
  properties[PROP_OUTPUT_TOKENS_TOTAL] = g_param_spec_uint64(
      "output-tokens-total", "Output tokens total",
      "Sum of usage.output_tokens over all metered turns", 0, G_MAXUINT64, 0, ro);
  properties[PROP_OPEN_TURNS] = g_param_spec_uint(
      "open-turns", "Open turns",
      "Responses started (response.created) and not yet done: a caller leaving now would leave "
      "them unmetered unless it waits for their response.done",
      0, G_MAXUINT, 0, ro);
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Realtime usage meter", "Filter/Analyzer",
      "Meters realtime turns (token usage, service tier, first-token latency, duration) and posts "
      "one message per response.done; passes every event untouched",
      "Realtime Gateway developers");
  gst_type_mark_as_plugin_api(RT_TYPE_USAGE_METER_DIRECTION, static_cast<GstPluginAPIFlags>(0));

  trans_class->transform_ip = transform_ip;
  trans_class->start = start;
  trans_class->stop = stop;
  trans_class->sink_event = sink_event;
  trans_class->passthrough_on_same_caps = TRUE;
  trans_class->transform_ip_on_passthrough = TRUE;
}

static void rt_usage_meter_init(RtUsageMeter* self) {
  self->impl =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<MeterImpl*>(nullptr),
                              [] { return new MeterImpl(); });
  if (!self->impl) g_error("rtusagemeter: out of memory");
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
