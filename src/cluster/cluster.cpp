// SPDX-License-Identifier: MIT
#include "cluster/cluster.h"

#include <glib.h>

#include <algorithm>
#include <utility>

#include "usage/budget_period.h"
#include "usage/saturating.h"

namespace rtgw::cluster {
namespace {

constexpr const char* kGlobal = "rtgw:leases:global";
constexpr std::int64_t kEndedOwnerMs = 600 * 1000;  // an ended call's owner entry
constexpr std::size_t kRenewBatch = 200;            // leases per renewal script

std::string key_set(const std::string& key_name) { return "rtgw:leases:key:" + key_name; }
std::string owner_key(const std::string& id) { return "rtgw:call:" + id; }
std::string reserve_key(const std::string& key_name) { return "rtgw:reserve:" + key_name; }

// The clock is Redis's (one clock for every instance).
constexpr const char* kNow =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

// KEYS: global set, key set, owner entry, budget hash.
// ARGV: member, global limit, key limit, ttl ms, owner value ('' for a session).
// Returns {verdict (1 taken, -1 global full, -2 key full), tokens, usd}.
const std::string kAcquire = std::string(kNow) + R"(
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local b = redis.call('HMGET', KEYS[4], 'tokens', 'usd')
local tokens = b[1] or '0'
local usd = b[2] or '0'
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local g = tonumber(ARGV[2])
  local k = tonumber(ARGV[3])
  if g > 0 and redis.call('ZCARD', KEYS[1]) >= g then return {-1, tokens, usd} end
  if k > 0 and redis.call('ZCARD', KEYS[2]) >= k then return {-2, tokens, usd} end
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'PX', ttl) end
return {1, tokens, usd}
)";

// KEYS: global set, then per lease its key set and owner entry.
// ARGV: ttl ms, then per lease its member and owner value ('' for a session).
// Renews (or, after an outage, re-registers) every lease given, whatever the counts: these are
// live already.
const std::string kRenew = std::string(kNow) + R"(
local ttl = tonumber(ARGV[1])
local n = (#KEYS - 1) / 2
for i = 0, n - 1 do
  local m = ARGV[2 + 2 * i]
  redis.call('ZADD', KEYS[1], now + ttl, m)
  redis.call('ZADD', KEYS[2 + 2 * i], now + ttl, m)
  redis.call('PEXPIRE', KEYS[2 + 2 * i], ttl)
  local owner = ARGV[3 + 2 * i]
  if owner ~= '' then redis.call('SET', KEYS[3 + 2 * i], owner, 'PX', ttl) end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return n
)";

// KEYS: global set, key set, owner entry. ARGV: member, owner entry's remaining life (ms, 0:
// none).
const std::string kRelease = R"(
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local keep = tonumber(ARGV[2])
if keep > 0 then redis.call('PEXPIRE', KEYS[3], keep) end
return 1
)";

// KEYS: budget hash. ARGV: tokens, usd, the hash's life in ms (0: none). Returns {tokens, usd}.
const std::string kAddUsage = R"(
local t = redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
local u = redis.call('HINCRBYFLOAT', KEYS[1], 'usd', ARGV[2])
local ttl = tonumber(ARGV[3] or '0')
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {t, u}
)";

// KEYS: reservation set. ARGV: ttl ms, member. Adds or renews one reservation.
const std::string kReserve = std::string(kNow) + R"(
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
)";

// KEYS: reservation set. Drops lapsed members, returns the live ones.
const std::string kReserved = std::string(kNow) + R"(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
)";

std::string sha1(const std::string& text) {
  UniqueStr hex(g_compute_checksum_for_string(G_CHECKSUM_SHA1, text.c_str(),
                                              static_cast<gssize>(text.size())));
  return hex.get();
}

std::string usd_text(double usd) {
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(buf, sizeof buf, "%.10f", usd);
  return buf;
}

RedisClient::Options redis_options(const config::ClusterConfig& c) {
  RedisClient::Options o;
  o.host = c.redis_host;
  o.port = c.redis_port;
  o.db = c.redis_db;
  o.user = c.redis_user;
  o.password = c.redis_password;
  // A Redis that does not answer within this is taken for down: admissions fall back to the
  // local view rather than hold calls.
  o.command_timeout_ms = std::min(2000, c.lease_seconds * 1000 / 2);
  o.connect_timeout_ms = o.command_timeout_ms;
  return o;
}

}  // namespace

Lease::~Lease() {
  if (auto cluster = cluster_.lock()) cluster->release(id_);
}

Cluster::Cluster(const config::Config& config)
    : settings_(config.cluster),
      redis_(redis_options(config.cluster), [this](bool up) { on_redis_state(up); }),
      acquire_{kAcquire, sha1(kAcquire)},
      renew_{kRenew, sha1(kRenew)},
      release_{kRelease, sha1(kRelease)},
      add_usage_{kAddUsage, sha1(kAddUsage)},
      reserve_{kReserve, sha1(kReserve)},
      reserved_{kReserved, sha1(kReserved)},
      subscriber_(
          [&config] {
            RedisClient::Options o = redis_options(config.cluster);
            o.label = "key channel";
            return o;
          }(),
          [this](bool up) { on_subscriber_state(up); }) {
  std::map<std::string, std::int64_t> periods;
  for (const auto& k : config.auth.keys) {
    key_names_.push_back(k.name);
    if (k.budget_duration_seconds) periods[k.name] = *k.budget_duration_seconds;
  }
  period_of_ = [periods](const std::string& key_name) -> std::optional<std::int64_t> {
    auto it = periods.find(key_name);
    if (it == periods.end()) return std::nullopt;
    return it->second;
  };
}

std::string Cluster::budget_hash(const std::string& key_name, double unix_time) const {
  std::optional<std::int64_t> seconds = period_of_(key_name);
  if (!seconds) return "rtgw:budget:" + key_name;
  return "rtgw:budget:" + key_name + ":" + std::to_string(usage::period_start(unix_time, *seconds));
}

std::int64_t Cluster::budget_hash_ttl_ms(const std::string& key_name) const {
  std::optional<std::int64_t> seconds = period_of_(key_name);
  // Past its period's end, plus one more period for clocks that disagree and late flushes.
  return seconds ? (2 * *seconds + 60) * 1000 : 0;
}

Cluster::~Cluster() = default;

void Cluster::start() {
  g_message("cluster: instance %s (%s), Redis %s:%d/%d, lease_seconds=%d",
            settings_.instance_id.c_str(), settings_.advertise_url.c_str(),
            settings_.redis_host.c_str(), settings_.redis_port, settings_.redis_db,
            settings_.lease_seconds);
  redis_.start();
  subscriber_.subscribe(
      kKeyChannel,
      [this](const std::string& alias) {
        for (const auto& fn : std::vector(key_change_handlers_)) fn(alias);
      },
      [this] {
        key_channel_up_ = true;
        if (!std::exchange(key_channel_lost_, false)) return;
        // Back after an outage: whatever was published meanwhile was not heard here.
        g_message("cluster: key channel %s subscribed again: every cached key is dropped",
                  kKeyChannel);
        for (const auto& fn : std::vector(key_change_handlers_)) fn("");
      });
  subscriber_.start();
  auto period = static_cast<guint>(std::max<std::int64_t>(200, lease_ms() / 3));
  renew_timer_ = SourceGuard(g_timeout_add(
      period,
      [](gpointer data) -> gboolean {
        auto* self = static_cast<Cluster*>(data);
        self->renew_all();
        self->refresh_totals();
        return G_SOURCE_CONTINUE;
      },
      this));
}

void Cluster::eval(const Script& script, std::vector<std::string> keys,
                   std::vector<std::string> args, ReplyFn done) {
  std::vector<std::string> argv{"EVALSHA", script.sha, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  std::weak_ptr<Cluster> weak = weak_from_this();
  std::string text = script.text;
  redis_.command(argv, [weak, argv, text, done = std::move(done)](const Reply* reply) mutable {
    auto self = weak.lock();
    if (self && reply && reply->error() && reply->str.rfind("NOSCRIPT", 0) == 0) {
      // First use on this Redis (or after a restart): send the text once, EVALSHA after.
      argv[0] = "EVAL";
      argv[1] = text;
      self->redis_.command(argv, std::move(done));
      return;
    }
    if (done) done(reply);
  });
}

void Cluster::admit(const AdmissionRequest& request, AdmitFn done) {
  leases_[request.id] = {request.key_name, request.call, true};
  auto lease = std::make_unique<Lease>(weak_from_this(), request.id);
  std::weak_ptr<Cluster> weak = weak_from_this();
  auto shared_lease = std::make_shared<std::unique_ptr<Lease>>(std::move(lease));
  std::string hash = budget_hash(request.key_name, usage::unix_now());
  eval(acquire_, {kGlobal, key_set(request.key_name), owner_key(request.id), hash},
       {member(request.id), std::to_string(request.global_limit), std::to_string(request.key_limit),
        std::to_string(lease_ms()), request.call ? owner_value() : ""},
       [weak, key = request.key_name, hash, shared_lease,
        done = std::move(done)](const Reply* reply) {
         auto self = weak.lock();
         std::unique_ptr<Lease> lease = std::move(*shared_lease);
         if (!self) return;
         if (auto it = self->leases_.find(lease->id()); it != self->leases_.end())
           it->second.admitting = false;  // held from now on (in Redis, or locally)
         if (!reply || reply->type != Reply::Type::kArray || reply->elements.size() != 3) {
           if (reply) g_warning("cluster: lease script: %s", reply->str.c_str());
           done(Verdict::kLocal, std::move(lease));
           return;
         }
         self->store_totals(key, hash, reply->elements[1], reply->elements[2]);
         long long v = reply->elements[0].as_integer();
         if (v == 1) {
           done(Verdict::kAdmitted, std::move(lease));
           return;
         }
         lease.reset();  // refused: not ours to hold (nothing was added)
         done(v == -2 ? Verdict::kKeyFull : Verdict::kGlobalFull, nullptr);
       });
}

void Cluster::release(const std::string& id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  LeaseInfo info = it->second;
  leases_.erase(it);
  if (!redis_.up()) return;  // it lapses in Redis; re-registration no longer lists it
  eval(release_, {kGlobal, key_set(info.key_name), owner_key(id)},
       {member(id), info.call ? std::to_string(kEndedOwnerMs) : "0"}, nullptr);
}

void Cluster::on_redis_state(bool up) {
  if (!up) {
    totals_.clear();  // stale from now on: the local ledger decides
    others_reserved_.clear();
    return;
  }
  flush_key_changes();
  // Back (or first up): write back what lives here, then what was metered meanwhile.
  if (!leases_.empty())
    g_message("cluster: re-registering %zu live lease(s) in Redis", leases_.size());
  renew_all();
  flush_usage();
  refresh_totals();
}

void Cluster::renew_all() {
  if (!redis_.up()) return;
  for (const auto& [id, r] : reservations_) put_reservation(r);
  if (leases_.empty()) return;
  std::vector<std::string> keys{kGlobal};
  std::vector<std::string> args{std::to_string(lease_ms())};
  auto send = [&] {
    if (keys.size() > 1) eval(renew_, keys, args, nullptr);
    keys.assign({kGlobal});
    args.assign({std::to_string(lease_ms())});
  };
  for (const auto& [id, info] : leases_) {
    if (info.admitting) continue;
    keys.push_back(key_set(info.key_name));
    keys.push_back(owner_key(id));
    args.push_back(member(id));
    args.push_back(info.call ? owner_value() : "");
    if ((keys.size() - 1) / 2 >= kRenewBatch) send();
  }
  send();
}

void Cluster::refresh_totals() {
  if (!redis_.up()) return;
  std::weak_ptr<Cluster> weak = weak_from_this();
  for (const auto& key : key_names_) refresh_reservations(key);
  const double now = usage::unix_now();
  for (const auto& key : key_names_) {
    std::string hash = budget_hash(key, now);
    redis_.command({"HMGET", hash, "tokens", "usd"}, [weak, key, hash](const Reply* reply) {
      auto self = weak.lock();
      if (!self || !reply || reply->type != Reply::Type::kArray || reply->elements.size() != 2)
        return;
      self->store_totals(key, hash, reply->elements[0], reply->elements[1]);
    });
  }
}

void Cluster::store_totals(const std::string& key_name, const std::string& hash,
                           const Reply& tokens, const Reply& usd) {
  BudgetTotals t{tokens.as_integer(0), usd.as_double(0)};
  auto it = totals_.find(hash);
  bool changed = it == totals_.end() || it->second.tokens != t.tokens || it->second.usd != t.usd;
  if (it == totals_.end() && period_of_(key_name)) {
    // A new period's hash: the key's earlier periods are no longer read.
    const std::string prefix = "rtgw:budget:" + key_name + ":";
    std::erase_if(totals_, [&](const auto& entry) { return entry.first.rfind(prefix, 0) == 0; });
  }
  totals_[hash] = t;
  if (changed && on_totals_) on_totals_(key_name);
}

void Cluster::add_usage(const std::string& key_name, std::int64_t tokens,
                        std::optional<double> usd) {
  if (tokens == 0 && (!usd || *usd == 0)) return;
  // Counted in the period it was metered in, also when flushed after an outage.
  add_to_hash(key_name, budget_hash(key_name, usage::unix_now()), tokens, usd.value_or(0));
}

void Cluster::add_to_hash(const std::string& key_name, const std::string& hash, std::int64_t tokens,
                          double usd) {
  BudgetTotals delta{tokens, usd};
  auto keep = [this, key_name, hash, delta] {
    Unflushed& u = unflushed_[hash];
    u.key_name = key_name;
    usage::add_to(u.totals.tokens, delta.tokens);
    usage::add_to(u.totals.usd, delta.usd);
  };
  if (!redis_.up()) {
    keep();
    return;
  }
  std::weak_ptr<Cluster> weak = weak_from_this();
  eval(add_usage_, {hash},
       {std::to_string(delta.tokens), usd_text(delta.usd),
        std::to_string(budget_hash_ttl_ms(key_name))},
       [weak, key_name, hash, keep](const Reply* reply) {
         auto self = weak.lock();
         if (!self) return;
         if (!reply || reply->type != Reply::Type::kArray || reply->elements.size() != 2) {
           keep();  // not counted (as far as we know): kept for the next flush
           return;
         }
         self->store_totals(key_name, hash, reply->elements[0], reply->elements[1]);
       });
}

void Cluster::flush_usage() {
  auto pending = std::exchange(unflushed_, {});
  for (const auto& [hash, u] : pending)
    add_to_hash(u.key_name, hash, u.totals.tokens, u.totals.usd);
}

std::optional<BudgetTotals> Cluster::shared_totals(const std::string& key_name) const {
  if (!redis_.up()) return std::nullopt;
  // The current period's hash only: a total of a period that is over counts no more.
  auto it = totals_.find(budget_hash(key_name, usage::unix_now()));
  if (it == totals_.end()) return std::nullopt;
  return it->second;
}

void Cluster::find_owner(const std::string& call_id,
                         std::function<void(std::optional<Owner>)> done) {
  std::weak_ptr<Cluster> weak = weak_from_this();
  redis_.command({"GET", owner_key(call_id)}, [weak, done = std::move(done)](const Reply* reply) {
    auto self = weak.lock();
    if (!self || !reply || reply->type != Reply::Type::kString) {
      done(std::nullopt);
      return;
    }
    auto tab = reply->str.find('\t');
    if (tab == std::string::npos) {
      done(std::nullopt);
      return;
    }
    Owner owner{reply->str.substr(0, tab), reply->str.substr(tab + 1), false};
    owner.self = owner.instance_id == self->settings_.instance_id;
    done(owner);
  });
}

void Cluster::add_reservation(const std::string& key_name, const std::string& id,
                              std::int64_t tokens, double usd) {
  ReservationInfo r{key_name, settings_.instance_id + "/" + id + "/" + std::to_string(tokens) +
                                  "/" + usd_text(usd)};
  reservations_[id] = r;
  if (redis_.up()) put_reservation(r);
}

void Cluster::put_reservation(const ReservationInfo& r) {
  eval(reserve_, {reserve_key(r.key_name)}, {std::to_string(lease_ms()), r.member}, nullptr);
}

void Cluster::remove_reservation(const std::string& id) {
  auto it = reservations_.find(id);
  if (it == reservations_.end()) return;
  ReservationInfo r = std::move(it->second);
  reservations_.erase(it);
  // While Redis is unreachable it lapses there within lease_seconds (it is no longer renewed).
  if (redis_.up()) redis_.command({"ZREM", reserve_key(r.key_name), r.member}, nullptr);
}

void Cluster::refresh_reservations(const std::string& key_name) {
  std::weak_ptr<Cluster> weak = weak_from_this();
  eval(reserved_, {reserve_key(key_name)}, {}, [weak, key_name](const Reply* reply) {
    auto self = weak.lock();
    if (!self || !reply || reply->type != Reply::Type::kArray) return;
    const std::string mine = self->settings_.instance_id + "/";
    usage::Held others;
    for (const Reply& m : reply->elements) {
      const std::string& member = m.str;
      if (member.rfind(mine, 0) == 0) continue;
      // "<instance>/<id>/<tokens>/<usd>": the last two fields (an instance id may hold '/').
      auto usd_at = member.rfind('/');
      auto tokens_at = usd_at == std::string::npos || usd_at == 0 ? std::string::npos
                                                                  : member.rfind('/', usd_at - 1);
      if (tokens_at == std::string::npos) continue;
      usage::add_to(others.tokens, static_cast<std::int64_t>(g_ascii_strtoll(
                                       member.substr(tokens_at + 1, usd_at - tokens_at - 1).c_str(),
                                       nullptr, 10)));
      usage::add_to(others.usd, g_ascii_strtod(member.c_str() + usd_at + 1, nullptr));
      others.count++;
    }
    self->others_reserved_[key_name] = others;
  });
}

usage::Held Cluster::others_reservations(const std::string& key_name) const {
  if (!redis_.up()) return {};
  auto it = others_reserved_.find(key_name);
  return it == others_reserved_.end() ? usage::Held{} : it->second;
}

void Cluster::on_subscriber_state(bool up) {
  if (up || !key_channel_up_) return;
  key_channel_up_ = false;
  key_channel_lost_ = true;
}

void Cluster::publish_key_change(const std::string& alias) {
  if (!redis_.up()) {
    if (unpublished_.size() < kMaxUnpublished) unpublished_.push_back(alias);
    return;
  }
  std::weak_ptr<Cluster> weak = weak_from_this();
  redis_.command({"PUBLISH", kKeyChannel, alias}, [weak, alias](const Reply* reply) {
    auto self = weak.lock();
    if (!self || (reply && !reply->error())) return;
    // Not sent (Redis went meanwhile): again when it is back.
    if (self->unpublished_.size() < kMaxUnpublished) self->unpublished_.push_back(alias);
  });
}

void Cluster::flush_key_changes() {
  for (const auto& alias : std::exchange(unpublished_, {})) publish_key_change(alias);
}

void Cluster::on_key_change(std::function<void(const std::string& alias)> fn) {
  key_change_handlers_.push_back(std::move(fn));
}

bool Cluster::internal_secret_matches(const char* header) const {
  if (!header) return false;
  const std::string& secret = settings_.internal_secret;
  std::size_t n = strlen(header);
  unsigned char diff = n == secret.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; i++)
    diff |= static_cast<unsigned char>(header[i]) ^
            static_cast<unsigned char>(secret.empty() ? 0 : secret[i % secret.size()]);
  return diff == 0 && !secret.empty();
}

}  // namespace rtgw::cluster
