// SPDX-License-Identifier: MIT
// Cluster mode: the state several gateway instances share in one Redis (SPEC "Scale-out").
//
// Owns, for this instance:
// - its leases: one per live call and WebSocket session, counted per key and globally over every
//   instance. A lease is a member of two sorted sets (`rtgw:leases:global`,
//   `rtgw:leases:key:<key>`) scored by its expiry (Redis's clock); taking one is a Lua script
//   that drops lapsed members, checks both counts and adds, so two instances never both take the
//   last slot. The instance renews its leases every lease_seconds / 3; a dead instance's lapse
//   within lease_seconds.
// - the call id -> owner map (`rtgw:call:<id>` = "<instance_id>\t<advertise_url>", same TTL,
//   kept 10 minutes after the call ends so its final state can still be fetched).
// - the budget counters it adds to (`rtgw:budget:<key>` hash: `tokens` HINCRBY, `usd`
//   HINCRBYFLOAT; for a key with a budget period `rtgw:budget:<key>:<period start>`, the start in
//   unix seconds on the epoch-aligned grid of usage/budget_period.h, so every instance adds to
//   and reads the same period's hash; it expires two periods after it ends) and its cache of every
//   key's shared totals (refreshed at each renewal and returned by every admission; a cached
//   total of a period that is over is not returned).
// - Redis being down: admissions answer kLocal (the caller's local checks decide), leases stay
//   in the local table and are written back when Redis returns (re-registration), increments
//   made meanwhile are kept and flushed then. Nothing here ever ends a call.
//
// - key invalidations (SPEC "Run-time keys"): publish_key_change() PUBLISHes a key's alias on
//   the channel `rtgw:keys`; a dedicated subscriber connection (its own RedisClient, which
//   reconnects with the same bounded backoff and subscribes again) hands each alias heard to the
//   on_key_change() handlers, this instance's own publications included.
//
// Without `cluster` in the config there is no Cluster object at all.
//
// Threads: main loop only. Every callback runs later on the main loop, never inside the call
// that asked (RedisClient's rule).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/redis_client.h"
#include "config/config.h"
#include "usage/budget_reservations.h"
#include "workers/worker_lease.h"

namespace rtgw::cluster {

struct AdmissionRequest {
  std::string id;  // call or session id
  std::string key_name;
  int key_limit = 0;     // the key's max_concurrent_calls (0: none)
  int global_limit = 0;  // limits.max_calls (0: none)
  bool call = false;     // a WebRTC call (gets an owner entry); else a WebSocket session
};

enum class Verdict {
  kAdmitted,    // Redis took the lease: the cluster has room
  kLocal,       // Redis unreachable: the local view decides (the lease is still held locally)
  kKeyFull,     // the key is at max_concurrent_calls over the cluster
  kGlobalFull,  // the cluster is at limits.max_calls
};

class Cluster;

// A live call's or session's lease. Destroying it gives the slot back (in Redis when up, and in
// the local table that re-registration reads).
class Lease : public workers::LeaseAttachment {
 public:
  Lease(std::weak_ptr<Cluster> cluster, std::string id)
      : cluster_(std::move(cluster)), id_(std::move(id)) {}
  ~Lease() override;
  const std::string& id() const { return id_; }

 private:
  std::weak_ptr<Cluster> cluster_;
  std::string id_;
};

struct Owner {
  std::string instance_id;
  std::string url;  // advertise_url
  bool self = false;
};

struct BudgetTotals {
  std::int64_t tokens = 0;
  double usd = 0;
};

class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  explicit Cluster(const config::Config& config);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start();
  // A config reload: the keys whose shared totals are refreshed from now on.
  void set_key_names(std::vector<std::string> names) { key_names_ = std::move(names); }
  bool redis_up() const { return redis_.up(); }
  const config::ClusterConfig& settings() const { return settings_; }
  // Redis commands sent since start (benchmarks, logs).
  std::uint64_t redis_commands() const { return redis_.commands_sent(); }
  std::size_t live_leases() const { return leases_.size(); }

  // Takes a lease for `request`. `done(verdict, lease)`: the lease (for kAdmitted and kLocal)
  // must be kept for the call's or session's life; dropping it releases the slot, also when the
  // requester went away while Redis answered.
  using AdmitFn = std::function<void(Verdict, std::unique_ptr<Lease>)>;
  void admit(const AdmissionRequest& request, AdmitFn done);

  // The instance holding `call_id` (nullopt: not known, or Redis unreachable).
  void find_owner(const std::string& call_id, std::function<void(std::optional<Owner>)> done);

  // A metered turn: adds to the key's shared counters (kept and retried while Redis is down).
  void add_usage(const std::string& key_name, std::int64_t tokens, std::optional<double> usd);
  // The key's shared totals as last read from Redis; nullopt while Redis is unreachable or
  // before the first read.
  std::optional<BudgetTotals> shared_totals(const std::string& key_name) const;
  // Called when fresh totals of a key arrive (to flag the key's live calls over budget).
  void set_on_totals(std::function<void(const std::string& key_name)> fn) {
    on_totals_ = std::move(fn);
  }

  // Budget reservations (usage/budget_reservations.h) are counted where the budget counters
  // live: each open one of this instance is a member of `rtgw:reserve:<key>` ("<instance>/<id>/
  // <tokens>/<usd>") scored by its expiry on Redis's clock, renewed with the leases, so those of
  // an instance that died lapse within lease_seconds. Added again when Redis comes back.
  void add_reservation(const std::string& key_name, const std::string& id, std::int64_t tokens,
                       double usd);
  void remove_reservation(const std::string& id);
  // The other instances' open reservations of the key as last read (each renewal re-reads them);
  // nothing while Redis is unreachable.
  usage::Held others_reservations(const std::string& key_name) const;

  // A key changed here (created, updated, revoked, deleted, expired): every instance's
  // on_key_change handlers hear `alias` (this one's too), normally within milliseconds. While
  // Redis is unreachable the publication waits (up to kMaxUnpublished aliases) and is sent when
  // it is back.
  void publish_key_change(const std::string& alias);
  // `fn(alias)` for each alias published by any instance. After the subscription was lost (Redis
  // down or restarted) and comes back, `fn("")` once: changes may have been missed meanwhile, so
  // "" means every key (drop the whole cache).
  void on_key_change(std::function<void(const std::string& alias)> fn);
  // The subscriber connection is subscribed (tests, readiness).
  bool key_channel_up() const { return key_channel_up_; }
  static constexpr const char* kKeyChannel = "rtgw:keys";
  static constexpr std::size_t kMaxUnpublished = 1000;

  // Where a key's budget period comes from (the same lookup as the usage ledger's, so both count
  // the same window); by default the config keys' budget_duration.
  void set_period_lookup(std::function<std::optional<std::int64_t>(const std::string&)> fn) {
    period_of_ = std::move(fn);
  }

  // Is `header` (X-RTGW-Internal) this cluster's internal secret? Constant time.
  bool internal_secret_matches(const char* header) const;

 private:
  friend class Lease;
  struct LeaseInfo {
    std::string key_name;
    bool call = false;
    // Its admission script has not answered yet: not renewed (a renewal must not add it before
    // the script counted it).
    bool admitting = true;
  };
  struct Script {
    std::string text;
    std::string sha;
  };

  void release(const std::string& id);
  void on_redis_state(bool up);
  void renew_all();
  void refresh_totals();
  void flush_usage();
  void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
            ReplyFn done);
  void store_totals(const std::string& key_name, const std::string& hash, const Reply& tokens,
                    const Reply& usd);
  std::string member(const std::string& id) const { return settings_.instance_id + "/" + id; }
  std::string owner_value() const { return settings_.instance_id + "\t" + settings_.advertise_url; }
  std::int64_t lease_ms() const { return settings_.lease_seconds * 1000LL; }

  config::ClusterConfig settings_;
  std::vector<std::string> key_names_;  // configured keys (their totals are refreshed)
  // Each key's budget period (seconds; nullopt: none): the config keys' by default.
  std::function<std::optional<std::int64_t>(const std::string&)> period_of_;
  // The budget hash of `key_name` for the period holding `unix_time` (usage/budget_period.h), and
  // how long it is kept (ms; 0: no expiry, a key without a period).
  std::string budget_hash(const std::string& key_name, double unix_time) const;
  std::int64_t budget_hash_ttl_ms(const std::string& key_name) const;
  void add_to_hash(const std::string& key_name, const std::string& hash, std::int64_t tokens,
                   double usd);
  RedisClient redis_;
  Script acquire_;
  Script renew_;
  Script release_;
  Script add_usage_;
  Script reserve_;
  Script reserved_;
  std::map<std::string, LeaseInfo> leases_;
  std::map<std::string, BudgetTotals> totals_;  // from Redis, by budget hash
  struct Unflushed {
    std::string key_name;
    BudgetTotals totals;
  };
  std::map<std::string, Unflushed> unflushed_;  // metered while Redis was unreachable, by hash
  struct ReservationInfo {
    std::string key_name;
    std::string member;
  };
  void put_reservation(const ReservationInfo& r);
  void refresh_reservations(const std::string& key_name);
  std::map<std::string, ReservationInfo> reservations_;  // this instance's, by id
  std::map<std::string, usage::Held> others_reserved_;   // the other instances', from Redis
  std::function<void(const std::string&)> on_totals_;
  SourceGuard renew_timer_;
  // Key invalidations: the subscriber connection, its handlers, publications waiting for Redis.
  void on_subscriber_state(bool up);
  void flush_key_changes();
  RedisClient subscriber_;
  std::vector<std::function<void(const std::string&)>> key_change_handlers_;
  std::vector<std::string> unpublished_;
  bool key_channel_up_ = false;
  bool key_channel_lost_ = false;  // it was subscribed once and went down since
};

}  // namespace rtgw::cluster
