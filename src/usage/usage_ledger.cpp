// SPDX-License-Identifier: MIT
#include "usage/usage_ledger.h"

#include <glib.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <stdexcept>

#include "common/json.h"
#include "common/random.h"
#include "usage/budget_period.h"
#include "usage/saturating.h"

namespace rtgw::usage {

std::int64_t UsageRecord::billable_tokens() const {
  return total_tokens > 0 ? total_tokens
                          : saturating_add(std::max<std::int64_t>(0, input_tokens), output_tokens);
}

void UsageRecord::add_tokens(const UsageRecord& o) {
  rtevents::add_token_counts(*this, o);
  add_to(transcription_seconds, o.transcription_seconds);
  add_to(audio_seconds, o.audio_seconds);
  if (o.cost_usd) cost_usd = saturating_add(cost_usd.value_or(0), *o.cost_usd);
}

namespace {

// The token object of `group` (and, nested, those inside it): each row of the field table in that
// group, in table order, then each nested group in kTokenGroups order (the cached details only
// when the upstream sent them, so a record's details are the upstream's).
json::ObjectBuilder token_object(const rtevents::TokenCounts& c, rtevents::TokenGroup group) {
  json::ObjectBuilder out;
  for (const auto& f : rtevents::kTokenFields)
    if (f.group == group) out.set(f.key, gint64{rtevents::count_of(c, f)});
  for (const auto& g : rtevents::kTokenGroups)
    if (g.parent == group && (!g.only_with_details || c.cached_details_present))
      out.set_object(g.key, token_object(c, g.group));
  return out;
}

}  // namespace

json::ObjectBuilder UsageRecord::tokens_json() const {
  json::ObjectBuilder out = token_object(*this, rtevents::TokenGroup::kUsage);
  out.set("transcription_seconds", transcription_seconds);
  if (audio_seconds > 0) out.set("audio_seconds", audio_seconds);
  return out;
}

std::string UsageRecord::to_json_line(double unix_time) const {
  json::ObjectBuilder out = tokens_json();
  if (!record_id.empty()) out.set("record_id", record_id);
  out.set("time", unix_time)
      .set("kind", kind)
      .set("call_id", call_id)
      .set("transport", transport)
      .set("key", key_name)
      .set("model", model)
      .set("worker", worker)
      .set("status", status)
      .set("usage_present", usage_present);
  if (!leg.empty()) out.set("leg", leg);
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

namespace {

std::int64_t int_member(JsonObject* obj, const char* name) {
  JsonNode* n = json_object_get_member(obj, name);
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64
             ? json_node_get_int(n)
             : 0;
}

std::optional<double> number_member(JsonObject* obj, const char* name) {
  JsonNode* n = obj ? json_object_get_member(obj, name) : nullptr;
  if (!n || !JSON_NODE_HOLDS_VALUE(n)) return std::nullopt;
  GType t = json_node_get_value_type(n);
  if (t == G_TYPE_DOUBLE) return json_node_get_double(n);
  if (t == G_TYPE_INT64) return static_cast<double>(json_node_get_int(n));
  return std::nullopt;
}

// The object of a token group inside a log line (the line itself for kUsage), or null.
JsonObject* token_group(JsonObject* line, rtevents::TokenGroup group) {
  const char* keys[4];
  const std::size_t n = rtevents::group_path(group, keys);
  JsonObject* obj = line;
  for (std::size_t i = 0; i < n && obj; ++i) obj = json::get_object(obj, keys[i]);
  return obj;
}

}  // namespace

std::optional<LoggedRecord> parse_usage_line(const std::string& line) {
  auto node = json::parse(line);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return std::nullopt;
  JsonObject* obj = json_node_get_object(node.get());
  auto key = json::get_string(obj, "key");
  if (!key) return std::nullopt;
  LoggedRecord out;
  UsageRecord& r = out.record;
  r.key_name = *key;
  auto text = [&](const char* name, std::string& field) {
    if (auto v = json::get_string(obj, name)) field = *v;
  };
  text("record_id", r.record_id);
  text("kind", r.kind);
  text("call_id", r.call_id);
  text("transport", r.transport);
  text("model", r.model);
  text("worker", r.worker);
  text("response_id", r.response_id);
  text("item_id", r.item_id);
  text("status", r.status);
  text("service_tier", r.service_tier);
  if (JsonNode* n = json_object_get_member(obj, "usage_present");
      n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_BOOLEAN)
    r.usage_present = json_node_get_boolean(n);
  // The token counts: each row of the field table at its place in the line.
  for (const auto& f : rtevents::kTokenFields)
    if (JsonObject* group = token_group(obj, f.group))
      rtevents::count_of(r, f) = int_member(group, f.key);
  r.cached_details_present = token_group(obj, rtevents::TokenGroup::kCachedDetails) != nullptr;
  r.first_token_latency_ms = number_member(obj, "first_token_latency_ms").value_or(-1);
  r.turn_duration_ms = number_member(obj, "turn_duration_ms").value_or(0);
  r.transcription_seconds = number_member(obj, "transcription_seconds").value_or(0);
  r.audio_seconds = number_member(obj, "audio_seconds").value_or(0);
  r.cost_usd = number_member(obj, "cost_usd");
  out.unix_time = number_member(obj, "time").value_or(0);
  return out;
}

UsageLedger::UsageLedger(const std::string& log_path, PeriodLookup periods)
    : periods_(std::move(periods)) {
  memory_only_ = log_path.empty();
  if (memory_only_) return;
  // Replay: each line's key, billable tokens and cost. Only a regular file: a device (a log pointed
  // at /dev/null or /dev/full) reads forever or nothing.
  bool regular = g_file_test(log_path.c_str(), G_FILE_TEST_IS_REGULAR);
  if (!regular && g_file_test(log_path.c_str(), G_FILE_TEST_EXISTS))
    g_warning("the usage log %s is not a regular file: nothing replayed", log_path.c_str());
  std::ifstream in;
  if (regular) in.open(log_path, std::ios::binary);
  std::string line;
  bool ends_in_newline = true;
  while (std::getline(in, line)) {
    replayed_bytes_ += line.size();
    ends_in_newline = !in.eof();
    if (ends_in_newline) replayed_bytes_++;
    auto logged = parse_usage_line(line);
    if (!logged) continue;
    const UsageRecord& r = logged->record;
    add(used_, r.key_name, logged->unix_time, r.billable_tokens(), r.cost_usd.value_or(0));
    replayed_++;
  }
  log_.reset(std::fopen(log_path.c_str(), "a"));
  if (!log_) throw std::runtime_error("cannot open the usage log " + log_path);
  // A line cut short by a crash: end it, so the next record starts a line of its own (the cut
  // line is skipped by every replay: it is not valid JSON).
  if (!ends_in_newline && std::fputc('\n', log_.get()) != EOF && std::fflush(log_.get()) == 0)
    replayed_bytes_++;
}

bool UsageLedger::record(const UsageRecord& offered) {
  UsageRecord record = offered;
  if (record.record_id.empty()) record.record_id = random_id("ur_", 32);
  double now = unix_now();
  add(used_, record.key_name, now, record.billable_tokens(), record.cost_usd.value_or(0));
  add(live_used_, record.key_name, now, record.billable_tokens(), record.cost_usd.value_or(0));
  if (memory_only_) {
    recent_.push_back({now, record.key_name, record.model, record.input_tokens,
                       record.output_tokens, record.total_tokens, record.transcription_seconds,
                       record.cost_usd});
    if (recent_.size() > kMemoryEntries) recent_.pop_front();
  }
  // The log first, so the sink learns where the record's line ends (the PostgreSQL ledger's
  // replay watermark).
  bool logged = true;
  std::uint64_t log_end = 0;
  if (log_) {
    std::string line = record.to_json_line(now) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), log_.get()) == line.size() &&
        std::fflush(log_.get()) == 0) {
      off_t end = ftello(log_.get());
      if (end > 0) log_end = static_cast<std::uint64_t>(end);
    } else {
      int error = errno;
      // Whatever stdio kept of the line is dropped with the error flag, so the next record starts
      // clean (a partial line on disk is skipped at replay: it is not valid JSON).
      std::clearerr(log_.get());
      g_warning("usage log write failed (%s): the record of %s (%s) counts in memory only",
                g_strerror(error), record.response_id.c_str(), record.key_name.c_str());
      logged = false;
    }
  }
  if (sink_) sink_(record, now, log_end);
  return logged;
}

void UsageLedger::merge_replayed(const TotalsByKey& totals) {
  // Each record once: the replay has every record from before this process (the log's included),
  // live_* what this process recorded since (not in the table when the replay was read: the writer
  // replays before it writes any of them). Saturating sums (usage/saturating.h).
  // A key with a period: the replay is its current period's (as of the query), so it counts in
  // the period holding now.
  used_ = live_used_;
  const double now = unix_now();
  for (const auto& [key, t] : totals) add(used_, key, now, t.tokens, t.cost_usd);
}

void UsageLedger::add(Counts& counts, const std::string& key_name, double unix_time,
                      std::int64_t tokens, double usd) const {
  std::optional<std::int64_t> seconds = periods_ ? periods_(key_name) : std::nullopt;
  const std::int64_t start = seconds ? period_start(unix_time, *seconds) : 0;
  auto [it, fresh] = counts.try_emplace(key_name, Count{seconds, start, 0, 0});
  Count& c = it->second;
  if (!fresh && (c.seconds != seconds || c.start < start)) {
    // A later period (or a key whose period changed): the spend counted starts again from zero.
    c = Count{seconds, start, 0, 0};
  } else if (c.start > start) {
    return;  // a record of a period already over
  }
  add_to(c.tokens, tokens);
  add_to(c.usd, usd);
}

const UsageLedger::Count* UsageLedger::current(const std::string& key_name) const {
  auto it = used_.find(key_name);
  if (it == used_.end()) return nullptr;
  const Count& c = it->second;
  std::optional<std::int64_t> seconds = periods_ ? periods_(key_name) : std::nullopt;
  // The key's period changed since this was counted (or was not known at the replay): what was
  // counted still counts, until the next record starts the new window (add()): a budget errs on
  // the side of refusing.
  if (c.seconds != seconds) return &c;
  if (seconds && c.start != period_start(unix_now(), *seconds)) return nullptr;  // period over
  return &c;
}

std::int64_t UsageLedger::tokens_used(const std::string& key_name) const {
  const Count* c = current(key_name);
  return c ? c->tokens : 0;
}

std::vector<UsageGroup> UsageLedger::memory_report(const UsageQuery& query) const {
  UsageReport report;
  for (const UsageEntry& e : recent_) report.add(e, query);
  return report.groups();
}

void UsageLedger::add_usd(const std::string& key_name, double usd) {
  const double now = unix_now();
  add(used_, key_name, now, 0, usd);
  add(live_used_, key_name, now, 0, usd);
}

double UsageLedger::usd_used(const std::string& key_name) const {
  const Count* c = current(key_name);
  return c ? c->usd : 0;
}

}  // namespace rtgw::usage
