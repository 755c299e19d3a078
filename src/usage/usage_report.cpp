// SPDX-License-Identifier: MIT
#include "usage/usage_report.h"

#include <glib.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include "common/json.h"
#include "common/main_thread.h"
#include "usage/saturating.h"

namespace rtgw::usage {
namespace {

std::atomic<int> scans_running{0};

std::optional<double> number(JsonObject* obj, const char* name) {
  JsonNode* n = json_object_get_member(obj, name);
  if (!n || !JSON_NODE_HOLDS_VALUE(n)) return std::nullopt;
  GType t = json_node_get_value_type(n);
  if (t == G_TYPE_INT64) return static_cast<double>(json_node_get_int(n));
  if (t == G_TYPE_DOUBLE) return json_node_get_double(n);
  return std::nullopt;
}

std::int64_t integer(JsonObject* obj, const char* name) {
  JsonNode* n = json_object_get_member(obj, name);
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64
             ? json_node_get_int(n)
             : 0;
}

}  // namespace

bool UsageReport::add_line(const std::string& line, const UsageQuery& query) {
  auto node = json::parse(line);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return false;
  JsonObject* obj = json_node_get_object(node.get());
  auto key = json::get_string(obj, "key");
  auto model = json::get_string(obj, "model");
  auto time = number(obj, "time");
  if (!key || !model || !time) return false;
  UsageEntry e;
  e.time = *time;
  e.key = std::move(*key);
  e.model = std::move(*model);
  e.input_tokens = integer(obj, "input_tokens");
  e.output_tokens = integer(obj, "output_tokens");
  e.total_tokens = integer(obj, "total_tokens");
  e.transcription_seconds = number(obj, "transcription_seconds").value_or(0);
  e.cost_usd = number(obj, "cost_usd");
  return add(e, query);
}

bool UsageReport::add(const UsageEntry& e, const UsageQuery& query) {
  if (query.key && *query.key != e.key) return false;
  if (query.since && e.time < *query.since) return false;
  if (query.until && e.time >= *query.until) return false;
  UsageGroup& g = groups_[{e.key, e.model}];
  g.key = e.key;
  g.model = e.model;
  g.turns++;
  add_to(g.input_tokens, e.input_tokens);
  add_to(g.output_tokens, e.output_tokens);
  add_to(g.total_tokens,
         e.total_tokens > 0
             ? e.total_tokens
             : saturating_add(std::max<std::int64_t>(0, e.input_tokens), e.output_tokens));
  add_to(g.transcription_seconds, e.transcription_seconds);
  if (e.cost_usd) {
    add_to(g.cost_usd, *e.cost_usd);
    g.priced_turns++;
  }
  return true;
}

std::vector<UsageGroup> UsageReport::groups() const {
  std::vector<UsageGroup> out;
  out.reserve(groups_.size());
  for (const auto& [id, g] : groups_) out.push_back(g);
  return out;
}

std::string usage_report_json(const std::vector<UsageGroup>& groups) {
  auto list = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  json_node_take_array(list.get(), json_array_new());
  for (const UsageGroup& g : groups) {
    json::ObjectBuilder row;
    row.set("key", g.key)
        .set("model", g.model)
        .set("turns", g.turns)
        .set("input_tokens", g.input_tokens)
        .set("output_tokens", g.output_tokens)
        .set("total_tokens", g.total_tokens)
        .set("transcription_seconds", g.transcription_seconds);
    if (g.priced_turns > 0)
      row.set("cost_usd", g.cost_usd);
    else
      row.set_null("cost_usd");
    row.set("unpriced_turns", g.turns - g.priced_turns);
    json_array_add_element(json_node_get_array(list.get()), row.node().release());
  }
  json::ObjectBuilder out;
  out.set("object", "list").set_node("data", list);
  return out.str();
}

std::vector<UsageGroup> scan_usage_log(const std::string& path, const UsageQuery& query) {
  UsageReport report;
  // Only a regular file: a device (a log pointed at /dev/null) reads forever or nothing.
  if (path.empty() || !g_file_test(path.c_str(), G_FILE_TEST_IS_REGULAR)) return report.groups();
  std::ifstream in(path);
  std::string line;
  // A line being appended as we read is cut short: not valid JSON, skipped.
  while (std::getline(in, line)) report.add_line(line, query);
  return report.groups();
}

bool query_usage_log_async(std::string path, UsageQuery query,
                           std::function<void(std::vector<UsageGroup>)> done) {
  if (scans_running.fetch_add(1) >= kMaxConcurrentScans) {
    scans_running.fetch_sub(1);
    return false;
  }
  std::thread([path = std::move(path), query = std::move(query), done = std::move(done)]() mutable {
    std::vector<UsageGroup> groups = scan_usage_log(path, query);
    scans_running.fetch_sub(1);
    // `done` (and what it holds) moves to the main loop, where it runs and is destroyed.
    post_to_main([groups = std::move(groups), done = std::move(done)]() mutable {
      done(std::move(groups));
    });
  }).detach();
  return true;
}

}  // namespace rtgw::usage
