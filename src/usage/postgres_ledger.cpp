// SPDX-License-Identifier: MIT
#include "usage/postgres_ledger.h"

#include <glib.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/main_thread.h"
#include "usage/postgres_url.h"

namespace rtgw::usage {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kFirstBackoffMs = 500;
constexpr int kMaxBackoffMs = 5000;
constexpr int kConnectTimeoutSeconds = 5;
// After close()'s deadline, how long a running statement gets before it is cancelled.
constexpr auto kCancelGrace = std::chrono::seconds(1);

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS realtime_usage (
  id bigserial PRIMARY KEY,
  time timestamptz NOT NULL,
  instance text NOT NULL,
  kind text NOT NULL,
  call_id text NOT NULL,
  transport text NOT NULL,
  key text NOT NULL,
  model text NOT NULL,
  worker text NOT NULL,
  response_id text,
  item_id text,
  status text NOT NULL,
  usage_present boolean NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  total_tokens bigint NOT NULL,
  input_text_tokens bigint NOT NULL,
  input_audio_tokens bigint NOT NULL,
  input_image_tokens bigint NOT NULL,
  input_cached_tokens bigint NOT NULL,
  input_cached_text_tokens bigint,
  input_cached_audio_tokens bigint,
  input_cached_image_tokens bigint,
  output_text_tokens bigint NOT NULL,
  output_audio_tokens bigint NOT NULL,
  service_tier text,
  first_token_latency_ms double precision,
  turn_duration_ms double precision NOT NULL,
  transcription_seconds double precision NOT NULL,
  cost_usd double precision
);
CREATE UNIQUE INDEX IF NOT EXISTS realtime_usage_turn
  ON realtime_usage (call_id, (COALESCE(response_id, '')), (COALESCE(item_id, '')));
CREATE INDEX IF NOT EXISTS realtime_usage_key_time ON realtime_usage (key, time);
)SQL";

// GET /v1/usage's groups, as scan_usage_log() makes them from the JSONL log: a turn's total is
// total_tokens, or input + output when none was sent; cost_usd sums the priced turns and
// COUNT(cost_usd) says how many there were. Ordered by (key, model) bytewise, like the log's
// report. $1 key, $2 since, $3 until: each NULL when not asked.
constexpr const char* kReportSql =
    "SELECT key, model, COUNT(*)::text, SUM(input_tokens)::text, SUM(output_tokens)::text,"
    "  SUM(CASE WHEN total_tokens > 0 THEN total_tokens"
    "      ELSE input_tokens + output_tokens END)::text,"
    "  SUM(transcription_seconds)::text, COALESCE(SUM(cost_usd), 0)::text, COUNT(cost_usd)::text"
    " FROM realtime_usage"
    " WHERE ($1::text IS NULL OR key = $1::text)"
    "  AND ($2::float8 IS NULL OR time >= to_timestamp($2::float8))"
    "  AND ($3::float8 IS NULL OR time < to_timestamp($3::float8))"
    " GROUP BY key, model ORDER BY key COLLATE \"C\", model COLLATE \"C\"";

// The columns after `time` (written as to_timestamp($n::float8)), in insert order.
constexpr const char* kColumns[] = {"instance",
                                    "kind",
                                    "call_id",
                                    "transport",
                                    "key",
                                    "model",
                                    "worker",
                                    "response_id",
                                    "item_id",
                                    "status",
                                    "usage_present",
                                    "input_tokens",
                                    "output_tokens",
                                    "total_tokens",
                                    "input_text_tokens",
                                    "input_audio_tokens",
                                    "input_image_tokens",
                                    "input_cached_tokens",
                                    "input_cached_text_tokens",
                                    "input_cached_audio_tokens",
                                    "input_cached_image_tokens",
                                    "output_text_tokens",
                                    "output_audio_tokens",
                                    "service_tier",
                                    "first_token_latency_ms",
                                    "turn_duration_ms",
                                    "transcription_seconds",
                                    "cost_usd"};
constexpr std::size_t kParamsPerRow = 1 + std::size(kColumns);

struct PgConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgCancelFree {
  void operator()(PGcancel* c) const { PQfreeCancel(c); }
};
struct PgResultClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, PgResultClear>;

std::string one_line(const char* text) {
  std::string s = text ? text : "";
  for (char& c : s)
    if (c == '\n' || c == '\t') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A record's parameters, NULL as nullopt (in kColumns order, after the time).
void append_params(const UsageRecord& r, double unix_time, const std::string& instance,
                   std::vector<std::optional<std::string>>& out) {
  auto text = [&](const std::string& s) { out.emplace_back(s); };
  auto text_or_null = [&](const std::string& s) {
    if (s.empty())
      out.emplace_back(std::nullopt);
    else
      out.emplace_back(s);
  };
  auto integer = [&](std::int64_t v) { out.emplace_back(std::to_string(v)); };
  auto cached = [&](std::int64_t v) {
    if (r.cached_details_present)
      integer(v);
    else
      out.emplace_back(std::nullopt);
  };
  char time_text[64];
  std::snprintf(time_text, sizeof time_text, "%.6f", unix_time);
  out.emplace_back(time_text);
  text(instance);
  text(r.kind);
  text(r.call_id);
  text(r.transport);
  text(r.key_name);
  text(r.model);
  text(r.worker);
  text_or_null(r.response_id);
  text_or_null(r.item_id);
  text(r.status);
  out.emplace_back(r.usage_present ? "true" : "false");
  integer(r.input_tokens);
  integer(r.output_tokens);
  integer(r.total_tokens);
  integer(r.input_text_tokens);
  integer(r.input_audio_tokens);
  integer(r.input_image_tokens);
  integer(r.input_cached_tokens);
  cached(r.input_cached_text_tokens);
  cached(r.input_cached_audio_tokens);
  cached(r.input_cached_image_tokens);
  integer(r.output_text_tokens);
  integer(r.output_audio_tokens);
  text_or_null(r.service_tier);
  if (r.first_token_latency_ms < 0)
    out.emplace_back(std::nullopt);
  else
    out.emplace_back(number(r.first_token_latency_ms));
  out.emplace_back(number(r.turn_duration_ms));
  out.emplace_back(number(r.transcription_seconds));
  if (r.cost_usd)
    out.emplace_back(number(*r.cost_usd));
  else
    out.emplace_back(std::nullopt);
}

std::string insert_sql(std::size_t rows) {
  std::string sql = "INSERT INTO realtime_usage (time";
  for (const char* c : kColumns) sql += std::string(", ") + c;
  sql += ") VALUES ";
  int n = 1;
  for (std::size_t row = 0; row < rows; row++) {
    sql += row ? ", (" : "(";
    sql += "to_timestamp($" + std::to_string(n++) + "::float8)";
    for (std::size_t c = 0; c < std::size(kColumns); c++) sql += ", $" + std::to_string(n++);
    sql += ")";
  }
  sql += " ON CONFLICT DO NOTHING";
  return sql;
}

}  // namespace

struct PostgresLedger::Connection {
  std::unique_ptr<PGconn, PgConnFinish> conn;
  std::unique_ptr<PGcancel, PgCancelFree> cancel;  // used by close() from the main thread
};

const char* PostgresLedger::schema_sql() { return kSchema; }
const char* PostgresLedger::report_sql() { return kReportSql; }

PostgresLedger::PostgresLedger(Options options)
    : options_(std::move(options)),
      masked_(mask_conninfo(options_.conninfo)),
      on_late_replay_(std::make_shared<std::function<void(const TotalsByKey&)>>()) {
  thread_ = std::thread([this] { run(); });
}

PostgresLedger::~PostgresLedger() { close(std::chrono::milliseconds(0)); }

bool PostgresLedger::offer(const UsageRecord& record, double unix_time) {
  std::lock_guard lock(mu_);
  if (!closing_ && queue_.size() < options_.buffer_records) {
    queue_.push_back({record, unix_time});
    offered_++;
    cv_.notify_all();
    return true;
  }
  dropped_++;
  dropped_in_episode_++;
  if (!overflowing_) {
    overflowing_ = true;
    if (closing_)
      g_warning("usage ledger: a record of %s arrived after shutdown began: dropped",
                record.call_id.c_str());
    else
      g_warning(
          "usage ledger: buffer full (%zu records) while PostgreSQL %s is not taking them: "
          "dropping records until it is back (counted in rtgw_usage_ledger_dropped_total)",
          options_.buffer_records, masked_.c_str());
  }
  return false;
}

bool PostgresLedger::report(UsageQuery query, std::function<void(UsageReply)> done) {
  std::lock_guard lock(mu_);
  if (closing_ || reports_pending_ >= kMaxConcurrentScans) return false;
  reports_pending_++;
  if (!conn_) {
    // Down (or not yet connected): say so now rather than after the reconnection.
    reports_.push_back({std::move(query), offered_, std::move(done)});
    fail_reports(outage_reason_.empty() ? "not connected yet" : outage_reason_);
    return true;
  }
  reports_.push_back({std::move(query), offered_, std::move(done)});
  cv_.notify_all();
  return true;
}

void PostgresLedger::fail_reports(const std::string& why) {
  while (!reports_.empty()) {
    ReportJob job = std::move(reports_.front());
    reports_.pop_front();
    reports_pending_--;
    post_to_main([done = std::move(job.done), why] { done({{}, "PostgreSQL: " + why}); });
  }
}

bool PostgresLedger::run_report(Connection& conn, const UsageQuery& query, UsageReply& reply) {
  std::optional<std::string> params[3];
  if (query.key) params[0] = *query.key;
  if (query.since) params[1] = number(*query.since);
  if (query.until) params[2] = number(*query.until);
  const char* values[3];
  for (int i = 0; i < 3; i++) values[i] = params[i] ? params[i]->c_str() : nullptr;
  Result r(PQexecParams(conn.conn.get(), kReportSql, 3, nullptr, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    std::string why = one_line(PQresultErrorMessage(r.get()));
    reply.unavailable = "the usage report failed: " + why;
    if (PQstatus(conn.conn.get()) != CONNECTION_OK) {
      std::lock_guard lock(mu_);
      note_outage("reporting: " + why);
      return false;
    }
    g_warning("usage ledger: the usage report failed: %s", why.c_str());
    return true;
  }
  auto integer = [&](int row, int col) {
    return static_cast<std::int64_t>(std::strtoll(PQgetvalue(r.get(), row, col), nullptr, 10));
  };
  auto real = [&](int row, int col) { return std::strtod(PQgetvalue(r.get(), row, col), nullptr); };
  for (int i = 0; i < PQntuples(r.get()); i++) {
    UsageGroup g;
    g.key = PQgetvalue(r.get(), i, 0);
    g.model = PQgetvalue(r.get(), i, 1);
    g.turns = integer(i, 2);
    g.input_tokens = integer(i, 3);
    g.output_tokens = integer(i, 4);
    g.total_tokens = integer(i, 5);
    g.transcription_seconds = real(i, 6);
    g.cost_usd = real(i, 7);
    g.priced_turns = integer(i, 8);
    reply.groups.push_back(std::move(g));
  }
  return true;
}

std::size_t PostgresLedger::buffered() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::optional<TotalsByKey> PostgresLedger::wait_for_replay(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return replay_.has_value() || finished_; }) || !replay_) {
    replay_waited_out_ = true;
    return std::nullopt;
  }
  return replay_;
}

void PostgresLedger::set_on_late_replay(std::function<void(const TotalsByKey&)> fn) {
  *on_late_replay_ = std::move(fn);
}

std::size_t PostgresLedger::close(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return buffered();
  {
    std::unique_lock lock(mu_);
    closing_ = true;
    flush_deadline_ = Clock::now() + timeout;
    cv_.notify_all();
    if (!cv_.wait_until(lock, flush_deadline_ + kCancelGrace, [&] { return finished_; }) && conn_ &&
        conn_->cancel) {
      char error[256];
      PQcancel(conn_->cancel.get(), error, sizeof error);
    }
  }
  thread_.join();
  // The late-replay closure, if still queued, finds nothing to call.
  on_late_replay_.reset();
  return buffered();
}

std::chrono::steady_clock::time_point PostgresLedger::backoff() {
  backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kMaxBackoffMs) : kFirstBackoffMs;
  return Clock::now() + std::chrono::milliseconds(backoff_ms_);
}

void PostgresLedger::note_outage(const std::string& why) {
  up_ = false;
  outage_reason_ = why;
  if (outage_logged_) return;
  outage_logged_ = true;
  g_warning(
      "usage ledger: PostgreSQL %s is unavailable (%s): buffering up to %zu records, "
      "retrying with backoff",
      masked_.c_str(), why.c_str(), options_.buffer_records);
}

bool PostgresLedger::connect(std::unique_lock<std::mutex>& lock) {
  int timeout = kConnectTimeoutSeconds;
  if (closing_) {
    auto left =
        std::chrono::duration_cast<std::chrono::seconds>(flush_deadline_ - Clock::now()).count();
    timeout = static_cast<int>(std::clamp<long long>(left, 2, kConnectTimeoutSeconds));
  }
  lock.unlock();
  std::string timeout_text = std::to_string(timeout);
  // Ours first: a parameter in the connection string (expanded from dbname) overrides them.
  const char* keywords[] = {"application_name", "connect_timeout", "dbname", nullptr};
  const char* values[] = {"realtime-gateway", timeout_text.c_str(), options_.conninfo.c_str(),
                          nullptr};
  auto conn = std::make_unique<Connection>();
  conn->conn.reset(PQconnectdbParams(keywords, values, 1));
  std::string error;
  if (!conn->conn || PQstatus(conn->conn.get()) != CONNECTION_OK) {
    error = one_line(conn->conn ? PQerrorMessage(conn->conn.get()) : "out of memory");
  } else {
    Result r(PQexec(conn->conn.get(), kSchema));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
      error = "creating the table realtime_usage: " + one_line(PQresultErrorMessage(r.get()));
    else
      conn->cancel.reset(PQgetCancel(conn->conn.get()));
  }
  lock.lock();
  if (!error.empty()) {
    note_outage(error);
    return false;
  }
  conn_ = std::move(conn);
  up_ = true;
  backoff_ms_ = 0;
  if (outage_logged_)
    g_message("usage ledger: PostgreSQL %s is back: writing %zu buffered record(s)",
              masked_.c_str(), queue_.size());
  else
    g_message("usage ledger: writing usage records to PostgreSQL %s (table realtime_usage)",
              masked_.c_str());
  outage_logged_ = false;
  return true;
}

bool PostgresLedger::replay(Connection& conn, TotalsByKey& out) {
  Result r(PQexec(conn.conn.get(),
                  "SELECT key, SUM(CASE WHEN total_tokens > 0 THEN total_tokens "
                  "ELSE input_tokens + output_tokens END)::text, "
                  "COALESCE(SUM(cost_usd), 0)::text, COUNT(*)::text "
                  "FROM realtime_usage GROUP BY key"));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    std::lock_guard lock(mu_);
    note_outage("replaying budgets: " + one_line(PQresultErrorMessage(r.get())));
    return false;
  }
  long long records = 0;
  for (int i = 0; i < PQntuples(r.get()); i++) {
    KeyTotals& t = out[PQgetvalue(r.get(), i, 0)];
    t.tokens = std::strtoll(PQgetvalue(r.get(), i, 1), nullptr, 10);
    t.cost_usd = std::strtod(PQgetvalue(r.get(), i, 2), nullptr);
    records += std::strtoll(PQgetvalue(r.get(), i, 3), nullptr, 10);
  }
  g_message("usage ledger: %lld record(s) of %zu key(s) replayed from PostgreSQL for budgets",
            records, out.size());
  return true;
}

PostgresLedger::WriteResult PostgresLedger::insert(Connection& conn,
                                                   const std::vector<Pending>& batch,
                                                   std::uint64_t& inserted) {
  std::vector<std::optional<std::string>> params;
  params.reserve(batch.size() * kParamsPerRow);
  for (const auto& p : batch) append_params(p.record, p.unix_time, options_.instance, params);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  std::string sql = insert_sql(batch.size());
  Result r(PQexecParams(conn.conn.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
    inserted = std::strtoull(PQcmdTuples(r.get()), nullptr, 10);
    return WriteResult::kOk;
  }
  std::string why = one_line(PQresultErrorMessage(r.get()));
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  bool bad_data = PQstatus(conn.conn.get()) == CONNECTION_OK && state &&
                  (std::string(state, 2) == "22" || std::string(state, 2) == "23");
  if (bad_data) {
    g_message("usage ledger: PostgreSQL refused a batch of %zu record(s) (%s)", batch.size(),
              why.c_str());
    return WriteResult::kBadData;
  }
  std::lock_guard lock(mu_);
  note_outage("writing: " + why);
  return WriteResult::kOutage;
}

void PostgresLedger::run() {
  std::unique_lock lock(mu_);
  auto drop_connection = [&] {
    conn_.reset();
    up_ = false;
  };
  // Waits for the next attempt; close() wakes it to recompute against its deadline. A report
  // asked meanwhile is answered `unavailable` at once.
  auto wait_to_retry = [&] {
    auto next = backoff();
    if (closing_) next = std::min(next, flush_deadline_);
    bool was_closing = closing_;
    while (true) {
      fail_reports(outage_reason_);
      if (!cv_.wait_until(lock, next,
                          [&] { return closing_ != was_closing || !reports_.empty(); }) ||
          closing_ != was_closing)
        break;
    }
  };
  while (true) {
    if (closing_ && (queue_.empty() || Clock::now() >= flush_deadline_)) break;
    if (!conn_) {
      if (!connect(lock)) wait_to_retry();
      continue;
    }
    Connection& conn = *conn_;
    if (!replay_) {
      TotalsByKey totals;
      lock.unlock();
      bool ok = replay(conn, totals);
      lock.lock();
      if (!ok) {
        drop_connection();
        wait_to_retry();
        continue;
      }
      replay_ = totals;
      cv_.notify_all();
      if (replay_waited_out_) {
        std::weak_ptr<std::function<void(const TotalsByKey&)>> weak = on_late_replay_;
        post_to_main([weak, totals] {
          if (auto fn = weak.lock(); fn && *fn) (*fn)(totals);
        });
      }
    }
    if (!reports_.empty() && settled_ >= reports_.front().after) {
      ReportJob job = std::move(reports_.front());
      reports_.pop_front();
      lock.unlock();
      UsageReply reply;
      bool connected = run_report(conn, job.query, reply);
      post_to_main([done = std::move(job.done), reply = std::move(reply)]() mutable {
        done(std::move(reply));
      });
      lock.lock();
      reports_pending_--;
      if (!connected) {
        drop_connection();
        wait_to_retry();
      }
      continue;
    }
    if (queue_.empty()) {
      cv_.wait(lock, [&] { return !queue_.empty() || closing_ || !reports_.empty(); });
      continue;
    }
    std::size_t n = std::min(queue_.size(), options_.batch_records);
    std::vector<Pending> batch(queue_.begin(), queue_.begin() + static_cast<long>(n));
    lock.unlock();
    std::uint64_t inserted = 0;
    WriteResult result = insert(conn, batch, inserted);
    std::size_t done = 0;
    std::uint64_t refused = 0;
    if (result == WriteResult::kOk) {
      done = n;
    } else if (result == WriteResult::kBadData) {
      // Find the offending rows: the batch goes in again one row at a time.
      for (const auto& p : batch) {
        std::uint64_t one = 0;
        result = insert(conn, {p}, one);
        if (result == WriteResult::kOutage) break;
        if (result == WriteResult::kBadData) {
          refused++;
          g_warning("usage ledger: PostgreSQL refused the record of call %s (%s %s): dropped",
                    p.record.call_id.c_str(), p.record.response_id.c_str(),
                    p.record.item_id.c_str());
        }
        inserted += one;
        done++;
      }
    }
    lock.lock();
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(done));
    settled_ += done;
    written_ += inserted;
    rejected_ += refused;
    duplicates_ += done - inserted - refused;
    if (result == WriteResult::kOutage) {
      drop_connection();
      wait_to_retry();
      continue;
    }
    if (overflowing_ && queue_.size() < options_.buffer_records) {
      g_warning("usage ledger: %llu record(s) were dropped while the buffer was full",
                static_cast<unsigned long long>(dropped_in_episode_));
      overflowing_ = false;
      dropped_in_episode_ = 0;
    }
  }
  std::size_t left = queue_.size();
  if (left)
    g_warning(
        "usage ledger: %zu record(s) not written to PostgreSQL %s before shutdown (the JSONL "
        "usage log, if configured, has them)",
        left, masked_.c_str());
  fail_reports("the gateway is shutting down");
  conn_.reset();
  up_ = false;
  finished_ = true;
  cv_.notify_all();
}

}  // namespace rtgw::usage
