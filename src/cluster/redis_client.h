// SPDX-License-Identifier: MIT
// One asynchronous connection to Redis (libhiredis's async API) driven by the GLib main loop.
//
// Owns: the hiredis async context and the GSource that polls its socket; resolving the host
// name (GResolver, asynchronous: hiredis's own connect would call a blocking getaddrinfo, so it
// is only ever given an address), the non-blocking connect and its timeout, AUTH and SELECT, the
// replies' callbacks, a per-command deadline (a Redis that stops answering is dropped like a
// closed one), and reconnecting with backoff (200 ms doubling to 2 s).
//
// Subscriber mode (subscribe()): a connection of its own that, once the handshake answered,
// SUBSCRIBEs to its channels (again after every reconnection) and sends nothing else; each
// message goes to the channel's handler on the main loop.
//
// Every `done` runs exactly once on the main loop and never inside the call that queued it: with
// the reply, or with nullptr when Redis is down, the connection drops before the reply, or the
// deadline passes. `on_state(up)` reports each change of reachability (up once AUTH, SELECT and a
// PING answered).
//
// Threads: main loop only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/ref.h"

struct redisAsyncContext;

namespace rtgw::cluster {

// A Redis reply, copied out of hiredis's (which hiredis frees after the callback).
struct Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  long long integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<Reply> elements;

  bool error() const { return type == Type::kError; }
  // An integer reply, or a string holding one; `fallback` otherwise.
  long long as_integer(long long fallback = 0) const;
  double as_double(double fallback = 0) const;
};

using ReplyFn = std::function<void(const Reply* reply)>;

class RedisClient {
 public:
  struct Options {
    std::string host;
    int port = 6379;
    int db = 0;
    std::string user;  // with a password: AUTH user password (Redis 6 ACLs)
    std::string password;
    int connect_timeout_ms = 2000;
    int command_timeout_ms = 2000;
    // "": the instance's command connection (its outages are logged as warnings, once each);
    // else a secondary connection's name in its own, milder log lines ("key channel").
    std::string label;
  };

  RedisClient(Options options, std::function<void(bool up)> on_state);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Starts connecting (and reconnecting for as long as the client lives).
  void start();
  bool up() const { return up_; }
  // Queues a command (each argument binary-safe). See the header for `done`.
  void command(const std::vector<std::string>& argv, ReplyFn done);
  // Commands sent since start (for the benchmark and the logs).
  std::uint64_t commands_sent() const { return commands_sent_; }
  // Makes this a subscriber connection (see the header): `on_message(payload)` for each message
  // on `channel`, `on_subscribed()` each time the SUBSCRIBE is confirmed (first time and after
  // each reconnection). Call before start(); use no command() on such a client.
  using MessageFn = std::function<void(const std::string& payload)>;
  void subscribe(const std::string& channel, MessageFn on_message,
                 std::function<void()> on_subscribed = {});

 private:
  struct Pending {
    ReplyFn done;
    std::int64_t deadline_us = 0;
  };

  void resolve();
  void connect_to(const std::string& address);
  void send_raw(const std::vector<std::string>& argv, ReplyFn done);
  // The connection is gone (or never came): fail what is pending, report down, retry later.
  void lost(const std::string& why);
  void schedule_reconnect();
  void set_up(bool up);
  void complete(std::uint64_t id, const Reply* reply);
  // Runs `done(nullptr)` from an idle callback.
  void fail_later(ReplyFn done);
  bool check_deadlines();

  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  // The privdata of subscription replies (command ids start at 1).
  static constexpr std::uint64_t kSubscriptionId = 0;
  void send_subscriptions();
  void on_subscription_reply(const Reply& reply);

  Options options_;
  std::function<void(bool)> on_state_;
  redisAsyncContext* ac_ = nullptr;  // owned by hiredis once connected; freed by drop()
  Ref<GSource> source_;              // polls ac_'s socket
  bool connected_ = false;           // TCP up (the handshake may still be running)
  bool up_ = false;                  // handshake done
  bool was_up_once_ = false;
  int backoff_ms_ = 200;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Pending> pending_;
  std::uint64_t commands_sent_ = 0;
  struct Subscription {
    MessageFn on_message;
    std::function<void()> on_subscribed;
  };
  std::map<std::string, Subscription> subscriptions_;  // by channel
  SourceGuard reconnect_timer_;
  SourceGuard deadline_timer_;
  Ref<GCancellable> resolving_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Drops a hiredis async context (all its pending callbacks run with a null reply first).
void free_async_context(redisAsyncContext* ac);

}  // namespace rtgw::cluster
