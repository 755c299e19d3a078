// SPDX-License-Identifier: MIT
#include "usage/postgres_ledger.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>

#include "common/main_thread.h"
#include "usage/budget_period.h"
#include "usage/postgres_url.h"
#include "usage/pq.h"
#include "usage/saturating.h"

namespace rtgw::usage {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kFirstBackoffMs = 500;
constexpr int kMaxBackoffMs = 5000;
// The schema statements (once per connection) may build an index over an existing table, and the
// budget replay (once) scans the whole table: they get at least this long, client and server side.
constexpr auto kLongTimeout = std::chrono::seconds(60);
// TCP keepalives (seconds): a peer that vanished is noticed on an idle connection too.
constexpr PgConnectParams::Keepalives kKeepalives{10, 5, 3, std::chrono::milliseconds(1)};

// The table, in two parts around the token columns, which come from the field table
// (rtevents/usage_fields.h): `<name> bigint NOT NULL`, or `<name> bigint` (NULL) for a count
// that exists only when the upstream sent input_token_details.cached_tokens_details.
constexpr const char* kSchemaHead = R"SQL(
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
)SQL";
constexpr const char* kSchemaTail = R"SQL(  service_tier text,
  first_token_latency_ms double precision,
  turn_duration_ms double precision NOT NULL,
  transcription_seconds double precision NOT NULL,
  cost_usd double precision
);
CREATE UNIQUE INDEX IF NOT EXISTS realtime_usage_turn
  ON realtime_usage (call_id, (COALESCE(response_id, '')), (COALESCE(item_id, '')));
CREATE INDEX IF NOT EXISTS realtime_usage_key_time ON realtime_usage (key, time);
ALTER TABLE realtime_usage ADD COLUMN IF NOT EXISTS record_id text;
CREATE UNIQUE INDEX IF NOT EXISTS realtime_usage_record ON realtime_usage (record_id);
)SQL";

const std::string& schema() {
  static const std::string text = [] {
    std::string sql = kSchemaHead;
    for (const auto& f : rtevents::kTokenFields)
      sql +=
          std::string("  ") + f.name + (f.only_with_details ? " bigint,\n" : " bigint NOT NULL,\n");
    return sql + kSchemaTail;
  }();
  return text;
}

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

// The columns after `time` (written as to_timestamp($n::float8)), in insert order: these, each
// token column of the field table, then kColumnsAfterTokens.
constexpr const char* kColumnsBeforeTokens[] = {"instance", "kind",   "call_id",      "transport",
                                                "key",      "model",  "worker",       "response_id",
                                                "item_id",  "status", "usage_present"};
constexpr const char* kColumnsAfterTokens[] = {"service_tier",     "first_token_latency_ms",
                                               "turn_duration_ms", "transcription_seconds",
                                               "cost_usd",         "record_id"};

const std::vector<std::string>& columns() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> out(std::begin(kColumnsBeforeTokens), std::end(kColumnsBeforeTokens));
    for (const auto& f : rtevents::kTokenFields) out.emplace_back(f.name);
    out.insert(out.end(), std::begin(kColumnsAfterTokens), std::end(kColumnsAfterTokens));
    return out;
  }();
  return all;
}
constexpr std::size_t kParamsPerRow = 1 + std::size(kColumnsBeforeTokens) +
                                      rtevents::kTokenFieldCount + std::size(kColumnsAfterTokens);

using Result = PgResult;

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

// A record's parameters, NULL as nullopt (in columns() order, after the time).
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
  // The token columns, in the field table's order; a cached-details count is NULL unless the
  // upstream sent those details.
  for (const auto& f : rtevents::kTokenFields) {
    if (f.only_with_details && !r.cached_details_present)
      out.emplace_back(std::nullopt);
    else
      integer(rtevents::count_of(r, f));
  }
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
  text_or_null(r.record_id);  // none in a log line from before record ids: the turn index holds
}

std::string insert_sql(std::size_t rows) {
  std::string sql = "INSERT INTO realtime_usage (time";
  for (const auto& c : columns()) sql += ", " + c;
  sql += ") VALUES ";
  int n = 1;
  for (std::size_t row = 0; row < rows; row++) {
    sql += row ? ", (" : "(";
    sql += "to_timestamp($" + std::to_string(n++) + "::float8)";
    for (std::size_t c = 0; c < columns().size(); c++) sql += ", $" + std::to_string(n++);
    sql += ")";
  }
  sql += " ON CONFLICT DO NOTHING";
  return sql;
}

std::int64_t to_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_ns(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

long long millis(std::chrono::milliseconds d) { return static_cast<long long>(d.count()); }

void add_totals(TotalsByKey& to, const UsageRecord& r) {
  KeyTotals& t = to[r.key_name];
  add_to(t.tokens, r.billable_tokens());
  if (r.cost_usd) add_to(t.cost_usd, *r.cost_usd);
}

// Is a record of `key_name` at `unix_time` in its key's current budget period (always, for a key
// without one)?
bool in_current_period(const std::map<std::string, std::int64_t>& periods,
                       const std::string& key_name, double unix_time) {
  auto it = periods.find(key_name);
  return it == periods.end() ||
         period_start(unix_time, it->second) == period_start(unix_now(), it->second);
}

}  // namespace

struct PostgresLedger::Connection {
  PgConn conn;
};

// What a statement came to: its last result, or why there is none (the connection failed or the
// deadline passed: the connection is then unusable).
struct PostgresLedger::Outcome {
  Result result;
  std::string lost;  // non-empty: the connection is lost

  ExecStatusType status() const {
    return result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  }
  std::string error() const {
    return !lost.empty() ? lost : one_line(PQresultErrorMessage(result.get()));
  }
};

// One report's answer on the main loop: whichever comes first of the writer's reply and the
// deadline answers; the other finds `done` empty.
struct PostgresLedger::ReportAnswer {
  std::function<void(UsageReply)> done;
  SourceGuard deadline;

  void give(UsageReply reply) {
    if (!done) return;
    auto fn = std::move(done);
    done = nullptr;
    deadline.cancel();
    fn(std::move(reply));
  }
};

PostgresLedger::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

const char* PostgresLedger::schema_sql() { return schema().c_str(); }

const std::vector<std::string>& PostgresLedger::column_names() { return columns(); }
const char* PostgresLedger::report_sql() { return kReportSql; }

PostgresLedger::PostgresLedger(Options options)
    : options_(std::move(options)),
      masked_(mask_conninfo(options_.conninfo)),
      abort_at_ns_(std::numeric_limits<std::int64_t>::max()),
      on_late_replay_(std::make_shared<std::function<void(const TotalsByKey&)>>()) {
  wake_.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_.fd < 0)
    g_warning("usage ledger: eventfd failed (%s): close() waits for the writer's deadlines",
              g_strerror(errno));
  thread_ = std::thread([this] { run(); });
}

PostgresLedger::~PostgresLedger() { close(std::chrono::milliseconds(0)); }

bool PostgresLedger::offer(const UsageRecord& record, double unix_time, std::uint64_t log_end) {
  std::lock_guard lock(mu_);
  if (!closing_ && queue_.size() < options_.buffer_records) {
    queue_.push_back({record, unix_time, log_end});
    offered_++;
    cv_.notify_all();
    return true;
  }
  // Its line is in the log but will not be in the table: the next start-up replays from before it.
  if (log_end) watermark_limit_ = std::min(watermark_limit_, log_end - 1);
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
  auto answer = std::make_shared<ReportAnswer>();
  answer->done = std::move(done);
  std::uint64_t id;
  {
    std::lock_guard lock(mu_);
    if (closing_ || reports_pending_ >= kMaxConcurrentScans) return false;
    reports_pending_++;
    id = ++report_ids_;
    reports_.push_back({std::move(query), offered_, id,
                        [answer](UsageReply reply) { answer->give(std::move(reply)); }});
    if (!conn_)
      // Down (or not yet connected): say so now rather than after the reconnection.
      fail_reports(outage_reason_.empty() ? "not connected yet" : outage_reason_);
    else
      cv_.notify_all();
  }
  // The deadline, on the main loop: a report still queued is withdrawn (its slot freed); one the
  // writer runs ends with the writer's own deadline.
  std::weak_ptr<ReportAnswer> weak = answer;
  auto ms = options_.timeout;
  answer->deadline = run_after_ms(
      static_cast<guint>(std::max<long long>(millis(ms), 1)),
      [this, id, weak, ms, alive = lifetime_.watch()] {
        auto a = weak.lock();
        if (!a) return;
        a->deadline.forget();
        if (alive) {
          std::lock_guard lock(mu_);
          auto it = std::find_if(reports_.begin(), reports_.end(),
                                 [&](const ReportJob& j) { return j.id == id; });
          if (it != reports_.end()) {
            reports_.erase(it);
            reports_pending_--;
          }
        }
        a->give({{}, "PostgreSQL did not answer within " + std::to_string(millis(ms)) + " ms"});
      });
  return true;
}

// statement()'s read: whichever of the writer's rows and the deadline comes first answers.
struct PostgresLedger::RowsAnswer {
  std::function<void(Rows)> done;
  SourceGuard deadline;

  void give(Rows rows) {
    if (!done) return;
    auto fn = std::move(done);
    done = nullptr;
    deadline.cancel();
    fn(std::move(rows));
  }
};

bool PostgresLedger::statement(std::string sql, std::vector<std::optional<std::string>> params,
                               std::function<void(Rows)> done) {
  if (!done) {
    std::lock_guard lock(mu_);
    if (closing_ || statements_.size() >= options_.buffer_records) return false;
    statements_.push_back({std::move(sql), std::move(params), {}});
    cv_.notify_all();
    return true;
  }
  auto answer = std::make_shared<RowsAnswer>();
  answer->done = std::move(done);
  {
    std::lock_guard lock(mu_);
    if (closing_ || statement_reads_ >= kMaxConcurrentScans) return false;
    if (!conn_) {
      std::string why =
          "PostgreSQL: " + (outage_reason_.empty() ? "not connected yet" : outage_reason_);
      post_to_main([answer, why] { answer->give({{}, why}); });
      return true;
    }
    statement_reads_++;
    statements_.push_back({std::move(sql), std::move(params),
                           [answer](Rows rows) { answer->give(std::move(rows)); }});
    cv_.notify_all();
  }
  std::weak_ptr<RowsAnswer> weak = answer;
  auto ms = options_.timeout;
  answer->deadline =
      run_after_ms(static_cast<guint>(std::max<long long>(millis(ms), 1)), [weak, ms] {
        auto a = weak.lock();
        if (!a) return;
        a->deadline.forget();
        a->give({{}, "PostgreSQL did not answer within " + std::to_string(millis(ms)) + " ms"});
      });
  return true;
}

bool PostgresLedger::run_statement(Connection& conn, const Statement& st) {
  std::vector<const char*> values;
  values.reserve(st.params.size());
  for (const auto& p : st.params) values.push_back(p ? p->c_str() : nullptr);
  Outcome r = exec(conn, st.sql.c_str(), values);
  ExecStatusType status = r.status();
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    if (st.done) {
      Rows rows;
      PGresult* res = r.result.get();
      for (int i = 0; i < PQntuples(res); i++) {
        std::vector<std::optional<std::string>> row;
        for (int c = 0; c < PQnfields(res); c++)
          row.push_back(PQgetisnull(res, i, c) ? std::nullopt
                                               : std::optional<std::string>(PQgetvalue(res, i, c)));
        rows.rows.push_back(std::move(row));
      }
      post_to_main([done = st.done, rows = std::move(rows)]() mutable { done(std::move(rows)); });
    }
    return true;
  }
  std::string why = r.error();
  if (!r.lost.empty()) {
    std::lock_guard lock(mu_);
    note_outage("writing: " + why);
    return false;
  }
  // Refused (bad data, a missing table, a syntax error): answered or dropped, never retried.
  g_warning("usage ledger: PostgreSQL refused a statement (%s)", why.c_str());
  if (st.done) post_to_main([done = st.done, why] { done({{}, "PostgreSQL: " + why}); });
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

PostgresLedger::Ready PostgresLedger::wait_socket(int sock, short events,
                                                  Clock::time_point deadline) {
  while (true) {
    Clock::time_point until = std::min(deadline, from_ns(abort_at_ns_.load()));
    auto now = Clock::now();
    if (now >= until) return Ready::kTimedOut;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
    pollfd fds[2] = {{sock, events, 0}, {wake_.fd, POLLIN, 0}};
    int n =
        poll(fds, wake_.fd >= 0 ? 2 : 1, static_cast<int>(std::min<long long>(left, 60 * 1000)));
    if (n < 0 && errno != EINTR) return Ready::kReady;  // let libpq report the socket's error
    if (n > 0 && wake_.fd >= 0 && (fds[1].revents & POLLIN)) {
      eventfd_t drained;
      eventfd_read(wake_.fd, &drained);  // close() moved abort_at_ns_: look again
    }
    if (n > 0 && fds[0].revents) return Ready::kReady;
  }
}

PostgresLedger::Outcome PostgresLedger::exec(Connection& conn, const char* sql,
                                             const std::vector<const char*>& params) {
  return exec(conn, sql, params, Clock::now() + options_.timeout);
}

PostgresLedger::Outcome PostgresLedger::exec(Connection& conn, const char* sql,
                                             const std::vector<const char*>& params,
                                             Clock::time_point deadline) {
  PGconn* c = conn.conn.get();
  Outcome out;
  const auto began = Clock::now();
  int sent = params.empty() ? PQsendQuery(c, sql)
                            : PQsendQueryParams(c, sql, static_cast<int>(params.size()), nullptr,
                                                params.data(), nullptr, nullptr, 0);
  auto timed_out = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - began);
    out.lost = Clock::now() >= from_ns(abort_at_ns_.load())
                   ? "abandoned at shutdown's deadline"
                   : "no answer within " + std::to_string(millis(ms)) + " ms";
    out.result.reset();
    return std::move(out);
  };
  if (!sent) {
    out.lost = one_line(PQerrorMessage(c));
    return out;
  }
  // Send everything (non-blocking: the query may not fit the socket's buffer at once).
  while (true) {
    int f = PQflush(c);
    if (f == 0) break;
    if (f < 0) {
      out.lost = one_line(PQerrorMessage(c));
      return out;
    }
    if (wait_socket(PQsocket(c), POLLIN | POLLOUT, deadline) == Ready::kTimedOut)
      return timed_out();
    if (!PQconsumeInput(c)) {
      out.lost = one_line(PQerrorMessage(c));
      return out;
    }
  }
  // Read every result.
  while (true) {
    while (PQisBusy(c)) {
      if (wait_socket(PQsocket(c), POLLIN, deadline) == Ready::kTimedOut) return timed_out();
      if (!PQconsumeInput(c)) {
        out.lost = one_line(PQerrorMessage(c));
        return out;
      }
    }
    Result r(PQgetResult(c));
    if (!r) break;
    // Several statements (the schema, a scan between two SETs): the first error, else the last
    // result with rows, else the last result.
    auto failed = [](ExecStatusType st) { return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK; };
    ExecStatusType st = PQresultStatus(r.get());
    if (out.result && failed(out.status())) continue;
    if (!out.result || failed(st) || st == PGRES_TUPLES_OK || out.status() != PGRES_TUPLES_OK)
      out.result = std::move(r);
  }
  if (!out.result || PQstatus(c) != CONNECTION_OK)
    out.lost =
        out.result ? one_line(PQresultErrorMessage(out.result.get())) : one_line(PQerrorMessage(c));
  if (out.lost.empty()) last_io_ = Clock::now();
  return out;
}

bool PostgresLedger::run_report(Connection& conn, const UsageQuery& query, UsageReply& reply) {
  std::optional<std::string> params[3];
  if (query.key) params[0] = *query.key;
  if (query.since) params[1] = number(*query.since);
  if (query.until) params[2] = number(*query.until);
  std::vector<const char*> values;
  for (auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  Outcome r = exec(conn, kReportSql, values);
  if (r.status() != PGRES_TUPLES_OK) {
    std::string why = r.error();
    reply.unavailable = "the usage report failed: " + why;
    if (!r.lost.empty()) {
      std::lock_guard lock(mu_);
      note_outage("reporting: " + why);
      return false;
    }
    g_warning("usage ledger: the usage report failed: %s", why.c_str());
    return true;
  }
  PGresult* res = r.result.get();
  auto integer = [&](int row, int col) {
    return static_cast<std::int64_t>(std::strtoll(PQgetvalue(res, row, col), nullptr, 10));
  };
  auto real = [&](int row, int col) { return std::strtod(PQgetvalue(res, row, col), nullptr); };
  for (int i = 0; i < PQntuples(res); i++) {
    UsageGroup g;
    g.key = PQgetvalue(res, i, 0);
    g.model = PQgetvalue(res, i, 1);
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

void PostgresLedger::wake_writer() {
  if (wake_.fd >= 0) eventfd_write(wake_.fd, 1);
}

std::size_t PostgresLedger::close(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return buffered();
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    flush_deadline_ = Clock::now() + timeout;
    abort_at_ns_ = to_ns(flush_deadline_);
    cv_.notify_all();
  }
  wake_writer();
  // Bounded: every wait of the writer ends by flush_deadline_ (a host name's lookup aside).
  thread_.join();
  // The late-replay closure, if still queued, finds nothing to call.
  on_late_replay_.reset();
  lifetime_.end();
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
  lock.unlock();
  // Ours first: a parameter in the connection string (expanded from dbname) overrides them.
  PgConnectParams params(options_.conninfo, "realtime-gateway", options_.timeout, kKeepalives);
  auto conn = std::make_unique<Connection>();
  std::string error;
  auto deadline = Clock::now() + options_.timeout;
  conn->conn.reset(
      PQconnectStartParams(params.keywords(), params.values(), PgConnectParams::kExpandDbname));
  PGconn* c = conn->conn.get();
  if (!c) {
    error = "out of memory";
  } else if (PQstatus(c) == CONNECTION_BAD) {
    error = one_line(PQerrorMessage(c));
  } else {
    // The server's NOTICEs ("relation ... already exists, skipping") go to the debug log, not
    // to stderr as libpq's default would.
    PQsetNoticeProcessor(
        c,
        [](void*, const char* message) {
          g_debug("usage ledger: PostgreSQL says: %s", one_line(message).c_str());
        },
        nullptr);
    // The connection's steps, each waited for with poll() until the deadline.
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
      if (st == PGRES_POLLING_FAILED) {
        error = one_line(PQerrorMessage(c));
        break;
      }
      if (wait_socket(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline) ==
          Ready::kTimedOut) {
        error = "no answer to the connection within " + params.connect_timeout_s() + " s";
        break;
      }
      st = PQconnectPoll(c);
    }
  }
  if (error.empty() && PQsetnonblocking(c, 1) != 0) error = one_line(PQerrorMessage(c));
  if (error.empty()) {
    Outcome r = exec(*conn, schema().c_str(), {},
                     Clock::now() + std::max<Clock::duration>(kLongTimeout, options_.timeout));
    if (r.status() != PGRES_COMMAND_OK) error = "creating the table realtime_usage: " + r.error();
  }
  if (error.empty()) {
    // The server's own bound on a statement (one that runs, e.g. waiting on a lock, rather than
    // a server that hangs: the client-side deadline covers that).
    std::string set = "SET statement_timeout = " + params.tcp_user_timeout_ms();
    Outcome r = exec(*conn, set.c_str(), {});
    if (r.status() != PGRES_COMMAND_OK) error = "setting statement_timeout: " + r.error();
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

bool PostgresLedger::probe(Connection& conn) {
  Outcome r = exec(conn, "SELECT 1", {});
  if (r.status() == PGRES_TUPLES_OK) return true;
  std::lock_guard lock(mu_);
  note_outage("checking the connection: " + r.error());
  return false;
}

bool PostgresLedger::replay_log(Connection& conn) {
  if (!options_.log_path.empty() && !mark_read_) {
    read_watermark();
    mark_read_ = true;
  }
  if (options_.log_path.empty() || options_.log_bytes == 0) {
    log_done_ = true;
    return true;
  }
  std::ifstream in(options_.log_path, std::ios::binary);
  if (!in) {
    g_warning(
        "usage ledger: cannot read the usage log %s to replay it into PostgreSQL: its records "
        "missing from the table stay missing",
        options_.log_path.c_str());
    log_done_ = true;
    return true;
  }
  in.seekg(static_cast<std::streamoff>(log_offset_));
  std::uint64_t offset = log_offset_;
  const std::uint64_t first_offset = offset;
  std::uint64_t batch_end = offset;  // where the batch being gathered starts
  std::vector<Pending> batch;
  std::uint64_t lines = 0;
  // One batch: inserted, or row by row when the server refuses its data; the refused rows count
  // from the log alone. False on an outage (the batch is sent again after the reconnection).
  auto flush = [&]() -> bool {
    if (batch.empty()) return true;
    std::uint64_t inserted = 0;
    TotalsByKey refused;
    std::uint64_t refused_rows = 0;
    WriteResult result = insert(conn, batch, inserted);
    if (result == WriteResult::kOutage) return false;
    if (result == WriteResult::kBadData) {
      for (const auto& p : batch) {
        std::uint64_t one = 0;
        result = insert(conn, {p}, one);
        if (result == WriteResult::kOutage) return false;
        if (result == WriteResult::kBadData) {
          if (in_current_period(options_.budget_periods, p.record.key_name, p.unix_time))
            add_totals(refused, p.record);
          refused_rows++;
        }
        inserted += one;
      }
    }
    for (const auto& [key, t] : refused) {
      add_to(log_only_[key].tokens, t.tokens);
      add_to(log_only_[key].cost_usd, t.cost_usd);
    }
    if (refused_rows) {
      // Refused lines are counted from the log at every start-up: the watermark stays before them.
      std::lock_guard lock(mu_);
      watermark_limit_ = std::min(watermark_limit_, batch_end);
    }
    lines += batch.size();
    written_ += inserted;
    log_replayed_ += inserted;
    rejected_ += refused_rows;
    if (refused_rows)
      g_warning(
          "usage ledger: PostgreSQL refused %llu record(s) of the usage log: budgets count them "
          "from the log",
          static_cast<unsigned long long>(refused_rows));
    batch.clear();
    return true;
  };
  std::string line;
  while (offset < options_.log_bytes && std::getline(in, line)) {
    offset += line.size() + (in.eof() ? 0 : 1);
    if (auto logged = parse_usage_line(line))
      batch.push_back({std::move(logged->record), logged->unix_time});
    if (batch.size() >= options_.batch_records) {
      if (!flush()) return false;
      log_offset_ = batch_end = offset;
      std::unique_lock lock(mu_);
      advance_watermark(offset, false, lock);
    }
  }
  if (!flush()) return false;
  log_offset_ = batch_end = offset;
  log_done_ = true;
  {
    std::unique_lock lock(mu_);
    advance_watermark(offset, true, lock);
  }
  g_message(
      "usage ledger: the usage log's %llu record(s) from before start-up (from byte %llu) "
      "replayed into PostgreSQL: %llu were missing there and written",
      static_cast<unsigned long long>(lines), static_cast<unsigned long long>(first_offset),
      static_cast<unsigned long long>(log_replayed_.load()));
  return true;
}

namespace {
std::string watermark_path(const std::string& log_path) { return log_path + ".ledger-mark"; }
// The longest first-line record id the mark keeps (ours are 35 characters), with its NUL.
constexpr std::size_t kMaxHeadId = 64;
}  // namespace

std::string PostgresLedger::database_tag() const {
  // Which database the mark speaks for: lines "in the table" of another database (the URL
  // changed) are not in this one. A digest of the masked URL, so the file holds no password.
  UniqueStr digest(g_compute_checksum_for_string(G_CHECKSUM_SHA256, masked_.c_str(), -1));
  return std::string(digest.get()).substr(0, 16);
}

std::string PostgresLedger::log_head_id() const {
  std::ifstream in(options_.log_path, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) return "-";
  auto logged = parse_usage_line(line);
  return logged && !logged->record.record_id.empty() &&
                 logged->record.record_id.size() < kMaxHeadId &&
                 logged->record.record_id.find_first_of(" \t\n") == std::string::npos
             ? logged->record.record_id
             : "-";
}

void PostgresLedger::read_watermark() {
  GStatBuf st;
  if (g_stat(options_.log_path.c_str(), &st) != 0) return;
  log_inode_ = static_cast<std::uint64_t>(st.st_ino);
  log_head_ = log_head_id();
  gchar* raw = nullptr;
  if (!g_file_get_contents(watermark_path(options_.log_path).c_str(), &raw, nullptr, nullptr))
    return;
  UniqueStr text(raw);
  unsigned long long inode = 0, offset = 0;
  char tag[17] = "";
  char head[kMaxHeadId] = "";
  // Another file under the log's name (rotated, replaced), or a shorter one, or one that starts
  // with another record (truncated in place, e.g. logrotate's copytruncate, and written again:
  // same inode, and maybe as long), or a mark written for another database (or in an older
  // format): from the start.
  if (std::sscanf(text.get(), "%llu %llu %16s %63s", &inode, &offset, tag, head) != 4 ||
      inode != log_inode_ || offset > options_.log_bytes || database_tag() != tag ||
      log_head_ != head)
    return;
  log_offset_ = watermark_ = watermark_saved_ = offset;
}

void PostgresLedger::advance_watermark(std::uint64_t end, bool force,
                                       std::unique_lock<std::mutex>& lock) {
  if (options_.log_path.empty() || log_inode_ == 0) return;
  // Past a dropped or refused line it stays where it was, for the rest of this process.
  if (end > watermark_ && end <= watermark_limit_) watermark_ = end;
  if (watermark_ == watermark_saved_) return;
  auto now = Clock::now();
  if (!force && now - watermark_saved_at_ < std::chrono::seconds(1)) return;
  std::uint64_t mark = watermark_;
  watermark_saved_ = mark;
  watermark_saved_at_ = now;
  lock.unlock();
  // A log empty at start-up has its first line by now.
  if (log_head_ == "-") log_head_ = log_head_id();
  std::string text = std::to_string(log_inode_) + " " + std::to_string(mark) + " " +
                     database_tag() + " " + log_head_ + "\n";
  UniqueError error;
  if (!g_file_set_contents_full(watermark_path(options_.log_path).c_str(), text.c_str(),
                                static_cast<gssize>(text.size()), G_FILE_SET_CONTENTS_CONSISTENT,
                                0644, ErrorOut(error)))
    g_warning(
        "usage ledger: cannot save the replay watermark (%s): the next start-up reads the whole "
        "usage log",
        error->message);
  lock.lock();
}

std::string PostgresLedger::period_filter(Connection& conn) const {
  // A key with a budget period counts its rows from its current period's start (periods aligned
  // on the unix epoch, as every instance computes them); other keys every row.
  if (options_.budget_periods.empty()) return "";
  const double now = unix_now();
  std::string out = " WHERE time >= CASE key";
  for (const auto& [key, seconds] : options_.budget_periods) {
    std::unique_ptr<char, void (*)(void*)> literal(
        PQescapeLiteral(conn.conn.get(), key.c_str(), key.size()), PQfreemem);
    if (!literal) continue;
    out += std::string(" WHEN ") + literal.get() + " THEN to_timestamp(" +
           std::to_string(period_start(now, seconds)) + ")";
  }
  return out + " ELSE '-infinity'::timestamptz END";
}

bool PostgresLedger::replay(Connection& conn, TotalsByKey& out) {
  // A scan of the whole table, once: the long deadline, and the server's statement_timeout
  // raised to match around it.
  auto long_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::max<Clock::duration>(kLongTimeout, options_.timeout));
  std::string sql = "SET statement_timeout = " + std::to_string(millis(long_ms)) +
                    "; SELECT key, SUM(CASE WHEN total_tokens > 0 THEN total_tokens "
                    "ELSE input_tokens + output_tokens END)::text, "
                    "COALESCE(SUM(cost_usd), 0)::text, COUNT(*)::text "
                    "FROM realtime_usage" +
                    period_filter(conn) + " GROUP BY key; SET statement_timeout = " +
                    std::to_string(std::max<long long>(1, millis(options_.timeout)));
  Outcome r = exec(conn, sql.c_str(), {}, Clock::now() + long_ms);
  if (r.status() != PGRES_TUPLES_OK) {
    std::lock_guard lock(mu_);
    note_outage("replaying budgets: " + r.error());
    return false;
  }
  PGresult* res = r.result.get();
  long long records = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    KeyTotals& t = out[PQgetvalue(res, i, 0)];
    t.tokens = std::strtoll(PQgetvalue(res, i, 1), nullptr, 10);
    t.cost_usd = std::strtod(PQgetvalue(res, i, 2), nullptr);
    records += std::strtoll(PQgetvalue(res, i, 3), nullptr, 10);
  }
  // The log's lines the table refused are in no row: each counts once, from the log.
  for (const auto& [key, t] : log_only_) {
    add_to(out[key].tokens, t.tokens);
    add_to(out[key].cost_usd, t.cost_usd);
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
  Outcome r = exec(conn, sql.c_str(), values);
  if (r.status() == PGRES_COMMAND_OK) {
    inserted = std::strtoull(PQcmdTuples(r.result.get()), nullptr, 10);
    return WriteResult::kOk;
  }
  std::string why = r.error();
  const char* state = r.result ? PQresultErrorField(r.result.get(), PG_DIAG_SQLSTATE) : nullptr;
  bool bad_data =
      r.lost.empty() && state && (std::string(state, 2) == "22" || std::string(state, 2) == "23");
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
    if (closing_ && ((queue_.empty() && statements_.empty()) || Clock::now() >= flush_deadline_))
      break;
    if (!conn_) {
      if (!connect(lock)) wait_to_retry();
      continue;
    }
    Connection& conn = *conn_;
    if (!log_done_) {
      lock.unlock();
      bool ok = replay_log(conn);
      lock.lock();
      if (!ok) {
        drop_connection();
        wait_to_retry();
      }
      continue;
    }
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
    if (!statements_.empty()) {
      Statement st = statements_.front();
      lock.unlock();
      bool connected = run_statement(conn, st);
      lock.lock();
      if (!connected) {
        drop_connection();
        wait_to_retry();
        continue;
      }
      statements_.pop_front();
      if (st.done) statement_reads_--;
      continue;
    }
    if (queue_.empty()) {
      // Idle: a database that stopped answering is noticed by the probe, not by the next write.
      auto wake = [&] {
        return !queue_.empty() || closing_ || !reports_.empty() || !statements_.empty();
      };
      if (!cv_.wait_until(lock, last_io_ + options_.probe_interval, wake)) {
        lock.unlock();
        bool ok = probe(conn);
        lock.lock();
        if (!ok) {
          drop_connection();
          wait_to_retry();
        }
      }
      continue;
    }
    std::size_t n = std::min(queue_.size(), options_.batch_records);
    std::vector<Pending> batch(queue_.begin(), queue_.begin() + static_cast<long>(n));
    lock.unlock();
    std::uint64_t inserted = 0;
    WriteResult result = insert(conn, batch, inserted);
    std::size_t done = 0;
    std::uint64_t refused = 0;
    std::uint64_t refused_floor = UINT64_MAX;  // the watermark stays before a refused line
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
          if (p.log_end) refused_floor = std::min(refused_floor, p.log_end - 1);
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
    watermark_limit_ = std::min(watermark_limit_, refused_floor);
    std::uint64_t settled_end = 0;
    for (std::size_t i = 0; i < done; i++) settled_end = std::max(settled_end, batch[i].log_end);
    if (log_done_ && settled_end) advance_watermark(settled_end, false, lock);
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
  if (log_done_) advance_watermark(watermark_, true, lock);
  std::size_t left = queue_.size();
  if (left)
    g_warning(
        "usage ledger: %zu record(s) not written to PostgreSQL %s before shutdown (the JSONL "
        "usage log, if configured, has them: the next start-up replays them into the table)",
        left, masked_.c_str());
  fail_reports("the gateway is shutting down");
  conn_.reset();
  up_ = false;
  finished_ = true;
  cv_.notify_all();
}

}  // namespace rtgw::usage
