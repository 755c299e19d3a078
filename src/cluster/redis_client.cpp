// SPDX-License-Identifier: MIT
#include "cluster/redis_client.h"

#include <gio/gio.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <utility>

#include "common/main_thread.h"

namespace rtgw::cluster {
namespace {

constexpr int kMaxBackoffMs = 2000;
constexpr guint kDeadlineCheckMs = 100;

// The hiredis event hooks on a GSource of our own. (hiredis's adapters/glib.h dispatches a read
// after a write even when the write freed the context; this one forgets the context in the
// cleanup hook, which hiredis runs before freeing it.)
struct RedisSource {
  GSource base;
  redisAsyncContext* ac;
  gpointer tag;
  GIOCondition events;
};

void update_events(RedisSource* s) {
  if (s->tag && !g_source_is_destroyed(&s->base))
    g_source_modify_unix_fd(&s->base, s->tag, s->events);
}

gboolean dispatch(GSource* source, GSourceFunc, gpointer) {
  auto* s = reinterpret_cast<RedisSource*>(source);
  if (!s->ac || !s->tag) return G_SOURCE_CONTINUE;
  GIOCondition rev = g_source_query_unix_fd(source, s->tag);
  bool failed = rev & (G_IO_ERR | G_IO_HUP);
  if (s->ac && ((rev & G_IO_OUT) || (failed && (s->events & G_IO_OUT))))
    redisAsyncHandleWrite(s->ac);
  if (s->ac && ((rev & G_IO_IN) || failed)) redisAsyncHandleRead(s->ac);
  return G_SOURCE_CONTINUE;
}

GSourceFuncs kFuncs = {nullptr, nullptr, dispatch, nullptr, nullptr, nullptr};

GSource* attach_source(redisAsyncContext* ac) {
  GSource* source = g_source_new(&kFuncs, sizeof(RedisSource));
  auto* s = reinterpret_cast<RedisSource*>(source);
  s->ac = ac;
  s->events = static_cast<GIOCondition>(0);
  s->tag = g_source_add_unix_fd(source, ac->c.fd, s->events);
  ac->ev.data = s;
  ac->ev.addRead = [](void* d) {
    auto* s = static_cast<RedisSource*>(d);
    s->events = static_cast<GIOCondition>(s->events | G_IO_IN);
    update_events(s);
  };
  ac->ev.delRead = [](void* d) {
    auto* s = static_cast<RedisSource*>(d);
    s->events = static_cast<GIOCondition>(s->events & ~G_IO_IN);
    update_events(s);
  };
  ac->ev.addWrite = [](void* d) {
    auto* s = static_cast<RedisSource*>(d);
    s->events = static_cast<GIOCondition>(s->events | G_IO_OUT);
    update_events(s);
  };
  ac->ev.delWrite = [](void* d) {
    auto* s = static_cast<RedisSource*>(d);
    s->events = static_cast<GIOCondition>(s->events & ~G_IO_OUT);
    update_events(s);
  };
  ac->ev.cleanup = [](void* d) {
    auto* s = static_cast<RedisSource*>(d);
    s->ac = nullptr;
    if (s->tag && !g_source_is_destroyed(&s->base)) g_source_remove_unix_fd(&s->base, s->tag);
    s->tag = nullptr;
  };
  g_source_attach(source, nullptr);
  return source;
}

Reply copy_reply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      for (size_t i = 0; i < r->elements; i++) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

}  // namespace

long long Reply::as_integer(long long fallback) const {
  if (type == Type::kInteger) return integer;
  if (type == Type::kString || type == Type::kStatus) {
    char* end = nullptr;
    long long v = std::strtoll(str.c_str(), &end, 10);
    if (end && *end == '\0' && !str.empty()) return v;
  }
  return fallback;
}

double Reply::as_double(double fallback) const {
  if (type == Type::kInteger) return static_cast<double>(integer);
  if (type == Type::kString || type == Type::kStatus) {
    char* end = nullptr;
    double v = g_ascii_strtod(str.c_str(), &end);
    if (end && *end == '\0' && !str.empty()) return v;
  }
  return fallback;
}

void free_async_context(redisAsyncContext* ac) {
  if (ac) redisAsyncFree(ac);
}

RedisClient::RedisClient(Options options, std::function<void(bool up)> on_state)
    : options_(std::move(options)), on_state_(std::move(on_state)) {}

RedisClient::~RedisClient() {
  *alive_ = false;
  pending_.clear();  // nobody is left to tell
  if (resolving_) g_cancellable_cancel(resolving_.get());
  if (redisAsyncContext* ac = std::exchange(ac_, nullptr)) {
    ac->data = nullptr;
    redisAsyncFree(ac);
  }
  if (source_) g_source_destroy(source_.get());
}

void RedisClient::start() { resolve(); }

void RedisClient::resolve() {
  // An address is used as it is; a name is resolved without blocking the loop.
  if (g_hostname_is_ip_address(options_.host.c_str())) {
    connect_to(options_.host);
    return;
  }
  resolving_ = Ref<GCancellable>::adopt(g_cancellable_new());
  std::weak_ptr<bool> alive = alive_;
  // The closure holds a weak token: a client destroyed meanwhile is not touched.
  auto on_resolved = [this, alive](GList* addresses, GError* error) {
    if (!alive.lock()) return;
    resolving_.reset();
    if (!addresses) {
      lost(std::string("cannot resolve ") + options_.host + ": " +
           (error ? error->message : "no address"));
      return;
    }
    UniqueStr text(g_inet_address_to_string(G_INET_ADDRESS(addresses->data)));
    connect_to(text.get());
  };
  auto ready = async_ready([on_resolved](GObject* source, GAsyncResult* result) {
    UniqueError err;
    GList* list = g_resolver_lookup_by_name_finish(G_RESOLVER(source), result, ErrorOut(err));
    on_resolved(list, err.get());
    if (list) g_resolver_free_addresses(list);
  });
  g_resolver_lookup_by_name_async(Ref<GResolver>::adopt(g_resolver_get_default()).get(),
                                  options_.host.c_str(), resolving_.get(), ready.callback,
                                  ready.user_data);
}

void RedisClient::connect_to(const std::string& address) {
  if (source_) {
    g_source_destroy(source_.get());
    source_.reset();
  }
  redisAsyncContext* ac = redisAsyncConnect(address.c_str(), options_.port);
  if (!ac) {
    lost("cannot allocate a Redis context");
    return;
  }
  if (ac->err) {
    std::string why = ac->errstr;
    redisAsyncFree(ac);
    lost(why);
    return;
  }
  ac_ = ac;
  ac->data = this;
  source_ = Ref<GSource>::adopt(attach_source(ac));
  connected_ = false;
  redisAsyncSetConnectCallback(ac, &RedisClient::on_connect);
  redisAsyncSetDisconnectCallback(ac, &RedisClient::on_disconnect);
  // The handshake is queued now and written once connected; the connect has the same deadline.
  auto handshake_failed = [this](const Reply* reply) {
    if (!reply || reply->error()) {
      g_warning("cluster: Redis %s:%d refused the handshake: %s", options_.host.c_str(),
                options_.port, reply ? reply->str.c_str() : "no reply");
    }
  };
  if (!options_.password.empty()) {
    if (options_.user.empty())
      send_raw({"AUTH", options_.password}, handshake_failed);
    else
      send_raw({"AUTH", options_.user, options_.password}, handshake_failed);
  }
  if (options_.db != 0) send_raw({"SELECT", std::to_string(options_.db)}, handshake_failed);
  send_raw({"PING"}, [this](const Reply* reply) {
    if (reply && !reply->error()) {
      backoff_ms_ = 200;
      send_subscriptions();
      set_up(true);
    }
  });
  // The PING carries the connect deadline.
  if (!pending_.empty())
    pending_.rbegin()->second.deadline_us =
        g_get_monotonic_time() + options_.connect_timeout_ms * 1000LL;
  if (!deadline_timer_)
    deadline_timer_ = SourceGuard(g_timeout_add(
        kDeadlineCheckMs,
        [](gpointer data) -> gboolean {
          return static_cast<RedisClient*>(data)->check_deadlines() ? G_SOURCE_CONTINUE
                                                                    : G_SOURCE_REMOVE;
        },
        this));
}

bool RedisClient::check_deadlines() {
  if (!ac_) {
    deadline_timer_.forget();
    return false;
  }
  std::int64_t now = g_get_monotonic_time();
  for (const auto& [id, p] : pending_) {
    if (p.deadline_us && p.deadline_us < now) {
      redisAsyncContext* ac = std::exchange(ac_, nullptr);
      ac->data = nullptr;  // its callbacks no longer reach us
      redisAsyncFree(ac);
      deadline_timer_.forget();
      lost(connected_ ? "no reply within the deadline" : "connect timed out");
      return false;
    }
  }
  return true;
}

void RedisClient::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self) return;
  if (status != REDIS_OK) {
    // hiredis frees the context after this returns.
    self->ac_ = nullptr;
    self->lost(ac->errstr);
    return;
  }
  self->connected_ = true;
}

void RedisClient::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self) return;
  self->ac_ = nullptr;
  self->lost(status == REDIS_OK ? "connection closed" : ac->errstr);
}

void RedisClient::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self) return;
  auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(privdata));
  if (id == kSubscriptionId) {
    // A subscription's confirmation or message (hiredis keeps its callback while subscribed;
    // a null reply: the connection went, and lost() reconnects and subscribes again).
    if (reply) self->on_subscription_reply(copy_reply(static_cast<redisReply*>(reply)));
    return;
  }
  if (!reply) {
    self->complete(id, nullptr);
    return;
  }
  Reply copy = copy_reply(static_cast<redisReply*>(reply));
  self->complete(id, &copy);
}

void RedisClient::complete(std::uint64_t id, const Reply* reply) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  ReplyFn done = std::move(it->second.done);
  pending_.erase(it);
  try {
    if (done) done(reply);
  } catch (const std::exception& e) {
    g_warning("cluster: Redis reply handler: %s", e.what());
  }
}

void RedisClient::fail_later(ReplyFn done) {
  std::weak_ptr<bool> alive = alive_;
  post_to_main([done = std::move(done), alive] {
    if (alive.lock() && done) done(nullptr);
  });
}

void RedisClient::command(const std::vector<std::string>& argv, ReplyFn done) {
  if (!up_ || !ac_) {
    fail_later(std::move(done));
    return;
  }
  send_raw(argv, std::move(done));
}

void RedisClient::send_raw(const std::vector<std::string>& argv, ReplyFn done) {
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  std::uint64_t id = next_id_++;
  pending_[id] = {std::move(done), g_get_monotonic_time() + options_.command_timeout_ms * 1000LL};
  commands_sent_++;
  if (redisAsyncCommandArgv(
          ac_, &RedisClient::on_reply, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)),
          static_cast<int>(args.size()), args.data(), lengths.data()) != REDIS_OK) {
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      ReplyFn d = std::move(it->second.done);
      pending_.erase(it);
      fail_later(std::move(d));
    }
  }
}

void RedisClient::subscribe(const std::string& channel, MessageFn on_message,
                            std::function<void()> on_subscribed) {
  subscriptions_[channel] = {std::move(on_message), std::move(on_subscribed)};
}

void RedisClient::send_subscriptions() {
  if (!ac_) return;
  for (const auto& [channel, sub] : subscriptions_) {
    const char* args[] = {"SUBSCRIBE", channel.c_str()};
    size_t lengths[] = {9, channel.size()};
    commands_sent_++;
    if (redisAsyncCommandArgv(ac_, &RedisClient::on_reply,
                              reinterpret_cast<void*>(static_cast<std::uintptr_t>(kSubscriptionId)),
                              2, args, lengths) != REDIS_OK)
      g_warning("cluster: Redis SUBSCRIBE %s could not be sent", channel.c_str());
  }
}

void RedisClient::on_subscription_reply(const Reply& reply) {
  // ["message", channel, payload] or ["subscribe", channel, count].
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 3) return;
  const std::string& kind = reply.elements[0].str;
  auto it = subscriptions_.find(reply.elements[1].str);
  if (it == subscriptions_.end()) return;
  // Copied: a handler may add subscriptions (rehashing the map) or drop this client.
  Subscription sub = it->second;
  try {
    if (kind == "message" && sub.on_message)
      sub.on_message(reply.elements[2].str);
    else if (kind == "subscribe" && sub.on_subscribed)
      sub.on_subscribed();
  } catch (const std::exception& e) {
    g_warning("cluster: Redis subscription handler: %s", e.what());
  }
}

void RedisClient::lost(const std::string& why) {
  connected_ = false;
  if (source_) g_source_destroy(source_.get());  // the Ref is dropped at the next connect
  // What was waiting gets its null reply from the loop, not from inside hiredis.
  auto pending = std::exchange(pending_, {});
  for (auto& [id, p] : pending) fail_later(std::move(p.done));
  if ((up_ || !was_up_once_) && !options_.label.empty())
    g_message("cluster: %s: Redis %s:%d lost (%s), connecting again", options_.label.c_str(),
              options_.host.c_str(), options_.port, why.c_str());
  else if (up_ || !was_up_once_)
    g_warning(
        "cluster: Redis %s:%d unreachable (%s): serving with this instance's local view, "
        "reconnecting",
        options_.host.c_str(), options_.port, why.c_str());
  was_up_once_ = true;  // say it once per outage
  set_up(false);
  schedule_reconnect();
}

void RedisClient::schedule_reconnect() {
  int delay = backoff_ms_;
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
  reconnect_timer_ = SourceGuard(g_timeout_add(
      static_cast<guint>(delay),
      [](gpointer data) -> gboolean {
        auto* self = static_cast<RedisClient*>(data);
        self->reconnect_timer_.forget();
        self->resolve();
        return G_SOURCE_REMOVE;
      },
      this));
}

void RedisClient::set_up(bool up) {
  if (up == up_) return;
  up_ = up;
  if (up)
    g_message("cluster: %s%sRedis %s:%d reachable", options_.label.c_str(),
              options_.label.empty() ? "" : ": ", options_.host.c_str(), options_.port);
  if (on_state_) on_state_(up);
}

}  // namespace rtgw::cluster
