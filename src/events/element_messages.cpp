// SPDX-License-Identifier: MIT
#include "events/element_messages.h"

#include <limits>

#include "common/json.h"
#include "common/random.h"
#include "rtevents/json_strict.h"
#include "rtevents/usage_fields.h"

namespace rtgw::events {

bool is_json_object(std::string_view text) {
  if (!rtevents::strict_json::check(text, std::numeric_limits<int>::max()).ok) return false;
  const auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{';
}

std::string make_error_event(const std::string& type, const std::string& code,
                             const std::string& message, const std::string& client_event_id) {
  std::string event_id = random_id("evt_", 32);
  json::ObjectBuilder error;
  error.set("type", type).set("code", code).set("message", message);
  if (!client_event_id.empty()) error.set("event_id", client_event_id);
  json::ObjectBuilder event;
  event.set("type", "error").set("event_id", event_id).set_object("error", std::move(error));
  return event.str();
}

std::string make_quota_error_event(const std::string& message, const std::string& client_event_id) {
  return make_error_event(kQuotaError, kQuotaError, message, client_event_id);
}
namespace {

std::string field(const GstStructure* s, const char* name) {
  const char* v = gst_structure_get_string(s, name);
  return v ? v : "";
}

bool bool_field(const GstStructure* s, const char* name) {
  gboolean v = FALSE;
  gst_structure_get_boolean(s, name, &v);
  return v;
}

}  // namespace

std::optional<PolicyDecision> parse_decision(const GstStructure* s) {
  if (!s || !gst_structure_has_name(s, "rtevent-decision")) return std::nullopt;
  PolicyDecision d;
  d.action = field(s, "action");
  d.reason = field(s, "reason");
  d.rule = field(s, "rule");
  d.event_type = field(s, "event-type");
  d.event_id = field(s, "event-id");
  d.tier = field(s, "tier");
  d.model = field(s, "model");
  d.message = field(s, "message");
  d.end_call = bool_field(s, "end-call");
  return d;
}

std::optional<usage::UsageRecord> parse_turn(const GstStructure* s) {
  if (!s || !gst_structure_has_name(s, "rtusage-turn")) return std::nullopt;
  usage::UsageRecord r;
  if (field(s, "kind") == "transcription") r.kind = "transcription";
  if (field(s, "kind") == "translation") r.kind = "translation";
  r.response_id = field(s, "response-id");
  r.item_id = field(s, "item-id");
  r.status = field(s, "status");
  r.service_tier = field(s, "service-tier");
  r.usage_present = bool_field(s, "usage-present");
  // The token counts: one field per row of the field table (rtevents/usage_fields.h).
  static_cast<rtevents::TokenCounts&>(r) = rtevents::get_gst_token_fields(s);
  gst_structure_get_double(s, "first-token-latency-ms", &r.first_token_latency_ms);
  gst_structure_get_double(s, "turn-duration-ms", &r.turn_duration_ms);
  gst_structure_get_double(s, "transcription-seconds", &r.transcription_seconds);
  if (r.kind == "translation") {  // the meter's seconds of a translation report are audio
    r.audio_seconds = r.transcription_seconds;
    r.transcription_seconds = 0;
  }
  r.usage_clamped = bool_field(s, "usage-clamped");
  return r;
}

}  // namespace rtgw::events
