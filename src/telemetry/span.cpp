// SPDX-License-Identifier: MIT
#include "telemetry/span.h"

#include <glib.h>

#include <cmath>
#include <cstdio>

#include "common/ref.h"

namespace rtgw::telemetry {
namespace {

// The body is written straight into one string: a batch is serialised on the main loop, and
// json-glib's builder and generator took 497 ms for a full batch of 512 call spans (2.4 MB; the
// debug build on a loaded 2-core machine, OtlpJson.AFullBatchIsCheapToEncode), this 14 ms.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void raw(std::string_view text) { out_ += text; }

  // A JSON string. Input is expected as UTF-8 (ids, names, worker events that passed strict
  // JSON); anything invalid is replaced (U+FFFD) so the body stays valid JSON.
  void string(std::string_view text) {
    if (!g_utf8_validate(text.data(), static_cast<gssize>(text.size()), nullptr)) {
      UniqueStr valid(g_utf8_make_valid(text.data(), static_cast<gssize>(text.size())));
      escaped(valid.get());
      return;
    }
    escaped(text);
  }

  void int64_string(std::int64_t v) {  // the protobuf JSON mapping's int64: a string
    out_ += '"';
    out_ += std::to_string(v);
    out_ += '"';
  }

  void number(double v) {
    if (!std::isfinite(v)) {  // not a JSON number: the mapping's string forms
      out_ += std::isnan(v) ? "\"NaN\"" : (v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
      return;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out_ += buf;
  }

  void member(const char* name) {
    out_ += '"';
    out_ += name;
    out_ += "\":";
  }

 private:
  void escaped(std::string_view text) {
    out_ += '"';
    for (char c : text) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
            out_ += buf;
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string& out_;
};

void write_attributes(Writer& w, const Attributes& attributes) {
  w.raw("\"attributes\":[");
  bool first = true;
  for (const auto& a : attributes) {
    if (!first) w.raw(",");
    first = false;
    w.raw("{\"key\":");
    w.string(a.key);
    w.raw(",\"value\":{");
    if (auto* s = std::get_if<std::string>(&a.value)) {
      w.member("stringValue");
      w.string(*s);
    } else if (auto* i = std::get_if<std::int64_t>(&a.value)) {
      w.member("intValue");
      w.int64_string(*i);
    } else if (auto* d = std::get_if<double>(&a.value)) {
      w.member("doubleValue");
      w.number(*d);
    } else {
      w.member("boolValue");
      w.raw(std::get<bool>(a.value) ? "true" : "false");
    }
    w.raw("}}");
  }
  w.raw("]");
}

void write_span(Writer& w, const Span& span) {
  w.raw("{");
  w.member("traceId");
  w.string(span.trace_id);
  w.raw(",");
  w.member("spanId");
  w.string(span.span_id);
  if (!span.parent_span_id.empty()) {
    w.raw(",");
    w.member("parentSpanId");
    w.string(span.parent_span_id);
  }
  w.raw(",");
  w.member("name");
  w.string(span.name);
  w.raw(",");
  w.member("kind");
  w.raw(std::to_string(static_cast<int>(span.kind)));
  w.raw(",");
  w.member("startTimeUnixNano");
  w.int64_string(span.start_unix_ns);
  w.raw(",");
  w.member("endTimeUnixNano");
  w.int64_string(span.end_unix_ns);
  w.raw(",");
  write_attributes(w, span.attributes);
  w.raw(",\"events\":[");
  bool first = true;
  for (const auto& e : span.events) {
    if (!first) w.raw(",");
    first = false;
    w.raw("{");
    w.member("timeUnixNano");
    w.int64_string(e.time_unix_ns);
    w.raw(",");
    w.member("name");
    w.string(e.name);
    w.raw(",");
    write_attributes(w, e.attributes);
    w.raw("}");
  }
  w.raw("],\"status\":{");
  if (span.error) {
    w.raw("\"code\":2");  // STATUS_CODE_ERROR; UNSET (0) is left out
    if (!span.status_message.empty()) {
      w.raw(",");
      w.member("message");
      w.string(span.status_message);
    }
  }
  w.raw("}}");
}

}  // namespace

std::string otlp_json(const std::vector<Span>& spans, const std::string& service_name) {
  std::string out;
  out.reserve(spans.size() * 2048 + 256);
  Writer w(out);
  w.raw("{\"resourceSpans\":[{\"resource\":{");
  write_attributes(w, {{"service.name", service_name}});
  w.raw("},\"scopeSpans\":[{\"scope\":{\"name\":\"realtime-gateway\"},\"spans\":[");
  bool first = true;
  for (const auto& span : spans) {
    if (!first) w.raw(",");
    first = false;
    write_span(w, span);
  }
  w.raw("]}]}]}");
  return out;
}

}  // namespace rtgw::telemetry
