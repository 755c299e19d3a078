// SPDX-License-Identifier: MIT
// The virtual key table in PostgreSQL (`auth.key_store: "postgres"`).
//
// Owns: one thread and its libpq connection; the tables `rtgw_virtual_keys` (one row per key:
// the SHA-256 of the secret, never the secret; soft-deleted with deleted_at so an incremental
// read sees deletions; `seq` from a sequence, renewed by every write) and `rtgw_key_audit` (one
// row per change: actor, action, alias, time, before and after as the key's public JSON: no
// secret, no hash), both created if missing (schema_sql()); the statements that read rows after
// a sequence number and that write a key and its audit row in one transaction.
//
// Writers take a table lock (SHARE ROW EXCLUSIVE, which writers conflict on and readers do not)
// before they draw a sequence number, so sequence order is commit order: a reader that saw seq N
// has seen every row below it, and "rows after N" misses nothing.
//
// The thread blocks in libpq, never the main loop. Every wait is bounded: connect_timeout,
// tcp_user_timeout and a server-side statement_timeout of `timeout`. A failed statement drops the
// connection; the next job reconnects. Results go to the main loop (post_if_alive); a job that
// found the database down answers `unavailable`.
//
// Threads: public methods on the main thread (load_blocking also before the loop runs);
// callbacks on the main loop; database I/O on the store's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/main_thread.h"
#include "keys/admin_request.h"
#include "keys/virtual_key.h"

namespace rtgw::keys {

// A key named by the hash of its secret or by its alias.
struct RowRef {
  std::optional<std::string> hash;
  std::optional<std::string> alias;
};

struct StoreResult {
  enum Status { kOk, kNotFound, kAliasTaken, kUnavailable };
  Status status = kOk;
  std::string detail;            // why (kNotFound: which; kUnavailable: the error)
  std::vector<VirtualKey> rows;  // the rows written (kOk) or read
};

class KeyStore {
 public:
  struct Options {
    std::string conninfo;
    std::chrono::milliseconds timeout{5000};
    std::string instance;  // the audit's `instance` column
  };
  using Done = std::function<void(StoreResult)>;

  explicit KeyStore(Options options);
  ~KeyStore();  // stops taking jobs, lets the running one end (bounded by timeout), joins
  KeyStore(const KeyStore&) = delete;
  KeyStore& operator=(const KeyStore&) = delete;

  // Rows with seq > `after`, deleted ones included, in seq order.
  void load(std::int64_t after, Done done);
  // The same, waited for on the calling thread up to `wait` (start-up, before the loop runs).
  StoreResult load_blocking(std::int64_t after, std::chrono::milliseconds wait);
  // Inserts `row` (its hash and alias set by the caller). kAliasTaken when a live key has it.
  void generate(VirtualKey row, std::string actor, Done done);
  // Applies `fields` to the live key `ref` (kNotFound, kAliasTaken on a rename).
  void update(RowRef ref, KeyFields fields, std::string actor, Done done);
  // Soft-deletes every key of `refs`, or none (kNotFound names the first missing).
  void remove(std::vector<RowRef> refs, std::string actor, Done done);
  // Replaces the key's hash (a new secret).
  void regenerate(RowRef ref, std::string new_hash, std::string actor, Done done);

  bool up() const;
  static const char* schema_sql();

 private:
  struct Db;
  using Job = std::function<void(Db&)>;
  void submit(Job job);
  void run();
  // On the thread: the job's result, handed to the main loop.
  void reply(Done done, StoreResult result);

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  bool up_ = false;  // guarded by mu_
  Lifetime lifetime_;
  std::thread thread_;  // last
};

}  // namespace rtgw::keys
