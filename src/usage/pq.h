// SPDX-License-Identifier: MIT
// libpq glue shared by the gateway's PostgreSQL clients (the usage ledger and its transcripts, the
// virtual key store).
//
// Owns: the RAII holders for libpq handles (`PgConn`: PQfinish; `PgResult`: PQclear) and
// `PgConnectParams`, the keyword/value arrays for PQconnectdbParams / PQconnectStartParams with
// the strings they point into: application_name, connect_timeout, TCP keepalives,
// tcp_user_timeout, then the configured connection string as `dbname` (expand_dbname = 1), so a
// parameter the operator wrote in it overrides ours. Each caller keeps its own connect (blocking
// or polled) and its own application_name.
//
// Threads: any (each object is used by one thread at a time).
#pragma once

#include <libpq-fe.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>

namespace rtgw::usage {

struct PgConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgResultClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnFinish>;
using PgResult = std::unique_ptr<PGresult, PgResultClear>;

class PgConnectParams {
 public:
  // TCP keepalives (seconds), so that a peer that vanished is noticed on an idle connection too,
  // and the floor of tcp_user_timeout (how long sent data may stay unacknowledged).
  struct Keepalives {
    int idle_s;
    int interval_s;
    int count;
    std::chrono::milliseconds min_user_timeout;
  };
  // PQconnectdbParams' / PQconnectStartParams' expand_dbname: `dbname` is a whole conninfo.
  static constexpr int kExpandDbname = 1;

  // connect_timeout is `timeout` rounded up to whole seconds (at least 1); tcp_user_timeout is
  // `timeout` (at least `keepalives.min_user_timeout`).
  PgConnectParams(const std::string& conninfo, const std::string& application_name,
                  std::chrono::milliseconds timeout, const Keepalives& keepalives);
  // The arrays point into this object.
  PgConnectParams(const PgConnectParams&) = delete;
  PgConnectParams& operator=(const PgConnectParams&) = delete;

  // Null-terminated, for libpq.
  const char* const* keywords() const { return kKeywords.data(); }
  const char* const* values() const { return value_pointers_.data(); }
  // The figures as sent, for the caller's own messages and settings.
  const std::string& connect_timeout_s() const { return values_[1]; }
  const std::string& tcp_user_timeout_ms() const { return values_[6]; }

 private:
  static constexpr std::array<const char*, 9> kKeywords = {"application_name",
                                                           "connect_timeout",
                                                           "keepalives",
                                                           "keepalives_idle",
                                                           "keepalives_interval",
                                                           "keepalives_count",
                                                           "tcp_user_timeout",
                                                           "dbname",
                                                           nullptr};
  std::array<std::string, kKeywords.size() - 1> values_;
  std::array<const char*, kKeywords.size()> value_pointers_{};
};

}  // namespace rtgw::usage
