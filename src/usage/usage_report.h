// SPDX-License-Identifier: MIT
// The usage report (GET /v1/usage): usage records summed by key and model over a time window.
//
// Owns: the query (which key, since/until), the groups and their JSON, and reading them from the
// JSONL usage log. The log is scanned line by line on a worker thread (never on the main loop);
// memory is one group per (key, model) seen in the window, whatever the log's length. Another
// store (PostgreSQL) can answer the same UsageQuery with the same UsageGroups.
//
// Threads: scan_usage_log() on any thread; query_usage_log_async() and its callback on the main
// loop.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rtgw::usage {

struct UsageQuery {
  std::optional<std::string> key;  // only this key's records (none: every key)
  std::optional<double> since;     // unix seconds, inclusive
  std::optional<double> until;     // unix seconds, exclusive
};

struct UsageGroup {
  std::string key;
  std::string model;
  std::int64_t turns = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t total_tokens = 0;  // per turn: total_tokens, or input + output when none was sent
  double transcription_seconds = 0;
  double cost_usd = 0;            // the sum over the priced turns
  std::int64_t priced_turns = 0;  // turns that carried a cost_usd
};

// A source's answer: the groups, or why the source could not answer (the route then says 503).
struct UsageReply {
  std::vector<UsageGroup> groups;
  std::optional<std::string> unavailable;  // set: the store is unreachable (the message)
};

// One turn as the report counts it.
struct UsageEntry {
  double time = 0;  // unix seconds
  std::string key;
  std::string model;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t total_tokens = 0;
  double transcription_seconds = 0;
  std::optional<double> cost_usd;
};

class UsageReport {
 public:
  // Adds one usage-log line (ignored when it is not a record, or outside the query's window or
  // key). False when it was not counted.
  bool add_line(const std::string& line, const UsageQuery& query);
  bool add(const UsageEntry& entry, const UsageQuery& query);
  std::vector<UsageGroup> groups() const;

 private:
  std::map<std::pair<std::string, std::string>, UsageGroup> groups_;
};

// {"object": "list", "data": [{"key", "model", "turns", "input_tokens", "output_tokens",
// "total_tokens", "transcription_seconds", "cost_usd", "unpriced_turns"}]}; cost_usd is null for a
// group none of whose turns was priced, else the sum of the priced turns' costs (unpriced_turns
// says how many add nothing).
std::string usage_report_json(const std::vector<UsageGroup>& groups);

// Reads the whole log (blocking). A missing log is an empty report.
std::vector<UsageGroup> scan_usage_log(const std::string& path, const UsageQuery& query);

// Scans on a worker thread, then calls `done` on the main loop. False (and `done` is not called)
// when kMaxConcurrentScans are already running.
inline constexpr int kMaxConcurrentScans = 2;
bool query_usage_log_async(std::string path, UsageQuery query,
                           std::function<void(std::vector<UsageGroup>)> done);

}  // namespace rtgw::usage
