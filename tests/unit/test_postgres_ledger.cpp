// SPDX-License-Identifier: MIT
// The PostgreSQL usage ledger: connection strings, the buffer bound while the database is
// unreachable, and (PostgresLedgerLive.*, with a real server) idempotent writes.
//
// PostgresLedgerHang.* run against a fake server in the test that stops answering.
// PostgresLedgerLive.* need RTGW_TEST_POSTGRES_URL (a database they may create a table in) and
// are skipped without it; tests/integration/test_ledger.py runs them against the PostgreSQL
// server its fixture starts.
#include <arpa/inet.h>
#include <glib.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "usage/postgres_ledger.h"
#include "usage/postgres_url.h"
#include "usage/pq.h"
#include "usage/usage_ledger.h"

namespace {

using rtgw::usage::PostgresLedger;
using rtgw::usage::UsageRecord;
using namespace std::chrono_literals;

// The connection parameters both PostgreSQL clients send: ours first, the operator's conninfo
// last as dbname (expanded), timeouts from `timeout` with their floors, arrays null-terminated.
TEST(PgConnectParams, KeywordsValuesAndTimeouts) {
  using rtgw::usage::PgConnectParams;
  PgConnectParams params("postgresql://u@h/db", "realtime-gateway-keys",
                         std::chrono::milliseconds(2500), {5, 2, 3, std::chrono::seconds(1)});
  std::vector<std::pair<std::string, std::string>> got;
  for (int i = 0; params.keywords()[i]; ++i) {
    ASSERT_NE(params.values()[i], nullptr) << params.keywords()[i];
    got.emplace_back(params.keywords()[i], params.values()[i]);
  }
  std::vector<std::pair<std::string, std::string>> want = {
      {"application_name", "realtime-gateway-keys"},
      {"connect_timeout", "3"},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "2"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "2500"},
      {"dbname", "postgresql://u@h/db"}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(params.values()[want.size()], nullptr);
  // Floors: connect_timeout at least 1 s, tcp_user_timeout at least the caller's minimum.
  PgConnectParams short_one("dbname=x", "realtime-gateway", std::chrono::milliseconds(200),
                            {10, 5, 3, std::chrono::seconds(1)});
  EXPECT_EQ(short_one.connect_timeout_s(), "1");
  EXPECT_EQ(short_one.tcp_user_timeout_ms(), "1000");
  PgConnectParams ledger("dbname=x", "realtime-gateway", std::chrono::milliseconds(200),
                         {10, 5, 3, std::chrono::milliseconds(1)});
  EXPECT_EQ(ledger.tcp_user_timeout_ms(), "200");
  EXPECT_STREQ(ledger.values()[3], "10");
}

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

// --- A server that hangs ------------------------------------------------------------------
// A fake PostgreSQL on loopback that speaks just enough of the protocol (v3, trust, no TLS) to
// let libpq connect, answers simple queries (the schema, SET, the budget replay: an empty result,
// SELECT 1), and never answers the extended protocol the writer uses for INSERTs and reports:
// a server that hangs mid-statement, as a stopped one does (the kernel still acknowledges).
// With `accept_connections` false it never accepts: the connection itself hangs.

class FakePostgres {
 public:
  explicit FakePostgres(bool accept_connections, bool answer_probes = true)
      : answer_probes_(answer_probes) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listener_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (accept_connections) thread_ = std::thread([this] { serve(); });
  }
  ~FakePostgres() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : clients_) ::close(fd);
    ::close(listener_);
  }
  std::string url() const {
    return "postgresql://gw@127.0.0.1:" + std::to_string(port_) +
           "/usage?sslmode=disable&gssencmode=disable";
  }
  int extended_messages() const { return extended_.load(); }
  int unanswered_probes() const { return probes_.load(); }

 private:
  static void put32(std::string& out, std::uint32_t v) {
    v = htonl(v);
    out.append(reinterpret_cast<const char*>(&v), 4);
  }
  static void put16(std::string& out, std::uint16_t v) {
    v = htons(v);
    out.append(reinterpret_cast<const char*>(&v), 2);
  }
  static std::string message(char type, const std::string& body) {
    std::string out(1, type);
    put32(out, static_cast<std::uint32_t>(body.size() + 4));
    return out + body;
  }
  static std::string answer(const std::string& query) {
    std::string out;
    if (query.find("SELECT key") != std::string::npos) {  // the budget replay: no rows
      std::string fields;
      put16(fields, 4);
      for (const char* name : {"key", "tokens", "cost", "count"}) {
        fields += name;
        fields += '\0';
        put32(fields, 0);
        put16(fields, 0);
        put32(fields, 25);  // text
        put16(fields, 0xffff);
        put32(fields, 0xffffffff);
        put16(fields, 0);
      }
      out += message('T', fields);
      out += message('C', std::string("SELECT 0") + '\0');
    } else if (query.find("SELECT 1") != std::string::npos) {
      std::string fields;
      put16(fields, 1);
      fields += std::string("one") + '\0';
      put32(fields, 0);
      put16(fields, 0);
      put32(fields, 23);  // int4
      put16(fields, 4);
      put32(fields, 0xffffffff);
      put16(fields, 0);
      out += message('T', fields);
      std::string row;
      put16(row, 1);
      put32(row, 1);
      row += '1';
      out += message('D', row);
      out += message('C', std::string("SELECT 1") + '\0');
    } else {
      out += message('C', std::string("OK") + '\0');
    }
    return out + message('Z', "I");
  }
  static bool read_exactly(int fd, char* buf, std::size_t n) {
    while (n > 0) {
      ssize_t got = ::read(fd, buf, n);
      if (got <= 0) return false;
      buf += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  static void send_all(int fd, const std::string& data) {
    ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    (void)sent;
  }
  // One connection, on its own thread: startup, then queries until it closes.
  void converse(int fd) {
    std::uint32_t len;
    if (!read_exactly(fd, reinterpret_cast<char*>(&len), 4)) return;
    std::string startup(ntohl(len) - 4, '\0');
    if (!read_exactly(fd, startup.data(), startup.size())) return;
    std::string auth;
    put32(auth, 0);
    send_all(fd, message('R', auth) + message('Z', "I"));
    while (true) {
      char type;
      if (!read_exactly(fd, &type, 1) || !read_exactly(fd, reinterpret_cast<char*>(&len), 4))
        return;
      std::string body(ntohl(len) - 4, '\0');
      if (!read_exactly(fd, body.data(), body.size()) || type == 'X') return;
      if (type == 'Q' && (answer_probes_ || body.find("SELECT 1") == std::string::npos))
        send_all(fd, answer(body));
      else if (type == 'Q')
        probes_++;  // never answered
      else
        extended_++;  // Parse/Bind/Describe/Execute/Sync: never answered
    }
  }
  void serve() {
    std::vector<std::thread> conversations;
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      clients_.push_back(fd);
      conversations.emplace_back([this, fd] { converse(fd); });
    }
    for (int fd : clients_) shutdown(fd, SHUT_RDWR);
    for (auto& t : conversations) t.join();
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> extended_{0};
  std::atomic<int> probes_{0};
  const bool answer_probes_;
  std::vector<int> clients_;  // serve()'s thread, then the destructor
  std::thread thread_;
};

PostgresLedger::Options hang_options(const std::string& url) {
  PostgresLedger::Options o{url, 100, "gtest"};
  o.timeout = 300ms;
  o.probe_interval = 200ms;
  return o;
}

template <typename Predicate>
bool eventually(Predicate p, std::chrono::milliseconds within) {
  auto until = std::chrono::steady_clock::now() + within;
  while (!p()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    g_main_context_iteration(nullptr, FALSE);
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(PostgresLedgerHang, AConnectionNobodyAnswersIsDownAndCloseIsBounded) {
  FakePostgres server(/*accept_connections=*/false);
  PostgresLedger ledger(hang_options(server.url()));
  EXPECT_FALSE(ledger.wait_for_replay(1s));
  EXPECT_FALSE(ledger.up());
  ASSERT_TRUE(ledger.offer(response_record("rtc_hang", "resp_1", "k"), 1));
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(ledger.close(200ms), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
}

TEST(PostgresLedgerHang, AStatementThatHangsMakesTheLedgerDownAndReportsUnavailable) {
  FakePostgres server(/*accept_connections=*/true);
  PostgresLedger ledger(hang_options(server.url()));
  auto totals = ledger.wait_for_replay(5s);
  ASSERT_TRUE(totals);  // the simple queries were answered
  EXPECT_TRUE(totals->empty());
  EXPECT_TRUE(ledger.up());
  // The INSERT is never answered: past its deadline the connection is dropped (an outage).
  ASSERT_TRUE(ledger.offer(response_record("rtc_hang", "resp_1", "k"), 1));
  EXPECT_TRUE(eventually([&] { return server.extended_messages() > 0; }, 3s));
  EXPECT_TRUE(eventually([&] { return !ledger.up(); }, 3s));
  EXPECT_EQ(ledger.buffered(), 1u);  // kept for the next connection

  // Reports are answered `unavailable` within their deadline, never held; their slots come back.
  for (int i = 0; i < 4; i++) {
    std::optional<rtgw::usage::UsageReply> reply;
    auto asked = std::chrono::steady_clock::now();
    ASSERT_TRUE(ledger.report({}, [&](rtgw::usage::UsageReply r) { reply = std::move(r); }))
        << "report " << i << " refused: slots still held";
    ASSERT_TRUE(eventually([&] { return reply.has_value(); }, 3s)) << "report " << i;
    EXPECT_TRUE(reply->unavailable) << "report " << i;
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 1500ms);
  }
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(ledger.close(200ms), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1500ms);
}

TEST(PostgresLedgerHang, AnIdleConnectionIsProbedAndAHangNoticed) {
  {
    FakePostgres server(/*accept_connections=*/true);
    PostgresLedger ledger(hang_options(server.url()));
    ASSERT_TRUE(ledger.wait_for_replay(5s));
    // Answered probes keep it up.
    std::this_thread::sleep_for(700ms);
    EXPECT_TRUE(ledger.up());
    EXPECT_EQ(ledger.close(200ms), 0u);
  }
  // Nothing to write, no report: the unanswered probe alone takes it down.
  FakePostgres server(/*accept_connections=*/true, /*answer_probes=*/false);
  PostgresLedger ledger(hang_options(server.url()));
  ASSERT_TRUE(ledger.wait_for_replay(5s));
  EXPECT_TRUE(ledger.up());
  EXPECT_TRUE(eventually([&] { return !ledger.up(); }, 3s));
  EXPECT_GE(server.unanswered_probes(), 1);
  EXPECT_EQ(ledger.close(200ms), 0u);
}

// --- The usage log's side of the replay ---------------------------------------------------

struct TempLogFile {
  std::string path;
  TempLogFile() {
    char tmpl[] = "/tmp/rtgw-ledger-XXXXXX";
    int fd = g_mkstemp(tmpl);
    ::close(fd);
    path = tmpl;
  }
  ~TempLogFile() { unlink(path.c_str()); }
  std::string text() const {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

TEST(UsageLedgerReplay, EveryRecordHasAnIdThatRoundTripsThroughItsLogLine) {
  TempLogFile log;
  {
    rtgw::usage::UsageLedger ledger(log.path);
    std::vector<UsageRecord> seen;
    std::vector<std::uint64_t> ends;
    ledger.set_sink([&](const UsageRecord& r, double, std::uint64_t log_end) {
      seen.push_back(r);
      ends.push_back(log_end);
    });
    UsageRecord r = response_record("rtc_a", "resp_1", "team-a");
    r.cached_details_present = true;
    r.input_cached_audio_tokens = 3;
    r.cost_usd = 0.5;
    r.first_token_latency_ms = 12.5;
    ledger.record(r);
    ledger.record(transcription_record("rtc_a", "item_1", "team-a"));
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].record_id.rfind("ur_", 0), 0u) << seen[0].record_id;
    EXPECT_EQ(seen[0].record_id.size(), 3u + 32u);
    EXPECT_NE(seen[0].record_id, seen[1].record_id);
    // Where each line ends in the log (the sink hears of a record once its line is in).
    EXPECT_EQ(ends[1], log.text().size());
    EXPECT_EQ(log.text()[ends[0] - 1], '\n');
    EXPECT_LT(ends[0], ends[1]);
  }
  std::ifstream in(log.path);
  std::string line;
  std::vector<rtgw::usage::LoggedRecord> back;
  while (std::getline(in, line)) {
    auto parsed = rtgw::usage::parse_usage_line(line);
    ASSERT_TRUE(parsed) << line;
    back.push_back(*parsed);
  }
  ASSERT_EQ(back.size(), 2u);
  const UsageRecord& r = back[0].record;
  EXPECT_EQ(r.record_id.size(), 35u);
  EXPECT_EQ(r.kind, "response");
  EXPECT_EQ(r.call_id, "rtc_a");
  EXPECT_EQ(r.response_id, "resp_1");
  EXPECT_TRUE(r.item_id.empty());
  EXPECT_EQ(r.total_tokens, 42);
  EXPECT_TRUE(r.cached_details_present);
  EXPECT_EQ(r.input_cached_audio_tokens, 3);
  EXPECT_DOUBLE_EQ(*r.cost_usd, 0.5);
  EXPECT_DOUBLE_EQ(r.first_token_latency_ms, 12.5);
  EXPECT_GT(back[0].unix_time, 1.7e9);
  EXPECT_EQ(back[1].record.kind, "transcription");
  EXPECT_EQ(back[1].record.item_id, "item_1");
  EXPECT_FALSE(back[1].record.cost_usd);
  EXPECT_FALSE(rtgw::usage::parse_usage_line("{\"key\": \"a\", \"total"));
  EXPECT_FALSE(rtgw::usage::parse_usage_line("{\"total_tokens\": 5}"));
}

TEST(UsageLedgerReplay, TheReplayedTotalsReplaceTheLogsAndThisProcesssRecordsAreAdded) {
  TempLogFile log;
  {
    rtgw::usage::UsageLedger ledger(log.path);
    ledger.record(response_record("rtc_a", "resp_1", "team-a"));  // 42
  }
  rtgw::usage::UsageLedger ledger(log.path);
  EXPECT_EQ(ledger.tokens_used("team-a"), 42);
  EXPECT_EQ(ledger.replayed_bytes(), log.text().size());
  UsageRecord live = response_record("rtc_b", "resp_2", "team-a");  // 42, after start-up
  live.cost_usd = 0.25;
  ledger.record(live);
  EXPECT_EQ(ledger.tokens_used("team-a"), 84);
  // The table (the log's record included, plus another instance's 100 tokens) counts every
  // record from before start-up once: 142, plus the live 42. max() said 142; a plain sum 226.
  ledger.merge_replayed({{"team-a", {142, 1.0}}, {"team-b", {7, 0}}});
  EXPECT_EQ(ledger.tokens_used("team-a"), 142 + 42);
  EXPECT_DOUBLE_EQ(ledger.usd_used("team-a"), 1.25);
  EXPECT_EQ(ledger.tokens_used("team-b"), 7);
}

TEST(UsageLedgerReplay, ALineCutShortByACrashIsEndedBeforeTheNextRecord) {
  TempLogFile log;
  {
    std::ofstream out(log.path, std::ios::binary);
    out << "{\"key\":\"team-a\",\"total_tokens\":5}\n{\"key\":\"team-a\",\"tot";
  }
  std::size_t before = log.text().size();
  {
    rtgw::usage::UsageLedger ledger(log.path);
    EXPECT_EQ(ledger.replayed_records(), 1u);
    EXPECT_EQ(ledger.tokens_used("team-a"), 5);
    EXPECT_EQ(ledger.replayed_bytes(), before + 1);  // the newline that ends the cut line
    ledger.record(response_record("rtc_a", "resp_1", "team-a"));
  }
  rtgw::usage::UsageLedger again(log.path);
  EXPECT_EQ(again.replayed_records(), 2u);  // the new record was not glued to the cut line
  EXPECT_EQ(again.tokens_used("team-a"), 5 + 42);
}
