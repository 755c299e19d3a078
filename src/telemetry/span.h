// SPDX-License-Identifier: MIT
// The span model and its OTLP/HTTP JSON encoding.
//
// Owns: `Span` (a finished span: ids, name, kind, times, typed attributes, events, status) and
// `otlp_json()`, the body of `POST /v1/traces` (an ExportTraceServiceRequest in the protobuf
// JSON mapping: resourceSpans → scopeSpans → spans; ids as hex, times as unix-nano strings,
// attributes as typed AnyValues, int64 as strings). Spans are built whole when a call or session
// ends (telemetry/tracer.h); nothing here is shared.
//
// Threads: any (values and pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace rtgw::telemetry {

using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;

struct Attribute {
  std::string key;
  AttributeValue value;
};

using Attributes = std::vector<Attribute>;

struct SpanEvent {
  std::string name;
  std::int64_t time_unix_ns = 0;
  Attributes attributes;
};

// OTLP's SpanKind values.
enum class SpanKind { kInternal = 1, kServer = 2, kClient = 3 };

struct Span {
  std::string trace_id;        // 32 hex digits
  std::string span_id;         // 16 hex digits
  std::string parent_span_id;  // "" for a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  std::int64_t start_unix_ns = 0;
  std::int64_t end_unix_ns = 0;
  Attributes attributes;
  std::vector<SpanEvent> events;
  bool error = false;  // status ERROR (else UNSET)
  std::string status_message;

  Span& set(std::string key, AttributeValue value) {
    attributes.push_back({std::move(key), std::move(value)});
    return *this;
  }
  Span& set(std::string key, const char* value) { return set(std::move(key), std::string(value)); }
};

// The request body for `spans`, under one resource (service.name = `service_name`) and one
// instrumentation scope (the gateway).
std::string otlp_json(const std::vector<Span>& spans, const std::string& service_name);

}  // namespace rtgw::telemetry
