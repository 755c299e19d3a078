// SPDX-License-Identifier: MIT
// The durable usage ledger in PostgreSQL (`usage.postgres_url`).
//
// Owns: one writer thread and its libpq connection; a bounded queue of usage records
// (`usage.postgres_buffer_records`) between the main loop and that thread; the table
// `realtime_usage` (created if missing, see schema_sql()); the budget replay (per-key totals
// summed from the table on the first connection); GET /v1/usage's queries against the table
// (report(): queued beside the records, run by the writer on its connection, at most
// kMaxConcurrentScans pending).
// Other modules' tables ride on the same writer and connection: statement() runs their SQL in
// order between batches of records (the transcripts table, transcripts/transcript_store.h).
//
// Every record is written once: the table has a unique index on
// (call_id, COALESCE(response_id, ''), COALESCE(item_id, '')) and each batch is one
// `INSERT ... ON CONFLICT DO NOTHING` (one statement, so one transaction): a batch retried after a
// lost connection, or a record offered twice, lands once. A response record has a NULL item_id
// and a transcription record a NULL response_id, as in the JSONL log.
//
// While the database is unreachable the records wait in the queue and the thread reconnects with
// backoff (0.5 s doubling to 5 s); records past the bound are dropped, counted (dropped()) and
// logged once per overflow episode with the count when it ends. A batch that the server rejects
// for its data (SQLSTATE class 22/23) is retried row by row and only the offending rows are
// dropped (rejected()), so one bad record cannot wedge the ledger.
//
// A database that hangs (stopped, wedged, a dead peer) is told from one that refuses by deadlines:
// the writer uses libpq's asynchronous API and waits for every answer with poll() until
// `Options::timeout` (the schema, once per connection, and the budget replay's scan, once, get at
// least 60 s); past it the connection is dropped (an outage: up() false, backoff, reconnect), and
// a batch that may have landed is sent again, which the unique indexes make harmless. Connections
// also ask for TCP keepalives, `tcp_user_timeout` and a server-side `statement_timeout` of the same
// length. While idle the writer probes the connection every `probe_interval` (`SELECT 1`), so up()
// also falls when nothing is being written. A report is answered `unavailable` on the main loop
// once `timeout` passes, whatever the writer is doing.
//
// The usage log's tail: records buffered here at a crash or a shutdown are in the JSONL log only.
// On its first connection, before the budget replay, the writer reads the log's lines from before
// this process (`log_path`, its first `log_bytes` bytes) and inserts them (ON CONFLICT DO
// NOTHING: each carries its record_id, unique in the table), so each lands exactly once. A
// watermark file beside the log (`<log>.ledger-mark`: the log's inode, an offset before which
// every line is known to be in the table, a digest of the masked URL of that table's database and
// the record id of the log's first line, written by the writer as records land) lets the next
// start-up begin there instead of at the first line. The
// budget replay then counts the table's rows plus the log's lines the table refused, i.e. every
// record once.
//
// Threads: the public methods are called on the main thread (offer, report, wait_for_replay,
// close; the late-replay and report callbacks run there too); the counters may be read from any
// thread. All database I/O happens on the writer thread, never under mu_; the main thread only
// takes mu_ for a push or a look, and never waits on the database: close() waits (bounded by its
// timeout) for the writer to give up.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/main_thread.h"
#include "usage/usage_ledger.h"
#include "usage/usage_report.h"

namespace rtgw::usage {

class PostgresLedger {
 public:
  struct Options {
    std::string conninfo;                // libpq connection string (URI or key=value)
    std::size_t buffer_records = 10000;  // the queue's bound
    std::string instance;                // written in the `instance` column
    std::size_t batch_records = 500;     // rows per INSERT
    // The deadline of a connection attempt, of a statement, and of a report.
    std::chrono::milliseconds timeout{5000};
    // The usage log, and its length before this process wrote to it: those lines are replayed
    // into the table at the first connection. Empty: none.
    std::string log_path;
    std::uint64_t log_bytes = 0;
    // How long the connection may sit idle before the writer checks it with `SELECT 1`.
    std::chrono::milliseconds probe_interval{5000};
    // Keys with a budget period (seconds, usage/budget_period.h): the budget replay counts only
    // their rows of the current period (the table keeps every row).
    std::map<std::string, std::int64_t> budget_periods;
  };

  // Starts the writer thread, which connects at once.
  explicit PostgresLedger(Options options);
  // close() with a zero wait if it was not called.
  ~PostgresLedger();
  PostgresLedger(const PostgresLedger&) = delete;
  PostgresLedger& operator=(const PostgresLedger&) = delete;

  // Queues `record` (stamped `unix_time`) for the writer. False when the queue is full or the
  // ledger is closed: the record is dropped and counted, and the first drop of an episode logged.
  // `log_end`: the usage log's length once the record's line is in (0: not in the log). A dropped
  // record stops the replay watermark before its line.
  bool offer(const UsageRecord& record, double unix_time, std::uint64_t log_end = 0);

  // Waits up to `timeout` for the first connection's budget replay (each key's billable tokens
  // and cost_usd summed over the table after the log's tail went in, plus the log lines the table
  // refused: every record made before this process, once). nullopt when the database did not answer
  // in time: the replay then still happens when it connects, and its totals go to `on_late_replay`
  // on the main loop (see set_on_late_replay).
  std::optional<TotalsByKey> wait_for_replay(std::chrono::milliseconds timeout);
  // Called on the main loop with a replay that arrived after wait_for_replay gave up.
  void set_on_late_replay(std::function<void(const TotalsByKey&)> fn);

  // GET /v1/usage from the table (every instance's turns): `query` is answered on the writer thread
  // with one parameterized SELECT ... GROUP BY key, model, after every record this process offered
  // before the call is written (a turn just metered is in its own report), and `done` runs on the
  // main loop. While the database is unreachable `done` gets `unavailable` at once, and when no
  // answer came within Options::timeout it gets `unavailable` then (a report still queued is
  // withdrawn). False (`done` is not called) when kMaxConcurrentScans reports are already
  // pending, or the ledger is closing.
  bool report(UsageQuery query, std::function<void(UsageReply)> done);

  // The SELECT that report() runs: $1 key (NULL: every key), $2 since, $3 until (unix seconds,
  // NULL: open).
  static const char* report_sql();

  // Other tables' statements on the writer's connection (the transcripts, transcripts/): run in
  // the order given, between batches of records. A write (`done` empty) waits in a queue bounded
  // like the records' (full: false, dropped) through an outage and is sent again after it; a
  // statement the server refuses for its data (SQLSTATE class 22/23) is dropped and logged. A
  // read (`done` set) is answered on the main loop with its rows, or `error` when the database
  // is down (at once), refuses it, or does not answer within Options::timeout; false (`done` is
  // not called) when kMaxConcurrentScans reads are pending or the ledger is closing.
  struct Rows {
    std::vector<std::vector<std::optional<std::string>>> rows;
    std::string error;  // non-empty: no rows
  };
  bool statement(std::string sql, std::vector<std::optional<std::string>> params,
                 std::function<void(Rows)> done = {});

  // Stops taking records and lets the writer flush what is queued for up to `timeout`; at that
  // deadline the writer abandons whatever it waits for (a statement, a connection attempt: the
  // connection is dropped, nothing is cancelled under a lock) and ends, and close() joins it.
  // Returns how many records were left unwritten (logged; the JSONL log has them, and the next
  // start-up replays them into the table). Safe to call twice.
  std::size_t close(std::chrono::milliseconds timeout);

  bool up() const { return up_.load(); }
  std::size_t buffered() const;
  std::uint64_t dropped() const { return dropped_.load(); }        // buffer full or closed
  std::uint64_t rejected() const { return rejected_.load(); }      // refused by the server's checks
  std::uint64_t written() const { return written_.load(); }        // rows inserted (not duplicates)
  std::uint64_t duplicates() const { return duplicates_.load(); }  // offered rows already there
  // The usage log's lines inserted into the table at start-up (missing there until then).
  std::uint64_t log_replayed() const { return log_replayed_.load(); }

  // CREATE TABLE IF NOT EXISTS realtime_usage ... and its unique index.
  static const char* schema_sql();
  // The columns a record is inserted into, after `time`, in insert order (the token columns come
  // from the field table, rtevents/usage_fields.h).
  static const std::vector<std::string>& column_names();

 private:
  struct Pending {
    UsageRecord record;
    double unix_time;
    std::uint64_t log_end = 0;  // see offer()
  };
  struct Connection;
  struct Outcome;
  struct ReportAnswer;
  struct ReportJob {
    UsageQuery query;
    std::uint64_t after;  // offered_ when it was asked: runs once settled_ reaches it
    std::uint64_t id;
    std::function<void(UsageReply)> done;  // posts to the main loop's ReportAnswer
  };
  enum class WriteResult { kOk, kOutage, kBadData };
  struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    std::function<void(Rows)> done;  // posts to the main loop; empty: a write
  };
  struct RowsAnswer;
  // Writer thread, lock not held: runs the front statement; false on an outage (it stays queued).
  bool run_statement(Connection& conn, const Statement& st);

  enum class Ready { kReady, kTimedOut };

  void run();
  bool connect(std::unique_lock<std::mutex>& lock);
  // Writer thread: waits until `sock` is ready for `events`, or `deadline` (or close()'s abort
  // time, whichever is first) passes.
  Ready wait_socket(int sock, short events, std::chrono::steady_clock::time_point deadline);
  // Writer thread: sends `sql` and waits for its results until `deadline`.
  Outcome exec(Connection& conn, const char* sql, const std::vector<const char*>& params,
               std::chrono::steady_clock::time_point deadline);
  Outcome exec(Connection& conn, const char* sql, const std::vector<const char*>& params);
  bool probe(Connection& conn);
  // Inserts the log's lines from before this process (from log_offset_ on); false on an outage.
  bool replay_log(Connection& conn);
  // The replay watermark (writer thread): `end` (a line end in the log) when every line before it
  // is in the table, saved at most once a second (`force`: now) beside the log. Called with mu_
  // held (released while the file is written).
  void advance_watermark(std::uint64_t end, bool force, std::unique_lock<std::mutex>& lock);
  void read_watermark();
  // The watermark's third field: which database (the URL, password masked) it is for.
  std::string database_tag() const;
  // The watermark's fourth field: the record id of the log's first line ("-": none), so a log
  // truncated in place and written again is not taken for the one the mark was made for.
  std::string log_head_id() const;
  bool replay(Connection& conn, TotalsByKey& out);
  // The WHERE clause that keeps only the current budget period of keys that have one ("" if none).
  std::string period_filter(Connection& conn) const;
  // Runs one report on `conn` (lock not held); false when the connection failed.
  bool run_report(Connection& conn, const UsageQuery& query, UsageReply& reply);
  // Answers every pending report `unavailable` (lock held).
  void fail_reports(const std::string& why);
  WriteResult insert(Connection& conn, const std::vector<Pending>& batch, std::uint64_t& inserted);
  std::chrono::steady_clock::time_point backoff();
  void note_outage(const std::string& why);
  void wake_writer();

  const Options options_;
  const std::string masked_;  // conninfo with its password masked, for logs
  // An eventfd: close() writes it to wake the writer from poll(). Created first, closed last.
  struct Fd {
    int fd = -1;
    ~Fd();
  } wake_;
  // close()'s deadline for the writer's waits (steady clock, ns); max until close().
  std::atomic<std::int64_t> abort_at_ns_;

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;  // writer: records, stop; main: replay done, writer finished
  std::deque<Pending> queue_;
  std::uint64_t offered_ = 0;  // records ever queued
  std::uint64_t settled_ = 0;  // records ever taken off the queue (written, duplicate or refused)
  std::deque<ReportJob> reports_;
  std::deque<Statement> statements_;  // statement(): writes and reads, in order
  int statement_reads_ = 0;           // reads queued or running
  int reports_pending_ = 0;           // queued or running
  std::uint64_t report_ids_ = 0;
  bool closing_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point flush_deadline_;
  std::optional<TotalsByKey> replay_;  // set once, by the writer
  // The watermark may not pass this offset: a record dropped or refused has its line just after.
  std::uint64_t watermark_limit_ = UINT64_MAX;
  bool replay_waited_out_ = false;  // the main thread stopped waiting: post a late replay
  bool overflowing_ = false;        // an overflow episode is on (logged once)
  std::uint64_t dropped_in_episode_ = 0;
  std::string outage_reason_;         // the last outage's cause, for reports
  std::unique_ptr<Connection> conn_;  // created and used by the writer
  // The late-replay callback: the posted closure holds a weak pointer (main thread only).
  std::shared_ptr<std::function<void(const TotalsByKey&)>> on_late_replay_;

  // Writer thread only.
  bool outage_logged_ = false;
  int backoff_ms_ = 0;
  bool log_done_ = false;         // the log's tail is in the table
  std::uint64_t log_offset_ = 0;  // how far the log's replay got (a batch boundary)
  TotalsByKey log_only_;          // the log's lines the table refused: counted from the log alone
  bool mark_read_ = false;
  std::uint64_t log_inode_ = 0;  // the log's, when the watermark was read
  std::string log_head_ = "-";   // log_head_id() when the watermark was read (or first saved)
  std::uint64_t watermark_ = 0;  // every log line before it is in the table
  std::uint64_t watermark_saved_ = 0;
  std::chrono::steady_clock::time_point watermark_saved_at_;
  std::chrono::steady_clock::time_point last_io_;  // the last answer on the connection

  // Main thread: reports' deadline timers check it before touching the ledger.
  Lifetime lifetime_;

  std::atomic<bool> up_{false};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::uint64_t> log_replayed_{0};

  std::thread thread_;  // last: started once every member above exists
};

}  // namespace rtgw::usage
