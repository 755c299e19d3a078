// SPDX-License-Identifier: MIT
#include "http/console_streams.h"

#include <json-glib/json-glib.h>

#include <algorithm>
#include <array>
#include <utility>

#include "common/json.h"
#include "common/main_thread.h"
#include "console/leg_stats.h"
#include "http/client_watch.h"
#include "http/http_error.h"

namespace rtgw::http {

struct ConsoleStreams::Stream {
  Ref<SoupServerMessage> msg;
  std::unique_ptr<ClientWatch> watch;
  std::vector<SignalConnection> signals;
  std::string watch_id;
  int queued = 0;  // snapshots appended and not written yet
  bool closed = false;
  bool finished = false;  // libsoup finished the message (or lost its connection): hands off
  std::uint64_t errors_sent = 0;  // the last error's seq this stream got
  gint64 last_us = 0;             // the previous snapshot (0: none yet)
  // Each live call's and session's event counts at the previous snapshot, for the rates.
  std::map<std::string, std::pair<gint64, gint64>> events_seen;
  // The watched call's legs at the previous snapshot (client, upstream).
  struct LegSeen {
    bool valid = false;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::int64_t lost = 0;
  };
  std::array<LegSeen, 2> legs_seen;
};

namespace {

Ref<JsonNode> new_array() {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  json_node_take_array(node.get(), json_array_new());
  return node;
}

void append(const Ref<JsonNode>& array, const json::ObjectBuilder& item) {
  json_array_add_element(json_node_get_array(array.get()), item.node().release());
}

JsonObject* member_object(JsonObject* o, const char* name) {
  if (!o || !json_object_has_member(o, name)) return nullptr;
  JsonNode* n = json_object_get_member(o, name);
  return JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : nullptr;
}

std::string member_string(JsonObject* o, const char* name) {
  if (!o || !json_object_has_member(o, name)) return {};
  JsonNode* n = json_object_get_member(o, name);
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
             ? json_node_get_string(n)
             : std::string();
}

// A number member (int or double); `fallback` when absent or null.
double member_number(JsonObject* o, const char* name, double fallback = 0) {
  if (!o || !json_object_has_member(o, name)) return fallback;
  JsonNode* n = json_object_get_member(o, name);
  if (!JSON_NODE_HOLDS_VALUE(n)) return fallback;
  GType t = json_node_get_value_type(n);
  if (t == G_TYPE_INT64) return static_cast<double>(json_node_get_int(n));
  if (t == G_TYPE_DOUBLE) return json_node_get_double(n);
  return fallback;
}

double per_second(double delta, double seconds) {
  return seconds > 0 && delta > 0 ? delta / seconds : 0;
}

}  // namespace

ConsoleStreams::ConsoleStreams(calls::CallRegistry& calls, relay::SessionRegistry& sessions,
                               const console::ConsoleFeed* feed)
    : calls_(calls), sessions_(sessions), feed_(feed) {}

ConsoleStreams::~ConsoleStreams() = default;

void ConsoleStreams::open(SoupServerMessage* msg, GSocket* socket, std::string watch_id) {
  drop_closed();
  if (streams_.size() >= kMaxStreams)
    throw errors::too_many("too_many_console_streams",
                           "at most " + std::to_string(kMaxStreams) +
                               " console streams may be open at once: close one and retry");
  auto stream = std::make_unique<Stream>();
  Stream* s = stream.get();
  s->msg = Ref<SoupServerMessage>::retain(msg);
  s->watch_id = std::move(watch_id);
  SoupMessageHeaders* headers = soup_server_message_get_response_headers(msg);
  soup_message_headers_set_encoding(headers, SOUP_ENCODING_CHUNKED);
  soup_message_headers_set_content_type(headers, "text/event-stream", nullptr);
  soup_message_headers_replace(headers, "Cache-Control", "no-store");
  // Written chunks are dropped, not kept for the life of the stream.
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);
  soup_server_message_set_status(msg, 200, nullptr);
  s->signals.push_back(connect_signal<void(SoupServerMessage*)>(
      msg, "wrote-chunk", [s](SoupServerMessage*) { s->queued = std::max(0, s->queued - 1); }));
  for (const char* signal : {"finished", "disconnected"})
    s->signals.push_back(
        connect_signal<void(SoupServerMessage*)>(msg, signal, [this, s](SoupServerMessage*) {
          s->finished = true;
          close_later(s);
        }));
  s->watch = std::make_unique<ClientWatch>(msg, socket, [this, s] { close_later(s); });
  streams_.push_back(std::move(stream));
  // The first snapshot goes with the headers; libsoup writes it when the handler returns.
  write_snapshot(*s);
  if (!timer_)
    timer_ = run_every_seconds(1, [this] {
      tick();
      return true;
    });
}

void ConsoleStreams::close_later(Stream* stream) {
  if (stream->closed) return;
  stream->closed = true;
  if (!stream->finished) {
    // The client left while libsoup waits for the next chunk: end the body so libsoup finishes
    // the message and lets the connection go (else it would wait, paused, for good).
    soup_message_body_complete(soup_server_message_get_response_body(stream->msg.get()));
    soup_server_message_unpause(stream->msg.get());
  }
  if (!sweep_) sweep_ = run_after_ms(0, [this] { drop_closed(); });
}

void ConsoleStreams::drop_closed() {
  sweep_.cancel();
  std::erase_if(streams_, [](const std::unique_ptr<Stream>& s) { return s->closed; });
  if (streams_.empty()) timer_.cancel();  // no console open: no timer, no work
}

void ConsoleStreams::tick() {
  drop_closed();
  for (auto& s : streams_) {
    if (s->closed) continue;
    write_snapshot(*s);
    soup_server_message_unpause(s->msg.get());
  }
}

void ConsoleStreams::write_snapshot(Stream& stream) {
  // A client that does not read gets nothing new until it caught up (bounded memory).
  if (stream.closed || stream.queued >= kMaxQueuedChunks) return;
  std::string text = "event: snapshot\ndata: " + snapshot(stream) + "\n\n";
  soup_message_body_append(soup_server_message_get_response_body(stream.msg.get()),
                           SOUP_MEMORY_COPY, text.data(), text.size());
  stream.queued++;
}

std::string ConsoleStreams::snapshot(Stream& stream) {
  const gint64 now_us = g_get_monotonic_time();
  const double seconds = stream.last_us ? (now_us - stream.last_us) / 1e6 : 0;
  stream.last_us = now_us;

  // Live calls and sessions: one row each, from what GET /v1/realtime/calls/{id} shows.
  Ref<JsonNode> rows = new_array();
  std::map<std::string, std::pair<gint64, gint64>> events_now;
  double to_upstream_rate = 0, to_client_rate = 0;
  auto add_row = [&](const json::ObjectBuilder& described, const char* transport) {
    JsonObject* d = described.object();
    std::string id = member_string(d, "id");
    JsonObject* events = member_object(d, "events");
    JsonObject* usage = member_object(d, "usage");
    JsonObject* timings = member_object(d, "timings");
    auto counts = std::make_pair(static_cast<gint64>(member_number(events, "from_client")),
                                 static_cast<gint64>(member_number(events, "from_upstream")));
    events_now[id] = counts;
    double up = 0, down = 0;
    if (auto seen = stream.events_seen.find(id); seen != stream.events_seen.end()) {
      up = per_second(static_cast<double>(counts.first - seen->second.first), seconds);
      down = per_second(static_cast<double>(counts.second - seen->second.second), seconds);
    }
    to_upstream_rate += up;
    to_client_rate += down;
    json::ObjectBuilder row;
    row.set("id", id)
        .set("transport", transport)
        .set("key", member_string(d, "key"))
        .set("model", member_string(d, "model"))
        .set("worker", member_string(d, "worker"))
        .set("state", member_string(d, "state"))
        .set("age_seconds", member_number(timings, "duration_ms") / 1000.0)
        .set("turns", static_cast<gint64>(member_number(usage, "turns")))
        .set("events_from_client", counts.first)
        .set("events_from_upstream", counts.second)
        .set("events_per_second_to_upstream", up)
        .set("events_per_second_to_client", down);
    if (usage && json_object_has_member(usage, "cost_usd") &&
        !json_object_get_null_member(usage, "cost_usd"))
      row.set("cost_usd", member_number(usage, "cost_usd"));
    else
      row.set_null("cost_usd");
    append(rows, row);
    return std::make_pair(up, down);
  };
  std::pair<double, double> watched_rates{0, 0};
  calls_.for_each([&](const calls::Call& call) {
    auto rates = add_row(call.describe(), "webrtc");
    if (call.id() == stream.watch_id) watched_rates = rates;
  });
  sessions_.for_each(
      [&](const relay::WebSocketSession& session) { add_row(session.describe(), "websocket"); });
  stream.events_seen = std::move(events_now);

  json::ObjectBuilder out;
  out.set("time", g_get_real_time() / 1e6).set_node("rows", rows);
  json::ObjectBuilder rates;
  rates.set("client_to_upstream", to_upstream_rate).set("upstream_to_client", to_client_rate);
  out.set_object("events_per_second", std::move(rates));

  // The watched call's legs: read only for this call, only now (console/leg_stats.h).
  if (!stream.watch_id.empty()) {
    json::ObjectBuilder watch;
    watch.set("id", stream.watch_id);
    calls::Call* call = calls_.find(stream.watch_id);
    watch.set("live", call != nullptr && call->state() != calls::Call::State::kEnded);
    if (call) {
      json::ObjectBuilder legs;
      for (int i = 0; i < 2; ++i) {
        const bool client = i == 0;
        auto figures = console::read_leg_stats(call->leg_element(client));
        auto& seen = stream.legs_seen[i];
        json::ObjectBuilder leg;
        if (figures) {
          double packets_rate = 0, bitrate = 0, loss = 0;
          if (seen.valid && seconds > 0) {
            double got = static_cast<double>(figures->packets_received - seen.packets);
            double lost = static_cast<double>(figures->packets_lost - seen.lost);
            packets_rate = per_second(got, seconds);
            bitrate =
                per_second(static_cast<double>(figures->bytes_received - seen.bytes) * 8, seconds);
            loss = got + lost > 0 && lost > 0 ? 100.0 * lost / (got + lost) : 0;
          }
          seen = {true, figures->packets_received, figures->bytes_received, figures->packets_lost};
          leg.set("packets_received", static_cast<gint64>(figures->packets_received))
              .set("packets_per_second", packets_rate)
              .set("bitrate_bps", bitrate)
              .set("packets_lost", static_cast<gint64>(figures->packets_lost))
              .set("loss_percent", loss)
              .set("jitter_ms", figures->jitter_ms);
          if (figures->round_trip_ms)
            leg.set("round_trip_ms", *figures->round_trip_ms);
          else
            leg.set_null("round_trip_ms");
        }
        legs.set_object(client ? "client" : "upstream", std::move(leg));
      }
      json::ObjectBuilder watched;
      watched.set("client_to_upstream", watched_rates.first)
          .set("upstream_to_client", watched_rates.second);
      watch.set_object("legs", std::move(legs)).set_object("events_per_second", std::move(watched));
    }
    out.set_object("watch", std::move(watch));
  } else {
    out.set_null("watch");
  }

  if (feed_) {
    const std::int64_t now = g_get_real_time() / G_USEC_PER_SEC;
    auto series_array = [](const std::vector<console::SpendSeries::Series>& list) {
      Ref<JsonNode> array = new_array();
      for (const auto& s : list) {
        Ref<JsonNode> buckets = new_array();
        for (double v : s.buckets)
          json_array_add_double_element(json_node_get_array(buckets.get()), v);
        json::ObjectBuilder item;
        item.set("key", s.key)
            .set("model", s.model)
            .set("total_usd", s.total_usd)
            .set_node("buckets", buckets);
        append(array, item);
      }
      return array;
    };
    json::ObjectBuilder spend;
    spend.set_node("hour", series_array(feed_->spend().last_hour(now)))
        .set_node("day", series_array(feed_->spend().last_day(now)));
    out.set_object("spend", std::move(spend));
    // Only the errors this stream has not sent yet (all the ring holds, on the first).
    Ref<JsonNode> errors = new_array();
    for (const auto& e : feed_->errors().entries()) {
      if (e.seq <= stream.errors_sent) continue;
      json::ObjectBuilder item;
      item.set("seq", static_cast<gint64>(e.seq))
          .set("time", e.unix_time)
          .set("kind", e.kind)
          .set("code", e.code)
          .set("message", e.message)
          .set("id", e.id)
          .set("key", e.key);
      append(errors, item);
    }
    stream.errors_sent = feed_->errors().last_seq();
    out.set_node("errors", errors);
  }
  return out.str();
}

}  // namespace rtgw::http
