// SPDX-License-Identifier: MIT
#include "keys/key_store.h"

#include <glib.h>
#include <libpq-fe.h>

#include <functional>
#include <memory>

#include "common/json.h"
#include "usage/postgres_url.h"
#include "usage/pq.h"

namespace rtgw::keys {
namespace {

using Result = usage::PgResult;

// TCP keepalives: a key store that vanished is noticed within seconds, even on an idle connection.
constexpr usage::PgConnectParams::Keepalives kKeepalives{5, 2, 3, std::chrono::seconds(1)};

const char* kSchema = R"sql(
SELECT pg_advisory_xact_lock(7265747765);
CREATE SEQUENCE IF NOT EXISTS rtgw_virtual_keys_seq;
CREATE TABLE IF NOT EXISTS rtgw_virtual_keys (
  key_hash text PRIMARY KEY,
  key_alias text NOT NULL,
  models jsonb NOT NULL DEFAULT '["*"]',
  max_concurrent_calls integer,
  budget_usd double precision,
  budget_tokens bigint,
  budget_duration text,
  expires_at timestamptz,
  policy jsonb,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  deleted_at timestamptz,
  seq bigint NOT NULL DEFAULT nextval('rtgw_virtual_keys_seq')
);
CREATE UNIQUE INDEX IF NOT EXISTS rtgw_virtual_keys_live_alias
  ON rtgw_virtual_keys (key_alias) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS rtgw_virtual_keys_seq_idx ON rtgw_virtual_keys (seq);
CREATE TABLE IF NOT EXISTS rtgw_key_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  key_alias text NOT NULL,
  before jsonb,
  after jsonb,
  instance text
);
)sql";

#define KEY_COLUMNS                                                                         \
  "key_hash, key_alias, models::text, max_concurrent_calls, budget_usd, budget_tokens, "    \
  "budget_duration, extract(epoch from expires_at)::bigint, policy::text, metadata::text, " \
  "extract(epoch from created_at)::bigint, extract(epoch from updated_at)::bigint, "        \
  "extract(epoch from revoked_at)::bigint, extract(epoch from deleted_at)::bigint, seq"

const char* kLoadSql =
    "SELECT " KEY_COLUMNS " FROM rtgw_virtual_keys WHERE seq > $1::bigint ORDER BY seq";
const char* kByHashSql =
    "SELECT " KEY_COLUMNS " FROM rtgw_virtual_keys WHERE deleted_at IS NULL AND key_hash = $1";
const char* kByAliasSql =
    "SELECT " KEY_COLUMNS " FROM rtgw_virtual_keys WHERE deleted_at IS NULL AND key_alias = $1";
const char* kInsertSql =
    "INSERT INTO rtgw_virtual_keys (key_hash, key_alias, models, max_concurrent_calls, "
    "budget_usd, budget_tokens, budget_duration, expires_at, policy, metadata, revoked_at, "
    "deleted_at) VALUES ($1, $2, $3::jsonb, $4::integer, $5::float8, $6::bigint, $7, "
    "to_timestamp($8::float8), $9::jsonb, $10::jsonb, to_timestamp($11::float8), "
    "to_timestamp($12::float8)) RETURNING " KEY_COLUMNS;
const char* kUpdateSql =
    "UPDATE rtgw_virtual_keys SET key_hash = $1, key_alias = $2, models = $3::jsonb, "
    "max_concurrent_calls = $4::integer, budget_usd = $5::float8, budget_tokens = $6::bigint, "
    "budget_duration = $7, expires_at = to_timestamp($8::float8), policy = $9::jsonb, "
    "metadata = $10::jsonb, revoked_at = to_timestamp($11::float8), "
    "deleted_at = to_timestamp($12::float8), updated_at = now(), "
    "seq = nextval('rtgw_virtual_keys_seq') WHERE key_hash = $13 RETURNING " KEY_COLUMNS;
const char* kAuditSql =
    "INSERT INTO rtgw_key_audit (actor, action, key_alias, before, after, instance) "
    "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)";

std::string one_line(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}

std::optional<std::string> text_at(PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return std::nullopt;
  return std::string(PQgetvalue(r, row, col));
}
std::optional<std::int64_t> int_at(PGresult* r, int row, int col) {
  auto t = text_at(r, row, col);
  if (!t) return std::nullopt;
  return g_ascii_strtoll(t->c_str(), nullptr, 10);
}

VirtualKey row_at(PGresult* r, int i) {
  VirtualKey k;
  k.hash = text_at(r, i, 0).value_or("");
  k.alias = text_at(r, i, 1).value_or("");
  k.models.clear();
  if (auto models = text_at(r, i, 2))
    if (auto node = json::parse(*models); node && JSON_NODE_HOLDS_ARRAY(node.get())) {
      JsonArray* a = json_node_get_array(node.get());
      for (guint j = 0; j < json_array_get_length(a); j++)
        if (const char* s = json_array_get_string_element(a, j)) k.models.push_back(s);
    }
  if (auto v = int_at(r, i, 3)) k.max_concurrent_calls = static_cast<int>(*v);
  if (auto v = text_at(r, i, 4)) k.budget_usd = g_ascii_strtod(v->c_str(), nullptr);
  k.budget_tokens = int_at(r, i, 5);
  k.budget_duration = text_at(r, i, 6);
  k.expires_at = int_at(r, i, 7);
  k.policy_json = text_at(r, i, 8);
  k.metadata_json = text_at(r, i, 9);
  k.created_at = int_at(r, i, 10).value_or(0);
  k.updated_at = int_at(r, i, 11).value_or(0);
  k.revoked_at = int_at(r, i, 12);
  k.deleted_at = int_at(r, i, 13);
  k.seq = int_at(r, i, 14).value_or(0);
  return k;
}

std::string models_json(const std::vector<std::string>& models) {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  JsonArray* a = json_array_new();
  for (const auto& m : models) json_array_add_string_element(a, m.c_str());
  json_node_take_array(node.get(), a);
  return json::to_string(node.get());
}

// The parameters $1..$12 of kInsertSql / kUpdateSql for `k`.
std::vector<std::optional<std::string>> row_params(const VirtualKey& k) {
  auto num = [](auto v) -> std::optional<std::string> {
    if (!v) return std::nullopt;
    return std::to_string(*v);
  };
  std::optional<std::string> usd;
  if (k.budget_usd) {
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    usd = g_ascii_dtostr(buf, sizeof buf, *k.budget_usd);
  }
  return {k.hash,
          k.alias,
          models_json(k.models),
          num(k.max_concurrent_calls),
          usd,
          num(k.budget_tokens),
          k.budget_duration,
          num(k.expires_at),
          k.policy_json,
          k.metadata_json,
          num(k.revoked_at),
          num(k.deleted_at)};
}

}  // namespace

// The thread's connection and its statements.
struct KeyStore::Db {
  const Options& options;
  usage::PgConn conn;
  std::string error;  // the last failure
  bool outage_logged = false;

  // A connected session with the schema in place, or false (`error` says why).
  bool ready() {
    if (conn && PQstatus(conn.get()) == CONNECTION_OK) return true;
    conn.reset();
    usage::PgConnectParams params(options.conninfo, "realtime-gateway-keys", options.timeout,
                                  kKeepalives);
    conn.reset(PQconnectdbParams(params.keywords(), params.values(),
                                 usage::PgConnectParams::kExpandDbname));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
      error = conn ? one_line(PQerrorMessage(conn.get())) : "out of memory";
      return lost();
    }
    // client_min_messages: the schema's "already exists, skipping" notices are not news.
    std::string set = "SET statement_timeout = " + std::to_string(options.timeout.count()) +
                      "; SET client_min_messages = warning";
    if (!command(set.c_str()) || !command("BEGIN") || !command(kSchema) || !command("COMMIT"))
      return lost();
    if (outage_logged)
      g_message("key store: PostgreSQL %s is back", usage::mask_conninfo(options.conninfo).c_str());
    else
      g_message("key store: connected to PostgreSQL %s",
                usage::mask_conninfo(options.conninfo).c_str());
    outage_logged = false;
    return true;
  }

  bool lost() {
    if (!outage_logged)
      g_warning("key store: PostgreSQL %s unavailable: %s (serving the last copy of the keys)",
                usage::mask_conninfo(options.conninfo).c_str(), error.c_str());
    outage_logged = true;
    conn.reset();
    return false;
  }

  Result exec(const char* sql, const std::vector<std::optional<std::string>>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    Result r(params.empty() ? PQexec(conn.get(), sql)
                            : PQexecParams(conn.get(), sql, static_cast<int>(values.size()),
                                           nullptr, values.data(), nullptr, nullptr, 0));
    return r;
  }

  bool command(const char* sql) {
    Result r = exec(sql);
    auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return true;
    error = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn.get()));
    return false;
  }

  // A statement's rows, or nullopt (error set; `sqlstate` its code).
  std::optional<std::vector<VirtualKey>> rows(const char* sql,
                                              const std::vector<std::optional<std::string>>& p,
                                              std::string* sqlstate = nullptr) {
    Result r = exec(sql, p);
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      error = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn.get()));
      if (sqlstate && r)
        if (const char* s = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE)) *sqlstate = s;
      return std::nullopt;
    }
    std::vector<VirtualKey> out;
    for (int i = 0; i < PQntuples(r.get()); i++) out.push_back(row_at(r.get(), i));
    return out;
  }

  std::optional<VirtualKey> find(const RowRef& ref, bool& failed) {
    failed = false;
    auto found = ref.hash ? rows(kByHashSql, {*ref.hash}) : rows(kByAliasSql, {*ref.alias});
    if (!found) {
      failed = true;
      return std::nullopt;
    }
    if (found->empty()) return std::nullopt;
    return found->front();
  }

  bool audit(const std::string& actor, const char* action, const std::string& alias,
             const std::optional<VirtualKey>& before, const std::optional<VirtualKey>& after) {
    std::optional<std::string> b, a;
    if (before) b = to_json(*before);
    if (after) a = to_json(*after);
    Result r = exec(kAuditSql, {actor, std::string(action), alias, b, a, options.instance});
    if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) return true;
    error = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn.get()));
    return false;
  }

  // A write transaction: BEGIN, the table lock (see the header), `body`, COMMIT; ROLLBACK on
  // anything else. `body` returns the result; kOk commits.
  StoreResult transaction(const std::function<StoreResult()>& body) {
    if (!ready()) return {StoreResult::kUnavailable, error, {}};
    if (!command("BEGIN") || !command("LOCK TABLE rtgw_virtual_keys IN SHARE ROW EXCLUSIVE MODE")) {
      lost();
      return {StoreResult::kUnavailable, error, {}};
    }
    StoreResult result = body();
    if (result.status == StoreResult::kOk && command("COMMIT")) return result;
    std::string why = error;
    if (!command("ROLLBACK")) lost();
    if (result.status == StoreResult::kOk) return {StoreResult::kUnavailable, why, {}};
    return result;
  }
};

const char* KeyStore::schema_sql() { return kSchema; }

KeyStore::KeyStore(Options options) : options_(std::move(options)) {
  thread_ = std::thread([this] { run(); });
}

KeyStore::~KeyStore() {
  lifetime_.end();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

bool KeyStore::up() const {
  std::lock_guard<std::mutex> lock(mu_);
  return up_;
}

void KeyStore::submit(Job job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void KeyStore::run() {
  Db db{options_, nullptr, "", false};
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(db);
    std::lock_guard<std::mutex> lock(mu_);
    up_ = db.conn != nullptr;
  }
}

void KeyStore::reply(Done done, StoreResult result) {
  post_if_alive(lifetime_.watch(), [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

namespace {
StoreResult load_rows(KeyStore::Options const&, auto& db, std::int64_t after) {
  if (!db.ready()) return {StoreResult::kUnavailable, db.error, {}};
  auto rows = db.rows(kLoadSql, {std::to_string(after)});
  if (!rows) {
    std::string why = db.error;
    db.lost();
    return {StoreResult::kUnavailable, why, {}};
  }
  return {StoreResult::kOk, "", std::move(*rows)};
}
}  // namespace

void KeyStore::load(std::int64_t after, Done done) {
  submit([this, after, done = std::move(done)](Db& db) mutable {
    reply(std::move(done), load_rows(options_, db, after));
  });
}

StoreResult KeyStore::load_blocking(std::int64_t after, std::chrono::milliseconds wait) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<StoreResult> result;
  };
  auto shared = std::make_shared<Shared>();
  submit([this, after, shared](Db& db) {
    StoreResult r = load_rows(options_, db, after);
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->result = std::move(r);
    shared->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(shared->mu);
  if (!shared->cv.wait_for(lock, wait, [&] { return shared->result.has_value(); }))
    return {StoreResult::kUnavailable, "no answer within the timeout", {}};
  return std::move(*shared->result);
}

void KeyStore::generate(VirtualKey row, std::string actor, Done done) {
  submit([this, row = std::move(row), actor = std::move(actor), done = std::move(done)](Db& db) {
    StoreResult result = db.transaction([&]() -> StoreResult {
      std::string state;
      auto inserted = db.rows(kInsertSql, row_params(row), &state);
      if (!inserted || inserted->empty()) {
        if (state == "23505") return {StoreResult::kAliasTaken, row.alias, {}};
        return {StoreResult::kUnavailable, db.error, {}};
      }
      if (!db.audit(actor, "generate", row.alias, std::nullopt, inserted->front()))
        return {StoreResult::kUnavailable, db.error, {}};
      return {StoreResult::kOk, "", std::move(*inserted)};
    });
    reply(std::move(done), std::move(result));
  });
}

namespace {
// Writes `after` over the live row `hash`; the audit row goes with it.
StoreResult write_row(auto& db, const std::string& hash, const VirtualKey& before,
                      const VirtualKey& after, const std::string& actor, const char* action) {
  auto params = row_params(after);
  params.push_back(hash);
  std::string state;
  auto written = db.rows(kUpdateSql, params, &state);
  if (!written || written->empty()) {
    if (state == "23505") return {StoreResult::kAliasTaken, after.alias, {}};
    return {StoreResult::kUnavailable, db.error, {}};
  }
  if (!db.audit(actor, action, before.alias, before, written->front()))
    return {StoreResult::kUnavailable, db.error, {}};
  return {StoreResult::kOk, "", std::move(*written)};
}

// The live row `ref` names, changed by `change` (which edits `after`, a copy of the row, and
// returns the audit action) and written back; not found or unreachable, the answer says so.
StoreResult change_row(
    auto& db, const RowRef& ref, const std::string& actor,
    const std::function<const char*(const VirtualKey& before, VirtualKey& after)>& change) {
  bool failed = false;
  auto before = db.find(ref, failed);
  if (failed) return {StoreResult::kUnavailable, db.error, {}};
  if (!before) return {StoreResult::kNotFound, ref.alias.value_or(""), {}};
  VirtualKey after = *before;
  const char* action = change(*before, after);
  return write_row(db, before->hash, *before, after, actor, action);
}
}  // namespace

void KeyStore::update(RowRef ref, KeyFields fields, std::string actor, Done done) {
  submit([this, ref = std::move(ref), fields = std::move(fields), actor = std::move(actor),
          done = std::move(done)](Db& db) {
    StoreResult result = db.transaction([&]() -> StoreResult {
      return change_row(db, ref, actor, [&](const VirtualKey& before, VirtualKey& after) {
        apply_fields(after, fields, g_get_real_time() / G_USEC_PER_SEC);
        return fields.revoked && *fields.revoked && !before.revoked_at ? "revoke" : "update";
      });
    });
    reply(std::move(done), std::move(result));
  });
}

void KeyStore::remove(std::vector<RowRef> refs, std::string actor, Done done) {
  submit([this, refs = std::move(refs), actor = std::move(actor), done = std::move(done)](Db& db) {
    StoreResult result = db.transaction([&]() -> StoreResult {
      StoreResult all;
      for (const auto& ref : refs) {
        StoreResult one = change_row(db, ref, actor, [](const VirtualKey&, VirtualKey& after) {
          after.deleted_at = g_get_real_time() / G_USEC_PER_SEC;
          return "delete";
        });
        if (one.status != StoreResult::kOk) return one;
        for (auto& r : one.rows) all.rows.push_back(std::move(r));
      }
      return all;
    });
    reply(std::move(done), std::move(result));
  });
}

void KeyStore::regenerate(RowRef ref, std::string new_hash, std::string actor, Done done) {
  submit([this, ref = std::move(ref), new_hash = std::move(new_hash), actor = std::move(actor),
          done = std::move(done)](Db& db) {
    StoreResult result = db.transaction([&]() -> StoreResult {
      return change_row(db, ref, actor, [&](const VirtualKey&, VirtualKey& after) {
        after.hash = new_hash;
        return "regenerate";
      });
    });
    reply(std::move(done), std::move(result));
  });
}

}  // namespace rtgw::keys
