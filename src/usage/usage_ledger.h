// SPDX-License-Identifier: MIT
// Usage records and budgets.
//
// Owns: the usage log (one JSON line per metered turn, appended and flushed), each key's token
// and US-dollar totals over the log's lifetime, or, for a key with a budget period
// (`budget_duration`, usage/budget_period.h), over its current period only (rebuilt from the log
// at start-up, so budgets survive restarts; the log keeps every record), the budget checks, and
// handing each record to a sink (the PostgreSQL ledger, usage/postgres_ledger.h).
//
// Threads: main loop only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "rtevents/usage_fields.h"
#include "usage/usage_report.h"

namespace rtgw::usage {

// The token counts (input_tokens, ..., cached_details_present) come from the event vocabulary's
// field table (rtevents/usage_fields.h): the log line, the PostgreSQL columns, pricing and the
// token metrics walk its rows.
struct UsageRecord : rtevents::TokenCounts {
  // "response" (a response.done) | "transcription" | "translation" (a translation session's usage
  // report, SPEC "Translation sessions") | "call"
  std::string kind = "response";
  // Unique per record ("ur_" + 32 random hex digits), given by UsageLedger::record(): written to
  // the JSONL line and the table's `record_id`, so the log's tail replayed into the table at
  // start-up lands exactly once. Empty in a log line written before record ids existed.
  std::string record_id;
  std::string call_id;
  std::string transport;  // "webrtc" | "websocket"
  std::string key_name;
  std::string model;
  std::string worker;
  std::string response_id;  // kind response
  std::string item_id;      // kind transcription: the transcribed item; translation: the event_id
  std::string status;
  // kind "call": a call that ended without a turn to meter for a reason the record carries
  // (status, e.g. "dtls_fingerprint_mismatch", and the leg it concerns); written only then.
  std::string leg;
  bool usage_present = false;
  std::string service_tier;
  double first_token_latency_ms = -1;
  double turn_duration_ms = 0;
  double transcription_seconds = 0;  // a duration-billed transcription's seconds
  // kind translation: the audio seconds the worker's report covers (priced per_minute.audio);
  // written to the log line only when not 0.
  double audio_seconds = 0;
  // A token count of the turn was over usage::kMaxTurnTokens and was counted at that cap
  // (usage/saturating.h): invalid usage from the worker, logged by the relay. Not in the log line.
  bool usage_clamped = false;
  // The turn's price in US dollars from the model's price table; none when the model has no
  // table (written as null, never 0).
  std::optional<double> cost_usd;

  // The tokens a budget counts: total_tokens, or input + output when the upstream sent no total.
  std::int64_t billable_tokens() const;
  // Adds `other`'s token counts to this record's (for per-call totals), and its cost: the sum of
  // the known costs, null while no turn had one.
  void add_tokens(const UsageRecord& other);
  // {input_tokens, output_tokens, total_tokens, input_token_details (with
  // cached_tokens_details), output_token_details, transcription_seconds}
  json::ObjectBuilder tokens_json() const;
  std::string to_json_line(double unix_time) const;
};

// A usage-log line read back: the record and the time the line carries. nullopt when the line is
// not a JSON object with a string `key` (such a line counts nowhere). Missing fields keep their
// defaults. Any thread.
struct LoggedRecord {
  UsageRecord record;
  double unix_time = 0;
};
std::optional<LoggedRecord> parse_usage_line(const std::string& line);

// A key's totals from a replay: billable tokens, and the priced records' cost_usd.
struct KeyTotals {
  std::int64_t tokens = 0;
  double cost_usd = 0;
};
using TotalsByKey = std::map<std::string, KeyTotals>;

// A key's budget period in seconds (nullopt: none, its totals run over the log's lifetime).
using PeriodLookup = std::function<std::optional<std::int64_t>(const std::string& key_name)>;

class UsageLedger {
 public:
  // Opens (creating) the log and replays it. An empty path keeps totals in memory only.
  // `periods` gives each key's budget period (asked at replay and at each read: a key's totals
  // are those of the period holding now). Throws std::runtime_error when the log cannot be
  // opened.
  explicit UsageLedger(const std::string& log_path, PeriodLookup periods = {});

  // Counts the record and appends it to the log. False when the log write failed (disk full,
  // I/O error): the record then counts in memory only, and the error is logged.
  bool record(const UsageRecord& record);
  // Every record counted is also handed to `sink` (the PostgreSQL ledger) with the time its log
  // line carries and the log's length once that line is in (0: no log, or the write failed).
  using Sink = std::function<void(const UsageRecord&, double unix_time, std::uint64_t log_end)>;
  void set_sink(Sink sink) { sink_ = std::move(sink); }
  // Totals replayed from the PostgreSQL ledger, which then counts every record made before this
  // process started exactly once: every instance's rows, this log's lines it had not yet (replayed
  // into the table first) and the lines it refused. Each key's total becomes that plus the records
  // of this process (record() since start-up), replacing the log's own replay. For a key with a
  // budget period the replay holds the current period's records only (the ledger's query).
  void merge_replayed(const TotalsByKey& totals);
  std::int64_t tokens_used(const std::string& key_name) const;
  bool over_budget(const std::string& key_name, std::int64_t budget) const {
    return tokens_used(key_name) >= budget;
  }
  // The key's spend in US dollars: the sum of its records' cost_usd (unpriced turns add nothing).
  // The seam for other sources of the same total (a PostgreSQL replay, a cluster-wide counter).
  double usd_used(const std::string& key_name) const;
  bool over_budget_usd(const std::string& key_name, double budget_usd) const {
    return usd_used(key_name) >= budget_usd;
  }
  // Adds spend recorded elsewhere (e.g. replayed from another store) to the key's total.
  void add_usd(const std::string& key_name, double usd);
  std::size_t replayed_records() const { return replayed_; }
  // The log's length in bytes when it was replayed (its lines from before this process), for the
  // PostgreSQL ledger's replay of the log into the table. 0 without a log.
  std::uint64_t replayed_bytes() const { return replayed_bytes_; }
  // Without a log: the report of the last kMemoryEntries turns of this process (GET /v1/usage's
  // source then). With a log: empty (the log is the source).
  std::vector<UsageGroup> memory_report(const UsageQuery& query) const;
  static constexpr std::size_t kMemoryEntries = 50000;

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  // A key's spend in one window: the log's lifetime (`period` nullopt) or the budget period of
  // `seconds` starting at `start`.
  struct Count {
    std::optional<std::int64_t> seconds;
    std::int64_t start = 0;
    std::int64_t tokens = 0;
    double usd = 0;
  };
  using Counts = std::map<std::string, Count>;
  // Adds a record of `unix_time` to `counts`: a later period than the one counted starts the
  // count afresh; a record of an earlier one adds nothing.
  void add(Counts& counts, const std::string& key_name, double unix_time, std::int64_t tokens,
           double usd) const;
  // The count of `key_name` if it is of the window holding now (else nothing is spent yet).
  const Count* current(const std::string& key_name) const;

  std::unique_ptr<std::FILE, FileCloser> log_;
  PeriodLookup periods_;
  Counts used_;
  // This process's own records (record()), kept apart for merge_replayed().
  Counts live_used_;
  Sink sink_;
  std::size_t replayed_ = 0;
  std::uint64_t replayed_bytes_ = 0;
  bool memory_only_ = false;
  std::deque<UsageEntry> recent_;  // memory_only_: the last kMemoryEntries turns
};

}  // namespace rtgw::usage
