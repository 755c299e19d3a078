// SPDX-License-Identifier: MIT
// The PostgreSQL usage ledger: connection strings, the buffer bound while the database is
// unreachable, and (PostgresLedgerLive.*, with a real server) idempotent writes.
//
// PostgresLedgerLive.* need RTGW_TEST_POSTGRES_URL (a database they may create a table in) and
// are skipped without it; tests/integration/test_ledger.py runs them against the PostgreSQL
// server its fixture starts.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "usage/postgres_ledger.h"
#include "usage/postgres_url.h"

namespace {

using rtgw::usage::PostgresLedger;
using rtgw::usage::UsageRecord;
using namespace std::chrono_literals;

TEST(PostgresUrl, MasksThePassword) {
  EXPECT_EQ(rtgw::usage::mask_conninfo("postgresql://gw:s3cret@db.example.com:5432/usage"),
            "postgresql://gw:***@db.example.com:5432/usage");
  EXPECT_EQ(rtgw::usage::mask_conninfo("postgres://gw@db/usage?password=s3cret&sslmode=require"),
            "postgres://gw@db/usage?password=***&sslmode=require");
  std::string kv = rtgw::usage::mask_conninfo("host=db user=gw password='s3 cret' dbname=usage");
  EXPECT_EQ(kv.find("s3"), std::string::npos) << kv;
  EXPECT_NE(kv.find("password=***"), std::string::npos) << kv;
  EXPECT_NE(kv.find("host=db"), std::string::npos) << kv;
}

TEST(PostgresUrl, ChecksWithLibpq) {
  EXPECT_FALSE(rtgw::usage::conninfo_error("postgresql://gw:pw@localhost/usage"));
  EXPECT_FALSE(rtgw::usage::conninfo_error("host=/run/postgresql dbname=usage"));
  EXPECT_TRUE(rtgw::usage::conninfo_error("postgresql://gw:pw@localhost/usage?bogus=1"));
  EXPECT_TRUE(rtgw::usage::conninfo_error("host=localhost nonsense"));
  EXPECT_TRUE(rtgw::usage::conninfo_error(""));
}

const char* kConfig = R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
  "usage": {"log": "u.jsonl", "postgres_url": "env:PGURL", "postgres_buffer_records": 7}})";

TEST(PostgresUrl, ConfigReadsValidatesAndMasks) {
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "PGURL") return "postgresql://gw:hunter22@127.0.0.1:5/usage";
    return std::nullopt;
  };
  auto c = rtgw::config::load_from_text(kConfig, "t.json", {}, env);
  EXPECT_EQ(c.usage_postgres_url, "postgresql://gw:hunter22@127.0.0.1:5/usage");
  EXPECT_EQ(c.usage_postgres_buffer_records, 7);
  std::string text = rtgw::config::describe(c);
  EXPECT_EQ(text.find("hunter22"), std::string::npos) << text;
  EXPECT_NE(text.find("postgresql://gw:***@127.0.0.1:5/usage"), std::string::npos) << text;

  auto env_override = [](const std::string& name) -> std::optional<std::string> {
    if (name == "PGURL") return "postgresql://a@b/c";
    if (name == "RTGW_USAGE_POSTGRES_URL") return "postgresql://other@host/db";
    return std::nullopt;
  };
  EXPECT_EQ(rtgw::config::load_from_text(kConfig, "t.json", {}, env_override).usage_postgres_url,
            "postgresql://other@host/db");
  try {
    rtgw::config::load_from_text(
        R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
            "usage": {"postgres_url": "postgresql://h/db?nosuchoption=1"}})",
        "t.json", {}, env);
    FAIL() << "a bad connection string passed";
  } catch (const rtgw::config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.usage.postgres_url"), std::string::npos) << e.what();
  }
}

UsageRecord response_record(const std::string& call_id, const std::string& response_id,
                            const std::string& key) {
  UsageRecord r;
  r.kind = "response";
  r.call_id = call_id;
  r.transport = "webrtc";
  r.key_name = key;
  r.model = "echo";
  r.worker = "echo/0";
  r.response_id = response_id;
  r.status = "completed";
  r.usage_present = true;
  r.input_tokens = 30;
  r.output_tokens = 12;
  r.total_tokens = 42;
  return r;
}

UsageRecord transcription_record(const std::string& call_id, const std::string& item_id,
                                 const std::string& key) {
  UsageRecord r = response_record(call_id, "", key);
  r.kind = "transcription";
  r.item_id = item_id;
  r.input_tokens = 5;
  r.output_tokens = 3;
  r.total_tokens = 8;
  return r;
}

// A port nothing listens on: connections are refused at once.
std::string unreachable_url() { return "postgresql://gw@127.0.0.1:1/usage?connect_timeout=2"; }

TEST(PostgresLedger, BuffersUpToTheBoundWhileUnreachableAndCountsTheRest) {
  PostgresLedger ledger({unreachable_url(), 3, "test"});
  EXPECT_FALSE(ledger.wait_for_replay(200ms));
  int accepted = 0;
  for (int i = 0; i < 5; i++)
    accepted += ledger.offer(response_record("rtc_unreach", "resp_" + std::to_string(i), "k"), 1);
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ(ledger.dropped(), 2u);
  EXPECT_EQ(ledger.buffered(), 3u);
  EXPECT_FALSE(ledger.up());
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(ledger.close(300ms), 3u);  // nothing could be written
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  EXPECT_FALSE(ledger.offer(response_record("rtc_unreach", "late", "k"), 1));
}

// --- With a real server -------------------------------------------------------------------

struct PgFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PgClear {
  void operator()(PGresult* r) const { PQclear(r); }
};

class PostgresLedgerLive : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv("RTGW_TEST_POSTGRES_URL");
    if (!url || !*url) GTEST_SKIP() << "RTGW_TEST_POSTGRES_URL is not set";
    url_ = url;
    db_.reset(PQconnectdb(url_.c_str()));
    ASSERT_EQ(PQstatus(db_.get()), CONNECTION_OK) << PQerrorMessage(db_.get());
    call_id_ =
        "rtc_gtest_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  }

  std::string query(const std::string& sql) {
    std::unique_ptr<PGresult, PgClear> r(PQexec(db_.get(), sql.c_str()));
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(r.get());
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) < 1) return "";
    return PQgetisnull(r.get(), 0, 0) ? "NULL" : PQgetvalue(r.get(), 0, 0);
  }
  std::string count_rows() {
    return query("SELECT count(*) FROM realtime_usage WHERE call_id = '" + call_id_ + "'");
  }
  static void wait_written(PostgresLedger& ledger) {
    auto until = std::chrono::steady_clock::now() + 20s;
    while (ledger.buffered() > 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(20ms);
    ASSERT_EQ(ledger.buffered(), 0u);
  }

  std::string url_;
  std::unique_ptr<PGconn, PgFinish> db_;
  std::string call_id_;
};

TEST_F(PostgresLedgerLive, TheSameRecordOfferedTwiceLandsOnce) {
  std::string key = "key_" + call_id_;
  {
    PostgresLedger ledger({url_, 100, "gtest"});
    ASSERT_TRUE(ledger.wait_for_replay(20s));
    // Twice in one batch...
    ASSERT_TRUE(ledger.offer(response_record(call_id_, "resp_1", key), 1700000000.25));
    ASSERT_TRUE(ledger.offer(response_record(call_id_, "resp_1", key), 1700000000.25));
    ASSERT_TRUE(ledger.offer(transcription_record(call_id_, "item_1", key), 1700000001));
    wait_written(ledger);
    // ... and again in later batches.
    ASSERT_TRUE(ledger.offer(response_record(call_id_, "resp_1", key), 1700000000.25));
    ASSERT_TRUE(ledger.offer(transcription_record(call_id_, "item_1", key), 1700000001));
    wait_written(ledger);
    EXPECT_EQ(ledger.close(5s), 0u);
    EXPECT_EQ(ledger.written(), 2u);
    EXPECT_EQ(ledger.duplicates(), 3u);
  }
  EXPECT_EQ(count_rows(), "2");
  // The NULL id of each kind does not make two records of one kind distinct...
  EXPECT_EQ(query("SELECT item_id FROM realtime_usage WHERE call_id = '" + call_id_ +
                  "' AND kind = 'response'"),
            "NULL");
  EXPECT_EQ(query("SELECT response_id FROM realtime_usage WHERE call_id = '" + call_id_ +
                  "' AND kind = 'transcription'"),
            "NULL");
  EXPECT_EQ(query("SELECT extract(epoch FROM time)::text FROM realtime_usage WHERE call_id = '" +
                  call_id_ + "' AND kind = 'response'"),
            "1700000000.250000");

  // A second writer (a restart, another instance) offering the same records adds nothing, and
  // replays the key's totals.
  PostgresLedger again({url_, 100, "gtest-2"});
  auto totals = again.wait_for_replay(20s);
  ASSERT_TRUE(totals);
  EXPECT_EQ((*totals)[key].tokens, 42 + 8);
  ASSERT_TRUE(again.offer(response_record(call_id_, "resp_1", key), 1700000005));
  ASSERT_TRUE(again.offer(transcription_record(call_id_, "item_2", key), 1700000006));
  wait_written(again);
  EXPECT_EQ(again.close(5s), 0u);
  EXPECT_EQ(again.written(), 1u);  // only item_2
  EXPECT_EQ(count_rows(), "3");
}

}  // namespace
