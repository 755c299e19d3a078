// SPDX-License-Identifier: MIT
#include "usage/usage_ledger.h"

#include <glib.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <stdexcept>

#include "common/json.h"
#include "usage/saturating.h"

namespace rtgw::usage {

std::int64_t UsageRecord::billable_tokens() const {
  return total_tokens > 0 ? total_tokens
                          : saturating_add(std::max<std::int64_t>(0, input_tokens), output_tokens);
}

void UsageRecord::add_tokens(const UsageRecord& o) {
  add_to(input_tokens, o.input_tokens);
  add_to(output_tokens, o.output_tokens);
  add_to(total_tokens, o.total_tokens);
  add_to(input_text_tokens, o.input_text_tokens);
  add_to(input_audio_tokens, o.input_audio_tokens);
  add_to(input_image_tokens, o.input_image_tokens);
  add_to(input_cached_tokens, o.input_cached_tokens);
  cached_details_present = cached_details_present || o.cached_details_present;
  add_to(input_cached_text_tokens, o.input_cached_text_tokens);
  add_to(input_cached_audio_tokens, o.input_cached_audio_tokens);
  add_to(input_cached_image_tokens, o.input_cached_image_tokens);
  add_to(transcription_seconds, o.transcription_seconds);
  add_to(output_text_tokens, o.output_text_tokens);
  add_to(output_audio_tokens, o.output_audio_tokens);
  if (o.cost_usd) cost_usd = saturating_add(cost_usd.value_or(0), *o.cost_usd);
}

json::ObjectBuilder UsageRecord::tokens_json() const {
  json::ObjectBuilder input_details;
  json::ObjectBuilder cached_details;
  cached_details.set("text_tokens", input_cached_text_tokens)
      .set("audio_tokens", input_cached_audio_tokens)
      .set("image_tokens", input_cached_image_tokens);
  input_details.set("text_tokens", input_text_tokens)
      .set("audio_tokens", input_audio_tokens)
      .set("image_tokens", input_image_tokens)
      .set("cached_tokens", input_cached_tokens);
  // Only when the upstream sent it, so a record's details are the upstream's.
  if (cached_details_present)
    input_details.set_object("cached_tokens_details", std::move(cached_details));
  json::ObjectBuilder output_details;
  output_details.set("text_tokens", output_text_tokens).set("audio_tokens", output_audio_tokens);
  json::ObjectBuilder out;
  out.set("input_tokens", input_tokens)
      .set("output_tokens", output_tokens)
      .set("total_tokens", total_tokens)
      .set_object("input_token_details", std::move(input_details))
      .set_object("output_token_details", std::move(output_details))
      .set("transcription_seconds", transcription_seconds);
  return out;
}

std::string UsageRecord::to_json_line(double unix_time) const {
  json::ObjectBuilder out = tokens_json();
  out.set("time", unix_time)
      .set("kind", kind)
      .set("call_id", call_id)
      .set("transport", transport)
      .set("key", key_name)
      .set("model", model)
      .set("worker", worker)
      .set("status", status)
      .set("usage_present", usage_present);
  // A response turn names its response, a transcription its item; the other id is null.
  if (response_id.empty())
    out.set_null("response_id");
  else
    out.set("response_id", response_id);
  if (item_id.empty())
    out.set_null("item_id");
  else
    out.set("item_id", item_id);
  if (service_tier.empty())
    out.set_null("service_tier");
  else
    out.set("service_tier", service_tier);
  if (first_token_latency_ms < 0)
    out.set_null("first_token_latency_ms");
  else
    out.set("first_token_latency_ms", first_token_latency_ms);
  out.set("turn_duration_ms", turn_duration_ms);
  if (cost_usd)
    out.set("cost_usd", *cost_usd);
  else
    out.set_null("cost_usd");
  return out.str();
}

UsageLedger::UsageLedger(const std::string& log_path) {
  memory_only_ = log_path.empty();
  if (memory_only_) return;
  // Replay: each line's key, billable tokens and cost. Only a regular file: a device (a log pointed
  // at /dev/null or /dev/full) reads forever or nothing.
  bool regular = g_file_test(log_path.c_str(), G_FILE_TEST_IS_REGULAR);
  if (!regular && g_file_test(log_path.c_str(), G_FILE_TEST_EXISTS))
    g_warning("the usage log %s is not a regular file: nothing replayed", log_path.c_str());
  std::ifstream in;
  if (regular) in.open(log_path);
  std::string line;
  while (std::getline(in, line)) {
    auto node = json::parse(line);
    if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) continue;
    JsonObject* obj = json_node_get_object(node.get());
    auto key = json::get_string(obj, "key");
    if (!key) continue;
    auto number = [&](const char* name) -> std::int64_t {
      JsonNode* n = json_object_get_member(obj, name);
      return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64
                 ? json_node_get_int(n)
                 : 0;
    };
    UsageRecord r;
    r.total_tokens = number("total_tokens");
    r.input_tokens = number("input_tokens");
    r.output_tokens = number("output_tokens");
    add_to(used_[*key], r.billable_tokens());
    if (JsonNode* cost = json_object_get_member(obj, "cost_usd");
        cost && JSON_NODE_HOLDS_VALUE(cost)) {
      GType t = json_node_get_value_type(cost);
      if (t == G_TYPE_DOUBLE)
        add_to(usd_[*key], json_node_get_double(cost));
      else if (t == G_TYPE_INT64)
        add_to(usd_[*key], static_cast<double>(json_node_get_int(cost)));
    }
    replayed_++;
  }
  log_.reset(std::fopen(log_path.c_str(), "a"));
  if (!log_) throw std::runtime_error("cannot open the usage log " + log_path);
}

bool UsageLedger::record(const UsageRecord& record) {
  add_to(used_[record.key_name], record.billable_tokens());
  if (record.cost_usd) add_to(usd_[record.key_name], *record.cost_usd);
  double now = static_cast<double>(g_get_real_time()) / 1e6;
  if (sink_) sink_(record, now);
  if (memory_only_) {
    recent_.push_back({now, record.key_name, record.model, record.input_tokens,
                       record.output_tokens, record.total_tokens, record.transcription_seconds,
                       record.cost_usd});
    if (recent_.size() > kMemoryEntries) recent_.pop_front();
  }
  if (!log_) return true;
  std::string line = record.to_json_line(now) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), log_.get()) == line.size() &&
      std::fflush(log_.get()) == 0)
    return true;
  int error = errno;
  // Whatever stdio kept of the line is dropped with the error flag, so the next record starts
  // clean (a partial line on disk is skipped at replay: it is not valid JSON).
  std::clearerr(log_.get());
  g_warning("usage log write failed (%s): the record of %s (%s) counts in memory only",
            g_strerror(error), record.response_id.c_str(), record.key_name.c_str());
  return false;
}

void UsageLedger::merge_replayed(const TotalsByKey& totals) {
  for (const auto& [key, t] : totals) {
    used_[key] = std::max(used_[key], t.tokens);
    usd_[key] = std::max(usd_[key], t.cost_usd);
  }
}

std::int64_t UsageLedger::tokens_used(const std::string& key_name) const {
  auto it = used_.find(key_name);
  return it == used_.end() ? 0 : it->second;
}

std::vector<UsageGroup> UsageLedger::memory_report(const UsageQuery& query) const {
  UsageReport report;
  for (const UsageEntry& e : recent_) report.add(e, query);
  return report.groups();
}

void UsageLedger::add_usd(const std::string& key_name, double usd) { add_to(usd_[key_name], usd); }

double UsageLedger::usd_used(const std::string& key_name) const {
  auto it = usd_.find(key_name);
  return it == usd_.end() ? 0 : it->second;
}

}  // namespace rtgw::usage
