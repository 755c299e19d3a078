// SPDX-License-Identifier: MIT
#include "relay/event_path.h"

#include <stdexcept>

#include "calls/event_channel.h"
#include "common/pipeline.h"
#include "common/pipeline_reaper.h"

namespace rtgw::relay {
namespace {

using namespace calls::event_path;  // the names pipelines/session.pipeline provides

Ref<GstElement> build(const std::string& description) {
  return build_pipeline(description, "session",
                        {kClientEventsIn, kUpstreamEventsOut, kUpstreamEventsIn, kClientEventsOut,
                         kClientEventsFilter, kUpstreamEventsMeter});
}

}  // namespace

void check_session_description(const std::string& description) { build(description); }

EventPath::EventPath(const std::string& description, const std::string& name, const Policy& policy,
                     Listener* listener)
    : listener_(listener), pipeline_(build(description)) {
  gst_object_set_name(GST_OBJECT(pipeline_.get()), name.c_str());
  client_in_ = element(kClientEventsIn);
  upstream_in_ = element(kUpstreamEventsIn);
  g_object_set(element(kClientEventsFilter).get(), "policy", policy.policy_json.c_str(), "key-name",
               policy.key_name.c_str(), "model", policy.model.c_str(), "budget-exceeded",
               policy.budget_exceeded, nullptr);
  calls::pull_events(element(kUpstreamEventsOut).get(), alive_,
                     [this](std::string text) { listener_->OnPathEvent(true, std::move(text)); });
  calls::pull_events(element(kClientEventsOut).get(), alive_, [this](std::string text) {
    to_client_++;
    listener_->OnPathEvent(false, std::move(text));
  });
  bus_watch_ = watch_bus(pipeline_.get(), [this](GstMessage* m) { on_bus_message(m); });
  if (gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    throw std::runtime_error("the session pipeline failed to start");
}

EventPath::~EventPath() {
  // The bus watch first; the appsink callbacks check `alive_` on the main loop. Then the reaper
  // stops the pipeline off the main loop.
  bus_watch_.cancel();
  stop_pipeline_async(std::move(pipeline_));
}

Ref<GstElement> EventPath::element(const char* name) const {
  return Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), name));
}

void EventPath::push_from_client(const std::string& text) {
  calls::push_event(client_in_.get(), text.data(), text.size());
}

void EventPath::push_from_upstream(const std::string& text) {
  from_upstream_++;
  calls::push_event(upstream_in_.get(), text.data(), text.size());
}

void EventPath::set_budget_exceeded(bool exceeded) {
  g_object_set(element(kClientEventsFilter).get(), "budget-exceeded", exceeded, nullptr);
}

guint EventPath::open_turns() const {
  guint open = 0;
  g_object_get(element(kUpstreamEventsMeter).get(), "open-turns", &open, nullptr);
  return open;
}

void EventPath::on_bus_message(GstMessage* message) {
  switch (GST_MESSAGE_TYPE(message)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure* s = gst_message_get_structure(message);
      if (auto d = calls::parse_decision(s))
        listener_->OnPathDecision(*d);
      else if (auto r = calls::parse_turn(s))
        listener_->OnPathTurn(std::move(*r));
      return;
    }
    case GST_MESSAGE_ERROR: {
      GError* raw = nullptr;
      gst_message_parse_error(message, &raw, nullptr);
      UniqueError err(raw);
      g_warning("[%s] session pipeline error: %s", GST_OBJECT_NAME(pipeline_.get()),
                err ? err->message : "?");
      return;
    }
    default:
      return;
  }
}

}  // namespace rtgw::relay
