// SPDX-License-Identifier: MIT
#include "events/event_path.h"

#include <gst/app/app.h>

#include <stdexcept>

#include "common/pipeline.h"
#include "common/pipeline_reaper.h"

namespace rtgw::events {
namespace {

Ref<GstElement> find(GstElement* pipeline, const char* name) {
  auto e = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline), name));
  if (!e)
    throw std::runtime_error(std::string("the event path has no element named '") + name + "'");
  return e;
}

Ref<GstElement> build_session_pipeline(const std::string& description) {
  auto pipeline = build_pipeline(description, "session",
                                 {kClientEventsIn, kUpstreamEventsOut, kUpstreamEventsIn,
                                  kClientEventsOut, kClientEventsFilter, kUpstreamEventsMeter});
  check_sources(pipeline.get());
  return pipeline;
}

}  // namespace

void check_sources(GstElement* pipeline) {
  for (const char* name : {kClientEventsIn, kUpstreamEventsIn}) {
    auto source = find(pipeline, name);
    if (g_signal_lookup("push-buffer", G_OBJECT_TYPE(source.get())) == 0)
      throw std::runtime_error(std::string("the event path's '") + name + "' (" +
                               G_OBJECT_TYPE_NAME(source.get()) +
                               ") cannot take events: it has no push-buffer action signal (use "
                               "rteventsrc or appsrc)");
  }
}

void check_session_description(const std::string& description) {
  build_session_pipeline(description);
}

void push_event(GstElement* source, const char* data, gsize length) {
  auto buffer = Ref<GstBuffer>::adopt(gst_buffer_new_memdup(data, length));
  // rteventsrc (or appsrc) takes its own reference. A flushing or EOS source just refuses the
  // event (the path is stopping); anything worse was posted on the bus by the source.
  GstFlowReturn ret = GST_FLOW_OK;
  g_signal_emit_by_name(source, "push-buffer", buffer.get(), &ret);
}

namespace {

// Nanoseconds since the running time `pts` of `element`'s pipeline (-1 without a clock or a PTS).
// Any thread.
std::int64_t running_ns_since(GstElement* element, GstClockTime pts) {
  if (!GST_CLOCK_TIME_IS_VALID(pts)) return -1;
  auto clock = Ref<GstClock>::adopt(gst_element_get_clock(element));
  if (!clock) return -1;
  const GstClockTime now = gst_clock_get_time(clock.get());
  const GstClockTime base = gst_element_get_base_time(element);
  if (now < base || now - base < pts) return 0;
  return static_cast<std::int64_t>(now - base - pts);
}

}  // namespace

void pull_events(GstElement* appsink, Liveness alive, std::shared_ptr<const DirectSlot> direct,
                 std::function<void(PathOut)> on_event) {
  struct Sink {
    Liveness alive;
    std::shared_ptr<const DirectSlot> direct;
    std::function<void(PathOut)> on_event;
  };
  GstAppSinkCallbacks callbacks = {};
  callbacks.new_sample = [](GstAppSink* sink, gpointer data) -> GstFlowReturn {
    // On a streaming thread: copy the event, offer it to the direct sink, and post it (or what is
    // left of it: bookkeeping); the owner is checked on the main loop.
    const Sink& ctx = UserData<Sink>::from(data);
    auto sample = Ref<GstSample>::adopt(gst_app_sink_pull_sample(sink));
    if (!sample) return GST_FLOW_OK;
    GstBuffer* buffer = gst_sample_get_buffer(sample.get());
    GstMapInfo map;
    if (!buffer || !gst_buffer_map(buffer, &map, GST_MAP_READ)) return GST_FLOW_OK;
    PathOut out;
    out.text.assign(reinterpret_cast<const char*>(map.data), map.size);
    out.pts = GST_BUFFER_PTS(buffer);
    gst_buffer_unmap(buffer, &map);
    std::shared_ptr<DirectSink> direct = ctx.direct ? ctx.direct->sink : nullptr;
    if (direct && direct->try_send(out.text)) {
      out.sent = true;
      out.sent_ns = running_ns_since(GST_ELEMENT(sink), out.pts);
    }
    post_if_alive(ctx.alive, [on_event = ctx.on_event, out = std::move(out),
                              direct = std::move(direct)]() mutable {
      const bool settle = direct && !out.sent;
      on_event(std::move(out));
      // After the listener handled (sent, queued or refused) what the sink left to it.
      if (settle) direct->settled();
    });
    return GST_FLOW_OK;
  };
  gst_app_sink_set_callbacks(
      GST_APP_SINK(appsink), &callbacks,
      UserData<Sink>::make(Sink{std::move(alive), std::move(direct), std::move(on_event)}),
      &UserData<Sink>::destroy);
}

EventPath::EventPath(GstElement* pipeline, const Policy& policy, Listener* listener)
    : listener_(listener),
      pipeline_(Ref<GstElement>::retain(pipeline)),
      client_in_(find(pipeline, kClientEventsIn)),
      upstream_in_(find(pipeline, kUpstreamEventsIn)),
      filter_(find(pipeline, kClientEventsFilter)),
      meter_(find(pipeline, kUpstreamEventsMeter)) {
  // The filter scopes its rules by key and model itself. No policy configured still means the
  // default size limit (`{}`: max_event_bytes 65536), never "pass everything" (issue 21).
  const char* policy_json = policy.policy_json.empty() ? "{}" : policy.policy_json.c_str();
  g_object_set(filter_.get(), "policy", policy_json, "key-name", policy.key_name.c_str(), "model",
               policy.model.c_str(), "budget-exceeded", policy.budget_exceeded, nullptr);
  std::string allowed;
  for (const auto& m : policy.allowed_models) allowed += (allowed.empty() ? "" : ",") + m;
  g_object_set(filter_.get(), "allowed-models", allowed.c_str(), nullptr);
  for (const bool to_upstream : {true, false})
    pull_events(find(pipeline, to_upstream ? kUpstreamEventsOut : kClientEventsOut).get(),
                lifetime_.watch(), to_upstream ? direct_to_upstream_ : direct_to_client_,
                [this, to_upstream](PathOut out) {
                  if (!to_upstream) to_client_++;
                  if (out.sent)
                    listener_->OnPathEventSent(to_upstream, std::move(out.text), out.sent_ns);
                  else
                    listener_->OnPathEvent(to_upstream, std::move(out.text), since(out.pts));
                });
}

std::unique_ptr<EventPath> EventPath::start_own(const std::string& description,
                                                const std::string& name, const Policy& policy,
                                                Listener* listener) {
  auto pipeline = build_session_pipeline(description);
  gst_object_set_name(GST_OBJECT(pipeline.get()), name.c_str());
  auto path = std::make_unique<EventPath>(pipeline.get(), policy, listener);
  path->owns_pipeline_ = true;
  EventPath* raw = path.get();
  path->bus_watch_ =
      watch_bus(pipeline.get(), [raw](GstMessage* m) { raw->on_own_bus_message(m); });
  if (gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    throw std::runtime_error("the session pipeline failed to start");
  return path;
}

EventPath::~EventPath() {
  // The bus watch first; the appsink callbacks check `lifetime_` on the main loop. Then the
  // reaper stops an own pipeline off the main loop (a call stops its own).
  bus_watch_.cancel();
  client_in_.reset();
  upstream_in_.reset();
  filter_.reset();
  meter_.reset();
  clock_.reset();
  if (owns_pipeline_) stop_pipeline_async(std::move(pipeline_));
}

Ref<GstElement> EventPath::element(const char* name) const { return find(pipeline_.get(), name); }

std::int64_t EventPath::since(GstClockTime pts) {
  if (!GST_CLOCK_TIME_IS_VALID(pts)) return -1;
  if (!clock_) clock_ = Ref<GstClock>::adopt(gst_element_get_clock(pipeline_.get()));
  if (!clock_) return -1;
  const GstClockTime now = gst_clock_get_time(clock_.get());
  const GstClockTime base = gst_element_get_base_time(pipeline_.get());
  if (now < base || now - base < pts) return 0;
  return static_cast<std::int64_t>(now - base - pts);
}

void EventPath::push_from_client(const std::string& text) {
  push_event(client_in_.get(), text.data(), text.size());
}

void EventPath::push_from_upstream(const std::string& text) {
  from_upstream_++;
  push_event(upstream_in_.get(), text.data(), text.size());
}

void EventPath::set_direct(bool to_upstream, std::shared_ptr<DirectSink> sink) {
  (to_upstream ? direct_to_upstream_ : direct_to_client_)->sink = std::move(sink);
}

void EventPath::set_budget_exceeded(bool exceeded) {
  g_object_set(filter_.get(), "budget-exceeded", exceeded, nullptr);
}

guint EventPath::open_turns() const {
  guint open = 0;
  g_object_get(meter_.get(), "open-turns", &open, nullptr);
  return open;
}

bool EventPath::handle_message(GstMessage* message) {
  if (GST_MESSAGE_TYPE(message) != GST_MESSAGE_ELEMENT) return false;
  const GstStructure* s = gst_message_get_structure(message);
  if (auto d = parse_decision(s)) {
    listener_->OnPathDecision(*d);
    return true;
  }
  if (auto r = parse_turn(s)) {
    listener_->OnPathTurn(std::move(*r));
    return true;
  }
  return false;
}

void EventPath::on_own_bus_message(GstMessage* message) {
  if (handle_message(message)) return;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    GError* raw = nullptr;
    gst_message_parse_error(message, &raw, nullptr);
    UniqueError err(raw);
    g_warning("[%s] session pipeline error: %s", GST_OBJECT_NAME(pipeline_.get()),
              err ? err->message : "?");
  }
}

}  // namespace rtgw::events
