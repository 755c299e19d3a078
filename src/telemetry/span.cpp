// SPDX-License-Identifier: MIT
#include "telemetry/span.h"

#include <json-glib/json-glib.h>

#include "common/json.h"
#include "common/ref.h"

namespace rtgw::telemetry {
namespace {

void add_string(JsonBuilder* b, const char* member, const std::string& value) {
  json_builder_set_member_name(b, member);
  json_builder_add_string_value(b, value.c_str());
}

// The protobuf JSON mapping writes 64-bit integers as strings.
void add_int64(JsonBuilder* b, const char* member, std::int64_t value) {
  add_string(b, member, std::to_string(value));
}

void add_attributes(JsonBuilder* b, const Attributes& attributes) {
  json_builder_set_member_name(b, "attributes");
  json_builder_begin_array(b);
  for (const auto& a : attributes) {
    json_builder_begin_object(b);
    add_string(b, "key", a.key);
    json_builder_set_member_name(b, "value");
    json_builder_begin_object(b);
    if (auto* s = std::get_if<std::string>(&a.value)) {
      add_string(b, "stringValue", *s);
    } else if (auto* i = std::get_if<std::int64_t>(&a.value)) {
      add_int64(b, "intValue", *i);
    } else if (auto* d = std::get_if<double>(&a.value)) {
      json_builder_set_member_name(b, "doubleValue");
      json_builder_add_double_value(b, *d);
    } else {
      json_builder_set_member_name(b, "boolValue");
      json_builder_add_boolean_value(b, std::get<bool>(a.value));
    }
    json_builder_end_object(b);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
}

void add_span(JsonBuilder* b, const Span& span) {
  json_builder_begin_object(b);
  add_string(b, "traceId", span.trace_id);
  add_string(b, "spanId", span.span_id);
  if (!span.parent_span_id.empty()) add_string(b, "parentSpanId", span.parent_span_id);
  add_string(b, "name", span.name);
  json_builder_set_member_name(b, "kind");
  json_builder_add_int_value(b, static_cast<gint64>(span.kind));
  add_int64(b, "startTimeUnixNano", span.start_unix_ns);
  add_int64(b, "endTimeUnixNano", span.end_unix_ns);
  add_attributes(b, span.attributes);
  json_builder_set_member_name(b, "events");
  json_builder_begin_array(b);
  for (const auto& e : span.events) {
    json_builder_begin_object(b);
    add_int64(b, "timeUnixNano", e.time_unix_ns);
    add_string(b, "name", e.name);
    add_attributes(b, e.attributes);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_set_member_name(b, "status");
  json_builder_begin_object(b);
  if (span.error) {
    json_builder_set_member_name(b, "code");
    json_builder_add_int_value(b, 2);  // STATUS_CODE_ERROR
    if (!span.status_message.empty()) add_string(b, "message", span.status_message);
  }
  json_builder_end_object(b);
  json_builder_end_object(b);
}

}  // namespace

std::string otlp_json(const std::vector<Span>& spans, const std::string& service_name) {
  auto b = Ref<JsonBuilder>::adopt(json_builder_new());
  JsonBuilder* jb = b.get();
  json_builder_begin_object(jb);
  json_builder_set_member_name(jb, "resourceSpans");
  json_builder_begin_array(jb);
  json_builder_begin_object(jb);
  json_builder_set_member_name(jb, "resource");
  json_builder_begin_object(jb);
  add_attributes(jb, {{"service.name", service_name}});
  json_builder_end_object(jb);
  json_builder_set_member_name(jb, "scopeSpans");
  json_builder_begin_array(jb);
  json_builder_begin_object(jb);
  json_builder_set_member_name(jb, "scope");
  json_builder_begin_object(jb);
  add_string(jb, "name", "realtime-gateway");
  json_builder_end_object(jb);
  json_builder_set_member_name(jb, "spans");
  json_builder_begin_array(jb);
  for (const auto& span : spans) add_span(jb, span);
  json_builder_end_array(jb);
  json_builder_end_object(jb);
  json_builder_end_array(jb);
  json_builder_end_object(jb);
  json_builder_end_array(jb);
  json_builder_end_object(jb);
  auto root = Ref<JsonNode>::adopt(json_builder_get_root(jb));
  return json::to_string(root.get());
}

}  // namespace rtgw::telemetry
