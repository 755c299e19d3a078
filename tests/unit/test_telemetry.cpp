// SPDX-License-Identifier: MIT
// telemetry/: the W3C traceparent parser, ids, the OTLP/JSON encoding and the exporter against a
// collector in this process (batching, one request in flight, the queue's bound, a down one).
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/main_thread.h"
#include "config/config.h"
#include "metrics/catalogue.h"
#include "metrics/metrics.h"
#include "telemetry/exporter.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

using namespace rtgw;
using namespace rtgw::telemetry;

namespace {

// The W3C specification's own examples and its invalid cases.
TEST(Traceparent, W3cExamplesParse) {
  auto p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(p->parent_id, "00f067aa0ba902b7");
  EXPECT_EQ(p->flags, 1);
  auto q = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->parent_id, "b7ad6b7169203331");
  EXPECT_EQ(q->flags, 0);
  // HTTP's optional whitespace is not part of the value.
  EXPECT_TRUE(parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t"));
}

TEST(Traceparent, LaterVersionsMayCarryMore) {
  auto p = parse_traceparent(
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09"));
  // ... but only after a '-'.
  EXPECT_FALSE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST(Traceparent, MalformedValuesAreRefused) {
  for (const char* bad : {
           "",
           "00",
           "garbage",
           // all-zero ids are the spec's invalid values
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
           // version ff is forbidden
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           // upper case
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
           "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           // version 00 is exactly 55 characters
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
           // wrong lengths and separators
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
           "004bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
           // not hex
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
           "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
       })
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
}

TEST(Traceparent, FormatsAndParsesBack) {
  std::string t = new_trace_id(), s = new_span_id();
  auto p = parse_traceparent(format_traceparent(t, s, 1));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace_id, t);
  EXPECT_EQ(p->parent_id, s);
  EXPECT_EQ(p->flags, 1);
  EXPECT_EQ(format_traceparent(t, s, 0x0a), "00-" + t + "-" + s + "-0a");
}

TEST(Traceparent, NewIdsAreRandomHexOfTheirLength) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; i++) {
    std::string t = new_trace_id(), s = new_span_id();
    EXPECT_EQ(t.size(), 32u);
    EXPECT_EQ(s.size(), 16u);
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos);
    seen.insert(t);
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 200u);
}

Span sample_span(const std::string& name) {
  Span s;
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.span_id = "00f067aa0ba902b7";
  s.name = name;
  s.kind = SpanKind::kServer;
  s.start_unix_ns = 1765000000123456789;
  s.end_unix_ns = 1765000001123456789;
  return s;
}

TEST(OtlpJson, EncodesTheProtobufJsonMapping) {
  Span s = sample_span("realtime gpt-realtime");
  s.parent_span_id = "b7ad6b7169203331";
  s.set("gen_ai.request.model", "gpt-realtime")
      .set("gen_ai.usage.input_tokens", std::int64_t{9007199254740993})
      .set("rtgw.cost_usd", 0.25)
      .set("rtgw.ok", true);
  s.events.push_back({"gen_ai.response", 1765000000500000000, {{"gen_ai.response.id", "resp_1"}}});
  s.error = true;
  s.status_message = "ice_timeout";
  Span child = sample_span("rtgw.auth");
  child.kind = SpanKind::kInternal;
  child.span_id = "1111111111111111";
  child.parent_span_id = s.span_id;

  std::string error;
  auto root = json::parse(otlp_json({s, child}, "gw-test"), &error);
  ASSERT_TRUE(root) << error;
  JsonObject* rs = json_array_get_object_element(
      json_object_get_array_member(json_node_get_object(root.get()), "resourceSpans"), 0);
  JsonObject* attr = json_array_get_object_element(
      json_object_get_array_member(json_object_get_object_member(rs, "resource"), "attributes"), 0);
  EXPECT_EQ(json::get_string(attr, "key"), "service.name");
  EXPECT_EQ(json::get_string(json_object_get_object_member(attr, "value"), "stringValue"),
            "gw-test");
  JsonObject* ss = json_array_get_object_element(json_object_get_array_member(rs, "scopeSpans"), 0);
  JsonArray* spans = json_object_get_array_member(ss, "spans");
  ASSERT_EQ(json_array_get_length(spans), 2u);
  JsonObject* span = json_array_get_object_element(spans, 0);
  EXPECT_EQ(json::get_string(span, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(json::get_string(span, "spanId"), "00f067aa0ba902b7");
  EXPECT_EQ(json::get_string(span, "parentSpanId"), "b7ad6b7169203331");
  EXPECT_EQ(json_object_get_int_member(span, "kind"), 2);
  // Times and 64-bit integers are strings (no precision lost in a double).
  EXPECT_EQ(json::get_string(span, "startTimeUnixNano"), "1765000000123456789");
  EXPECT_EQ(json::get_string(span, "endTimeUnixNano"), "1765000001123456789");
  JsonArray* attrs = json_object_get_array_member(span, "attributes");
  ASSERT_EQ(json_array_get_length(attrs), 4u);
  auto value_of = [&](guint i) {
    return json_object_get_object_member(json_array_get_object_element(attrs, i), "value");
  };
  EXPECT_EQ(json::get_string(value_of(0), "stringValue"), "gpt-realtime");
  EXPECT_EQ(json::get_string(value_of(1), "intValue"), "9007199254740993");
  EXPECT_DOUBLE_EQ(json_object_get_double_member(value_of(2), "doubleValue"), 0.25);
  EXPECT_TRUE(json_object_get_boolean_member(value_of(3), "boolValue"));
  JsonObject* event =
      json_array_get_object_element(json_object_get_array_member(span, "events"), 0);
  EXPECT_EQ(json::get_string(event, "name"), "gen_ai.response");
  EXPECT_EQ(json::get_string(event, "timeUnixNano"), "1765000000500000000");
  JsonObject* status = json_object_get_object_member(span, "status");
  EXPECT_EQ(json_object_get_int_member(status, "code"), 2);
  EXPECT_EQ(json::get_string(status, "message"), "ice_timeout");
  JsonObject* second = json_array_get_object_element(spans, 1);
  EXPECT_EQ(json::get_string(second, "parentSpanId"), "00f067aa0ba902b7");
  EXPECT_EQ(json_object_get_int_member(second, "kind"), 1);
  // A root span has no parentSpanId; an OK span's status has no code (UNSET).
  auto lone = json::parse(otlp_json({sample_span("x")}, "s"));
  JsonObject* lone_span = json_array_get_object_element(
      json_object_get_array_member(
          json_array_get_object_element(
              json_object_get_array_member(
                  json_array_get_object_element(
                      json_object_get_array_member(json_node_get_object(lone.get()),
                                                   "resourceSpans"),
                      0),
                  "scopeSpans"),
              0),
          "spans"),
      0);
  EXPECT_FALSE(json_object_has_member(lone_span, "parentSpanId"));
  EXPECT_FALSE(json_object_has_member(json_object_get_object_member(lone_span, "status"), "code"));
}

std::size_t spans_in(const std::string& body);

TEST(OtlpJson, StringsAreEscapedAndAlwaysValidJson) {
  Span s = sample_span("quote \" backslash \\ newline \n tab \t bell \x07 é");
  s.set("invalid.utf8", std::string("a\xff\xfe b"));
  s.set("not.finite", std::nan(""));
  s.status_message = "x";
  std::string error;
  std::string text = otlp_json({s}, "svc \"q\"");
  auto root = json::parse(text, &error);  // the strict parser: the body is valid JSON
  ASSERT_TRUE(root) << error << "\n" << text;
  JsonObject* rs = json_array_get_object_element(
      json_object_get_array_member(json_node_get_object(root.get()), "resourceSpans"), 0);
  JsonObject* ss = json_array_get_object_element(json_object_get_array_member(rs, "scopeSpans"), 0);
  JsonObject* span = json_array_get_object_element(json_object_get_array_member(ss, "spans"), 0);
  EXPECT_EQ(json::get_string(span, "name"), "quote \" backslash \\ newline \n tab \t bell \x07 é");
  JsonArray* attrs = json_object_get_array_member(span, "attributes");
  JsonObject* bad = json_object_get_object_member(json_array_get_object_element(attrs, 0), "value");
  EXPECT_EQ(json::get_string(bad, "stringValue"), "a\xef\xbf\xbd\xef\xbf\xbd b");  // U+FFFD
  JsonObject* nan = json_object_get_object_member(json_array_get_object_element(attrs, 1), "value");
  EXPECT_EQ(json::get_string(nan, "doubleValue"), "NaN");
}

// The main loop serialises a batch: a full one (512 call spans as the tracer builds them: 14
// attributes, 10 response events) must stay far from a stall. The bound is loose (a loaded CI
// machine); the figure is printed.
TEST(OtlpJson, AFullBatchIsCheapToEncode) {
  std::vector<Span> batch;
  for (int i = 0; i < 512; i++) {
    Span s = sample_span("realtime gpt-realtime");
    s.set("gen_ai.operation.name", "realtime")
        .set("gen_ai.provider.name", "openai")
        .set("gen_ai.system", "openai")
        .set("gen_ai.request.model", "gpt-realtime")
        .set("gen_ai.usage.input_tokens", std::int64_t{3700})
        .set("gen_ai.usage.output_tokens", std::int64_t{2000})
        .set("rtgw.call.id", "rtc_0123456789abcdef0123456789abcdef")
        .set("rtgw.key.name", "team-a")
        .set("rtgw.worker", "gpt-realtime/0")
        .set("rtgw.transport", "webrtc")
        .set("rtgw.outcome", "completed")
        .set("rtgw.end_reason", "client hung up")
        .set("rtgw.turns", std::int64_t{10})
        .set("rtgw.cost_usd", 0.0188);
    for (int e = 0; e < 10; e++)
      s.events.push_back({"gen_ai.response",
                          s.start_unix_ns + e,
                          {{"gen_ai.response.id", "resp_0123456789abcdef"},
                           {"gen_ai.usage.input_tokens", std::int64_t{370}},
                           {"gen_ai.usage.output_tokens", std::int64_t{200}},
                           {"rtgw.cost_usd", 0.00188}}});
    batch.push_back(std::move(s));
  }
  gint64 t0 = g_get_monotonic_time();
  std::string body = otlp_json(batch, "gw");
  double ms = (g_get_monotonic_time() - t0) / 1000.0;
  std::printf("512 spans: %zu bytes of OTLP/JSON in %.1f ms\n", body.size(), ms);
  EXPECT_EQ(spans_in(body), 512u);
  EXPECT_LT(ms, 1000);
}

// A sample's value in the exposition (0 when absent).
double sample(metrics::Registry& metrics, const std::string& series) {
  std::string text = metrics.render();
  std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + series.size() + 2));
}

// A collector in this process: records each POST's body and headers; `hold` keeps requests
// unanswered (a slow collector).
struct Collector {
  Ref<SoupServer> server;
  std::vector<std::string> bodies;
  std::vector<std::string> auth_headers;
  std::vector<Ref<SoupServerMessage>> held;
  bool hold = false;
  guint status = 200;
  int port = 0;

  Collector() {
    server = Ref<SoupServer>::adopt(soup_server_new(nullptr, nullptr));
    soup_server_add_handler(
        server.get(), "/v1/traces",
        [](SoupServer*, SoupServerMessage* msg, const char*, GHashTable*, gpointer self_ptr) {
          auto* self = static_cast<Collector*>(self_ptr);
          SoupMessageBody* body = soup_server_message_get_request_body(msg);
          self->bodies.emplace_back(body->data ? body->data : "", body->length);
          const char* auth = soup_message_headers_get_one(
              soup_server_message_get_request_headers(msg), "Authorization");
          self->auth_headers.emplace_back(auth ? auth : "");
          if (self->hold) {
            soup_server_message_pause(msg);
            self->held.push_back(Ref<SoupServerMessage>::retain(msg));
            return;
          }
          soup_server_message_set_status(msg, self->status, nullptr);
        },
        this, nullptr);
    UniqueError err;
    EXPECT_TRUE(
        soup_server_listen_local(server.get(), 0, SOUP_SERVER_LISTEN_IPV4_ONLY, ErrorOut(err)));
    GSList* uris = soup_server_get_uris(server.get());
    port = g_uri_get_port(static_cast<GUri*>(uris->data));
    g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  }
  ~Collector() {
    for (auto& m : held) {
      soup_server_message_set_status(m.get(), 200, nullptr);
      soup_server_message_unpause(m.get());
    }
    soup_server_disconnect(server.get());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Iterates the default context until `done` or `ms` passed.
bool spin_until(const std::function<bool()>& done, int ms = 5000) {
  gint64 deadline = g_get_monotonic_time() + gint64{ms} * 1000;
  while (!done() && g_get_monotonic_time() < deadline) g_main_context_iteration(nullptr, FALSE);
  return done();
}

std::size_t spans_in(const std::string& body) {
  auto root = json::parse(body);
  if (!root) return 0;
  JsonObject* rs = json_array_get_object_element(
      json_object_get_array_member(json_node_get_object(root.get()), "resourceSpans"), 0);
  JsonObject* ss = json_array_get_object_element(json_object_get_array_member(rs, "scopeSpans"), 0);
  return json_array_get_length(json_object_get_array_member(ss, "spans"));
}

TEST(Exporter, PostsBatchesWithItsHeaders) {
  Collector collector;
  metrics::Registry metrics;
  Exporter::Options o;
  o.endpoint = collector.url();
  o.headers = {{"Authorization", "Bearer collector-key"}};
  o.max_batch = 3;
  o.interval_ms = 50;
  Exporter exporter(o, metrics);
  for (int i = 0; i < 4; i++) exporter.enqueue(sample_span("s" + std::to_string(i)));
  // The full batch of 3 goes at once, the last span with the timer.
  ASSERT_TRUE(spin_until([&] { return collector.bodies.size() == 2 && !exporter.in_flight(); }));
  EXPECT_EQ(spans_in(collector.bodies[0]), 3u);
  EXPECT_EQ(spans_in(collector.bodies[1]), 1u);
  EXPECT_EQ(collector.auth_headers[0], "Bearer collector-key");
  EXPECT_EQ(sample(metrics, "rtgw_telemetry_exported_total"), 4);
  EXPECT_EQ(sample(metrics, "rtgw_telemetry_dropped_total{reason=\"queue_full\"}"), 0);
}

TEST(Exporter, OneRequestInFlightAndTheQueueBounded) {
  Collector collector;
  collector.hold = true;  // a collector that never answers
  metrics::Registry metrics;
  Exporter::Options o;
  o.endpoint = collector.url();
  o.max_batch = 2;
  o.max_queue = 4;
  o.interval_ms = 20;
  o.timeout_seconds = 1;
  Exporter exporter(o, metrics);
  exporter.enqueue(sample_span("a"));
  exporter.enqueue(sample_span("b"));  // a batch: sent
  ASSERT_TRUE(spin_until([&] { return collector.bodies.size() == 1; }));
  for (int i = 0; i < 6; i++) exporter.enqueue(sample_span("q"));
  // Nothing more is sent while one request is unanswered; the queue keeps 4, drops the newest 2.
  spin_until([] { return false; }, 200);
  EXPECT_EQ(collector.bodies.size(), 1u);
  EXPECT_EQ(exporter.queued(), 4u);
  EXPECT_EQ(sample(metrics, "rtgw_telemetry_dropped_total{reason=\"queue_full\"}"), 2);
  // The deadline gives the request up: its batch is dropped and counted, the next goes.
  ASSERT_TRUE(spin_until(
      [&] {
        return sample(metrics, "rtgw_telemetry_dropped_total{reason=\"export_failed\"}") == 2;
      },
      4000));
  ASSERT_TRUE(spin_until([&] { return collector.bodies.size() >= 2; }, 4000));
}

TEST(Exporter, DownCollectorDropsAndCounts) {
  // A port nobody listens on: take one from the kernel and close it.
  int port;
  {
    Collector gone;
    port = gone.port;
  }
  metrics::Registry metrics;
  Exporter::Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(port);
  o.interval_ms = 20;
  Exporter exporter(o, metrics);
  exporter.enqueue(sample_span("a"));
  exporter.enqueue(sample_span("b"));
  ASSERT_TRUE(spin_until([&] {
    return sample(metrics, "rtgw_telemetry_dropped_total{reason=\"export_failed\"}") == 2;
  }));
  EXPECT_FALSE(exporter.in_flight());
  EXPECT_EQ(exporter.queued(), 0u);
}

TEST(Exporter, RefusedBatchIsDropped) {
  Collector collector;
  collector.status = 503;
  metrics::Registry metrics;
  Exporter::Options o;
  o.endpoint = collector.url();
  o.interval_ms = 20;
  Exporter exporter(o, metrics);
  exporter.enqueue(sample_span("a"));
  ASSERT_TRUE(spin_until([&] {
    return sample(metrics, "rtgw_telemetry_dropped_total{reason=\"export_failed\"}") == 1;
  }));
  EXPECT_EQ(sample(metrics, "rtgw_telemetry_exported_total"), 0);
}

config::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string with_telemetry(const std::string& telemetry) {
  return R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}], "telemetry": )" +
         telemetry + "}";
}

TEST(TelemetryConfig, OffByDefaultAndReadWhole) {
  auto off = config::load_from_text(with_telemetry("{}"), "f", {}, env_of({}));
  EXPECT_FALSE(off.telemetry.enabled());
  EXPECT_EQ(off.telemetry.service_name, "realtime-gateway");
  EXPECT_FALSE(off.telemetry.include_content);
  auto on = config::load_from_text(
      with_telemetry(R"({"otlp_endpoint": "http://127.0.0.1:4318/", "service_name": "gw-1",
                        "headers": {"Authorization": "env:OTLP_AUTH", "X-Team": "voice"},
                        "include_content": true})"),
      "f", {}, env_of({{"OTLP_AUTH", "Bearer abc"}}));
  EXPECT_TRUE(on.telemetry.enabled());
  EXPECT_EQ(on.telemetry.otlp_endpoint, "http://127.0.0.1:4318");  // trailing '/' dropped
  EXPECT_EQ(on.telemetry.service_name, "gw-1");
  EXPECT_TRUE(on.telemetry.include_content);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Headers headers = on.telemetry.headers;  // in the object's order, which JSON does not fix
  std::sort(headers.begin(), headers.end());
  EXPECT_EQ(headers, (Headers{{"Authorization", "Bearer abc"}, {"X-Team", "voice"}}));
  // The variables beat the file.
  auto env =
      config::load_from_text(with_telemetry("{}"), "f", {},
                             env_of({{"RTGW_TELEMETRY_OTLP_ENDPOINT", "https://otel.example:4318"},
                                     {"RTGW_TELEMETRY_INCLUDE_CONTENT", "true"}}));
  EXPECT_EQ(env.telemetry.otlp_endpoint, "https://otel.example:4318");
  EXPECT_TRUE(env.telemetry.include_content);
}

TEST(TelemetryConfig, BadValuesNameTheirPath) {
  auto refused = [](const std::string& telemetry, const std::string& path,
                    const std::string& reason) {
    try {
      config::load_from_text(with_telemetry(telemetry), "f.json", {}, env_of({}));
      ADD_FAILURE() << "accepted: " << telemetry;
    } catch (const config::ConfigError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("f.json: " + path + ": "), std::string::npos) << what;
      EXPECT_NE(what.find(reason), std::string::npos) << what;
    }
  };
  refused(R"({"otlp_endpoint": "127.0.0.1:4318"})", "$.telemetry.otlp_endpoint", "http(s)://");
  refused(R"({"headers": {"X-Key": 5}})", "$.telemetry.headers.X-Key", "expected a string");
  refused(R"({"headers": {"X-Key": "env:NOT_SET_ANYWHERE"}})", "$.telemetry.headers.X-Key",
          "NOT_SET_ANYWHERE");
  refused(R"({"headers": {"Bad Name": "x"}})", "$.telemetry.headers.Bad Name", "header");
  refused(R"({"headers": {"X-Key": "a\r\nInjected: 1"}})", "$.telemetry.headers.X-Key", "header");
  refused(R"({"headers": []})", "$.telemetry.headers", "expected an object");
  refused(R"({"include_content": "yes"})", "$.telemetry.include_content", "true or false");
  refused(R"({"endpoint": "x"})", "$.telemetry.endpoint", "unknown key");
}

}  // namespace
