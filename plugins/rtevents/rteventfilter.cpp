// SPDX-License-Identifier: MIT
/**
 * SECTION:element-rteventfilter
 * @title: rteventfilter
 *
 * Applies the gateway's event policy (SPEC "Policy") to client→upstream realtime events, one JSON
 * event per buffer. Every buffer goes one of three ways:
 *
 * - untouched: the very same buffer goes on, byte-for-byte (no re-serialization). This covers
 *   `pass` decisions, events no rule touches, malformed JSON and non-string tiers;
 * - filtered: the `service_tier` member(s) a `filter` rule matched are cut out, and a
 *   `reasoning.effort` above a `lower` rule's cap is rewritten to the cap; every other byte of the
 *   event is kept as the client wrote it;
 * - dropped: the event is refused (too large, denied type, budget, `block` rule) and nothing goes
 *   downstream (GST_BASE_TRANSFORM_FLOW_DROPPED).
 *
 * The rules themselves are documented in policy.h. Filter and drop decisions are always reported
 * with an element message; the element holds no other server logic (it does not answer the
 * client: the application builds the error event from the message).
 *
 * ## Caps
 * `application/x-realtime-event` on both pads: one UTF-8 JSON event per buffer, no NUL.
 *
 * ## Properties
 * - `policy` (string, default ""): the SPEC's `policy` object as JSON text: `service_tier` rules,
 *   `deny_client_events`, `reasoning_effort` rules, `max_event_bytes` (65536 when omitted). "" = no
 * rules and no size limit. Whatever the policy, an event that is not strict JSON (json_strict.h) is
 * dropped (reason "invalid_json", rule "strict_json"). Parsed once when set; invalid text is
 * refused with a GST_ELEMENT_WARNING and the previous policy stays in force (reading the property
 * returns the policy in force).
 * - `key-name` (string, default ""): the caller's gateway key name, matched against rule `keys`.
 * - `model` (string, default ""): the session model used when an event names none. The element
 *   updates it when a `session.update` that is not blocked carries `session.model`
 *   (notify::model is then emitted from the streaming thread).
 * - `budget-exceeded` (boolean, default FALSE): when TRUE every `response.create` is blocked
 *   (rule "budget").
 * - `allowed-models` (string, default ""): the models the key may use, comma-separated glob
 *   patterns; "" = any. A `session.update` whose session names a transcription model
 *   (`audio.input.transcription.model`, beta `input_audio_transcription.model`) outside them is
 *   blocked (reason "model_not_allowed", rule "models").
 * - `events-in`, `events-blocked`, `events-filtered` (guint64, read-only): counters over the
 *   element's lifetime (not reset by state changes).
 *
 * ## Messages
 * Element message `rtevent-decision`, posted from the streaming thread, once per filtered or
 * dropped event, before the buffer goes on (or is dropped):
 * - `action` (string): "filter", "block" or "lower" (a reasoning effort rewritten to its cap)
 * - `reason` (string): "service_tier", "denied_event", "too_large", "budget", "invalid_json",
 *   "model_not_allowed" or "reasoning_effort"
 * - `rule` (string): "service_tier[N]", "deny_client_events[N]", "max_event_bytes", "budget",
 *   "strict_json", "models" or "reasoning_effort[N]"
 * - `event-type` (string): the event's `type`, "" if unknown
 * - `event-id` (string): the client's `event_id`, "" if none
 * - `tier` (string): the normalized service tier concerned, "" if none
 * - `model` (string): the model the rule was evaluated for (else the session model)
 * - `end-call` (boolean): the `block` rule asks to end the call
 * - `message` (string): human-readable reason, for the error event sent to the client
 * Client-supplied strings are made valid UTF-8 first.
 *
 * ## Threads and locks
 * Properties are set from any thread; buffers are processed on the streaming thread. All settings
 * and counters live in the element's private state behind the object lock; the streaming thread
 * copies what it needs under the lock, evaluates without it, and posts messages and notifies only
 * after releasing it. The element keeps no per-stream state (the policy, key, model and counters
 * are settings and lifetime totals), so flushes and state changes have nothing to reset.
 *
 * ## Example
 * |[
 * GST_PLUGIN_PATH=build/plugins/rtevents gst-launch-1.0 -m \
 *   filesrc location=plugins/rtevents/examples/events.jsonl ! rteventparse ! \
 *   rteventfilter key-name=team-a model=gpt-realtime \
 *     policy='{"service_tier":[{"tier":"priority","action":"filter"}],"max_event_bytes":4096}' ! \
 *   fakesink
 * ]| prints one `rtevent-decision` element message per filtered or refused event.
 */
#include "rteventfilter.h"

#include <memory>
#include <string>
#include <utility>

#include "common/ref.h"
#include "element_util.h"
#include "policy.h"

GST_DEBUG_CATEGORY_STATIC(rt_event_filter_debug);
#define GST_CAT_DEFAULT rt_event_filter_debug

namespace {

using rtgw::rtevents::Decision;
using rtgw::rtevents::FilterOutcome;
using rtgw::rtevents::Policy;

constexpr const char* kDefaultPolicy = "";
constexpr const char* kDefaultKeyName = "";
constexpr const char* kDefaultModel = "";
constexpr gboolean kDefaultBudgetExceeded = FALSE;
constexpr const char* kDefaultAllowedModels = "";

enum {
  PROP_0,
  PROP_POLICY,
  PROP_KEY_NAME,
  PROP_MODEL,
  PROP_BUDGET_EXCEEDED,
  PROP_ALLOWED_MODELS,
  PROP_EVENTS_IN,
  PROP_EVENTS_BLOCKED,
  PROP_EVENTS_FILTERED,
  N_PROPS
};
GParamSpec* properties[N_PROPS];

GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));
GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("application/x-realtime-event"));

// C++ state of one element, created in instance_init, deleted in finalize.
struct FilterImpl {
  // All fields: guarded by the object lock.
  std::string policy_json = kDefaultPolicy;  // the text of `policy` in force
  std::shared_ptr<const Policy> policy =     // never null
      std::make_shared<const Policy>();
  std::string key_name = kDefaultKeyName;
  std::string model = kDefaultModel;
  bool budget_exceeded = kDefaultBudgetExceeded;
  std::string allowed_models_text = kDefaultAllowedModels;  // `allowed-models` as set
  // Parsed from it; nullopt: any model.
  std::optional<std::vector<std::string>> allowed_models;
  guint64 events_in = 0;
  guint64 events_blocked = 0;
  guint64 events_filtered = 0;
};

}  // namespace

struct _RtEventFilter {
  GstBaseTransform parent;
  FilterImpl* impl;  // owned; see FilterImpl for locking
};

G_DEFINE_TYPE(RtEventFilter, rt_event_filter, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(rteventfilter, "rteventfilter", GST_RANK_NONE, RT_TYPE_EVENT_FILTER);

namespace {

std::string dup_or_empty(const GValue* value) {
  const gchar* s = g_value_get_string(value);
  return s ? s : "";
}

// Parses and installs a new policy. Called without any lock held; takes the object lock.
void set_policy(RtEventFilter* self, std::string text) {
  std::string error;
  std::shared_ptr<const Policy> parsed = Policy::parse(text, &error);
  if (!parsed) {
    GST_WARNING_OBJECT(self, "refusing invalid policy, keeping the previous one: %s",
                       error.c_str());
    GST_ELEMENT_WARNING(self, LIBRARY, SETTINGS, ("Invalid policy, keeping the previous one"),
                        ("%s", error.c_str()));
    return;
  }
  GST_DEBUG_OBJECT(
      self, "policy: %zu service_tier rules, %zu deny rules, max_event_bytes %" G_GINT64_FORMAT,
      parsed->tier_rules.size(), parsed->deny_rules.size(), parsed->max_event_bytes);
  GST_OBJECT_LOCK(self);
  self->impl->policy_json = std::move(text);
  self->impl->policy = std::move(parsed);
  GST_OBJECT_UNLOCK(self);
}

void post_decision(RtEventFilter* self, const Decision& d) {
  using rtgw::rtevents::valid_utf8;
  // clang-format off
  GstStructure* s = gst_structure_new(
      "rtevent-decision",
      "action", G_TYPE_STRING, rtgw::rtevents::action_name(d.action),
      "reason", G_TYPE_STRING, rtgw::rtevents::reason_name(d.reason),
      "rule", G_TYPE_STRING, d.rule.c_str(),
      "event-type", G_TYPE_STRING, valid_utf8(d.event_type).c_str(),
      "event-id", G_TYPE_STRING, valid_utf8(d.event_id).c_str(),
      "tier", G_TYPE_STRING, valid_utf8(d.tier).c_str(),
      "model", G_TYPE_STRING, valid_utf8(d.model).c_str(),
      "end-call", G_TYPE_BOOLEAN, d.end_call ? TRUE : FALSE,
      "message", G_TYPE_STRING, valid_utf8(d.message).c_str(),
      nullptr);
  // clang-format on
  GST_INFO_OBJECT(self, "%s %s (%s): %s", rtgw::rtevents::action_name(d.action),
                  d.event_type.c_str(), d.rule.c_str(), d.message.c_str());
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// Replaces the buffer's content with `text` without copying it. `buffer` is writable (in-place
// transform).
void replace_content(GstBuffer* buffer, std::string text) {
  auto owned = std::make_unique<std::string>(std::move(text));
  const gsize size = owned->size();
  gpointer data = owned->data();
  GstMemory* mem = gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, data, size, 0, size,
                                          owned.release(), &rtgw::UserData<std::string>::destroy);
  gst_buffer_replace_all_memory(buffer, mem);  // takes `mem`, which owns the string
}

GstFlowReturn filter_buffer(RtEventFilter* self, GstBuffer* buffer) {
  FilterImpl& impl = *self->impl;
  GST_OBJECT_LOCK(self);
  std::shared_ptr<const Policy> policy = impl.policy;
  std::string key_name = impl.key_name;
  std::string model = impl.model;
  const bool budget_exceeded = impl.budget_exceeded;
  const std::optional<std::vector<std::string>> allowed_models = impl.allowed_models;
  GST_OBJECT_UNLOCK(self);

  FilterOutcome outcome;
  {
    rtgw::rtevents::MappedBuffer map(buffer, GST_MAP_READ);
    if (!map) {
      GST_ELEMENT_ERROR(self, RESOURCE, READ, (nullptr), ("could not map the event buffer"));
      return GST_FLOW_ERROR;
    }
    outcome = rtgw::rtevents::apply_policy(
        *policy, {key_name, model, budget_exceeded, allowed_models ? &*allowed_models : nullptr},
        map.view());
  }

  bool model_changed = false;
  GST_OBJECT_LOCK(self);
  ++impl.events_in;
  if (outcome.kind == FilterOutcome::Kind::kDropped) ++impl.events_blocked;
  if (outcome.kind == FilterOutcome::Kind::kModified && outcome.decision) ++impl.events_filtered;
  if (outcome.new_session_model && *outcome.new_session_model != impl.model) {
    impl.model = *outcome.new_session_model;
    model_changed = true;
  }
  GST_OBJECT_UNLOCK(self);

  if (model_changed) {
    GST_DEBUG_OBJECT(self, "session model is now \"%s\"", outcome.new_session_model->c_str());
    g_object_notify_by_pspec(G_OBJECT(self), properties[PROP_MODEL]);
  }
  if (outcome.decision) post_decision(self, *outcome.decision);

  switch (outcome.kind) {
    case FilterOutcome::Kind::kUntouched:
      return GST_FLOW_OK;
    case FilterOutcome::Kind::kDropped:
      return GST_BASE_TRANSFORM_FLOW_DROPPED;
    case FilterOutcome::Kind::kModified:
      replace_content(buffer, std::move(outcome.modified));
      return GST_FLOW_OK;
  }
  return GST_FLOW_OK;
}

// ----- GObject / GstBaseTransform trampolines --------------------------------------------------

GstFlowReturn transform_ip(GstBaseTransform* trans, GstBuffer* buffer) {
  auto* self = RT_EVENT_FILTER(trans);
  // Fail closed: an internal error stops the event flow and is reported as an element error.
  bool threw = false;
  const GstFlowReturn ret = rtgw::rtevents::guarded_flow(
      GST_CAT_DEFAULT, self, "transform_ip", &threw, [&] { return filter_buffer(self, buffer); });
  if (threw)
    GST_ELEMENT_ERROR(self, CORE, FAILED, (nullptr), ("internal error applying the policy"));
  return ret;
}

void set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
  auto* self = RT_EVENT_FILTER(object);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "set_property", [&] {
    FilterImpl& impl = *self->impl;
    switch (prop_id) {
      case PROP_POLICY:
        set_policy(self, dup_or_empty(value));
        break;
      case PROP_KEY_NAME: {
        std::string v = dup_or_empty(value);
        GST_OBJECT_LOCK(self);
        impl.key_name = std::move(v);
        GST_OBJECT_UNLOCK(self);
        break;
      }
      case PROP_MODEL: {
        std::string v = dup_or_empty(value);
        GST_OBJECT_LOCK(self);
        impl.model = std::move(v);
        GST_OBJECT_UNLOCK(self);
        break;
      }
      case PROP_BUDGET_EXCEEDED:
        GST_OBJECT_LOCK(self);
        impl.budget_exceeded = g_value_get_boolean(value);
        GST_OBJECT_UNLOCK(self);
        break;
      case PROP_ALLOWED_MODELS: {
        std::string text = dup_or_empty(value);
        std::optional<std::vector<std::string>> list;
        if (!text.empty()) {
          list.emplace();
          for (std::string_view rest = text; !rest.empty();) {
            const auto comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            if (!item.empty()) list->emplace_back(item);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
          }
        }
        GST_OBJECT_LOCK(self);
        impl.allowed_models_text = std::move(text);
        impl.allowed_models = std::move(list);
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
  auto* self = RT_EVENT_FILTER(object);
  rtgw::rtevents::guarded_void(GST_CAT_DEFAULT, self, "get_property", [&] {
    const FilterImpl& impl = *self->impl;
    GST_OBJECT_LOCK(self);
    switch (prop_id) {
      case PROP_POLICY:
        g_value_set_string(value, impl.policy_json.c_str());
        break;
      case PROP_KEY_NAME:
        g_value_set_string(value, impl.key_name.c_str());
        break;
      case PROP_MODEL:
        g_value_set_string(value, impl.model.c_str());
        break;
      case PROP_BUDGET_EXCEEDED:
        g_value_set_boolean(value, impl.budget_exceeded);
        break;
      case PROP_ALLOWED_MODELS:
        g_value_set_string(value, impl.allowed_models_text.c_str());
        break;
      case PROP_EVENTS_IN:
        g_value_set_uint64(value, impl.events_in);
        break;
      case PROP_EVENTS_BLOCKED:
        g_value_set_uint64(value, impl.events_blocked);
        break;
      case PROP_EVENTS_FILTERED:
        g_value_set_uint64(value, impl.events_filtered);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
        break;
    }
    GST_OBJECT_UNLOCK(self);
  });
}

void finalize(GObject* object) {
  auto* self = RT_EVENT_FILTER(object);
  delete std::exchange(self->impl, nullptr);
  G_OBJECT_CLASS(rt_event_filter_parent_class)->finalize(object);
}

}  // namespace

static void rt_event_filter_class_init(RtEventFilterClass* klass) {
  auto* gobject_class = G_OBJECT_CLASS(klass);
  auto* element_class = GST_ELEMENT_CLASS(klass);
  auto* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(rt_event_filter_debug, "rteventfilter", 0,
                          "Realtime event policy filter");

  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;

  constexpr auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                               GST_PARAM_MUTABLE_PLAYING);
  constexpr auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_POLICY] = g_param_spec_string(
      "policy", "Policy",
      "The SPEC's policy object as JSON: {\"service_tier\": [{tier, action, models, keys, "
      "fallback, end_call}], \"deny_client_events\": [{type, keys, end_call}], "
      "\"reasoning_effort\": [{max, action: lower|block, models, keys, end_call}], "
      "\"max_event_bytes\": N (default 65536)}. Empty = no rules, no size limit (events that are "
      "not strict JSON are still dropped). Invalid JSON is refused with a warning and the "
      "previous policy stays in force",
      kDefaultPolicy, rw);
  properties[PROP_KEY_NAME] = g_param_spec_string(
      "key-name", "Key name", "The caller's gateway key name, matched against the rules' keys",
      kDefaultKeyName, rw);
  properties[PROP_MODEL] = g_param_spec_string(
      "model", "Session model",
      "The session model, used by rules when an event names no model; updated by the element "
      "when a session.update that is not blocked carries session.model",
      kDefaultModel, rw);
  properties[PROP_BUDGET_EXCEEDED] = g_param_spec_boolean(
      "budget-exceeded", "Budget exceeded",
      "When TRUE every response.create is blocked (rule \"budget\")", kDefaultBudgetExceeded, rw);
  properties[PROP_ALLOWED_MODELS] = g_param_spec_string(
      "allowed-models", "Allowed models",
      "The models the key may use, comma-separated glob patterns (\"\" = any): a session.update "
      "naming a transcription model outside them is blocked (rule \"models\")",
      kDefaultAllowedModels, rw);
  properties[PROP_EVENTS_IN] =
      g_param_spec_uint64("events-in", "Events in", "Events received since the element was created",
                          0, G_MAXUINT64, 0, ro);
  properties[PROP_EVENTS_BLOCKED] =
      g_param_spec_uint64("events-blocked", "Events blocked",
                          "Events dropped (too large, denied, over budget or blocked by a rule)", 0,
                          G_MAXUINT64, 0, ro);
  properties[PROP_EVENTS_FILTERED] =
      g_param_spec_uint64("events-filtered", "Events filtered",
                          "Events passed on with filtered fields removed", 0, G_MAXUINT64, 0, ro);
  g_object_class_install_properties(gobject_class, N_PROPS, properties);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Realtime event policy filter", "Filter/Network",
      "Applies the gateway policy to client realtime events: passes, filters fields or blocks "
      "events and reports every decision on the bus",
      "Realtime Gateway developers");

  trans_class->transform_ip = transform_ip;
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;
}

static void rt_event_filter_init(RtEventFilter* self) {
  self->impl =
      rtgw::rtevents::guarded(GST_CAT_DEFAULT, self, "init", static_cast<FilterImpl*>(nullptr),
                              [] { return new FilterImpl(); });
  if (!self->impl) g_error("rteventfilter: out of memory");
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), FALSE);
}
