// SPDX-License-Identifier: MIT
#include "app/gateway.h"

#include <glib-unix.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <map>
#include <set>
#include <stdexcept>

#include "app/config_checks.h"
#include "common/api_error.h"
#include "common/json.h"
#include "common/main_thread.h"
#include "common/pipeline.h"
#include "common/pipeline_reaper.h"
#include "config/capacity.h"
#include "config/reload_diff.h"
#include "recording/call_recorder.h"
#include "recording/recording_plan.h"
#include "rtevents/rtevents.h"
#include "workers/echo_worker.h"

#ifndef RTGW_DATA_DIR
#define RTGW_DATA_DIR "data"
#endif
#ifndef RTGW_DEFAULT_PIPELINE
#define RTGW_DEFAULT_PIPELINE "pipelines/call.pipeline"
#endif
#ifndef RTGW_DEFAULT_SESSION_PIPELINE
#define RTGW_DEFAULT_SESSION_PIPELINE "pipelines/session.pipeline"
#endif

namespace rtgw::app {
namespace {
constexpr guint kFinishFlushMs = 100;

// Once the main loop has stopped, GLib no longer dispatches signals: a SIGTERM or SIGINT during
// the last bounded waits (the usage ledger's flush) ends the process at once.
void exit_at_once(int) {
  static const char kMessage[] =
      "realtime-gateway: another signal during shutdown: exiting now (usage records not yet in "
      "PostgreSQL stay in the JSONL log, replayed into the table at the next start)\n";
  ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
  _exit(1);
}

// RTGW_LOOP_STALL_PROBE=1 (measurement aid): a 10 ms timer logs each time the main loop ran it
// over 20 ms late, and the worst lateness when the gateway stops.
class StallProbe {
 public:
  static constexpr guint kPeriodMs = 10;
  static constexpr gint64 kReportLateUs = 20 * 1000;  // each stall over this is logged
  StallProbe() {
    if (!g_getenv("RTGW_LOOP_STALL_PROBE")) return;
    last_us_ = g_get_monotonic_time();
    source_ = SourceGuard(g_timeout_add(
        kPeriodMs,
        [](gpointer data) -> gboolean {
          auto* self = static_cast<StallProbe*>(data);
          gint64 now = g_get_monotonic_time();
          gint64 late_us = now - self->last_us_ - kPeriodMs * 1000;
          if (late_us > kReportLateUs)
            g_message("main loop stall probe: timer ran %.1f ms late", late_us / 1000.0);
          self->max_late_us_ = std::max(self->max_late_us_, late_us);
          self->last_us_ = now;
          return G_SOURCE_CONTINUE;
        },
        this));
  }
  ~StallProbe() {
    if (source_)
      g_message("main loop stall probe: longest lateness %.1f ms", max_late_us_ / 1000.0);
  }

 private:
  gint64 last_us_ = 0;
  gint64 max_late_us_ = 0;
  SourceGuard source_;
};
}  // namespace

std::string default_pipeline_file() { return RTGW_DEFAULT_PIPELINE; }
std::string default_session_pipeline_file() { return RTGW_DEFAULT_SESSION_PIPELINE; }

std::vector<std::string> resolve_interfaces(const std::vector<std::string>& names, bool ipv6) {
  std::vector<std::string> addresses;
  if (names.empty()) return addresses;
  struct ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) throw std::runtime_error("webrtc.ice_interfaces: getifaddrs failed");
  std::unique_ptr<struct ifaddrs, decltype(&freeifaddrs)> owned(list, freeifaddrs);
  for (const auto& name : names) {
    bool found = false;
    for (auto* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr || name != i->ifa_name) continue;
      int family = i->ifa_addr->sa_family;
      if (family != AF_INET && !(family == AF_INET6 && ipv6)) continue;
      auto address = Ref<GSocketAddress>::adopt(g_socket_address_new_from_native(
          i->ifa_addr, family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
      auto* inet = g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(address.get()));
      if (family == AF_INET6 && g_inet_address_get_is_link_local(inet)) continue;
      UniqueStr text(g_inet_address_to_string(inet));
      addresses.push_back(text.get());
      found = true;
    }
    if (!found)
      throw std::runtime_error("webrtc.ice_interfaces: no interface '" + name +
                               "' with a usable address on this host");
  }
  return addresses;
}

namespace {
// Each key's budget period (usage/budget_period.h), config and virtual keys alike, for the usage
// ledger's and the cluster's totals.
usage::PeriodLookup budget_periods(const auth::KeyBook& key_book) {
  return [&key_book](const std::string& key_name) -> std::optional<std::int64_t> {
    const config::KeyConfig* key = key_book.find(key_name);
    return key ? key->budget_duration_seconds : std::nullopt;
  };
}

// The values derived from the config at start-up (not keys of their own): the addresses of
// webrtc.ice_interfaces.
config::Config with_start_up_values(config::Config config) {
  config.webrtc.ice_addresses =
      resolve_interfaces(config.webrtc.ice_interfaces, config.webrtc.ice_ipv6);
  return config;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string reload_answer(std::uint64_t generation, const std::vector<std::string>& changed,
                          const std::vector<std::string>& restart_required) {
  auto list = [](const std::vector<std::string>& items) {
    auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
    JsonArray* array = json_array_new();
    json_node_take_array(node.get(), array);
    for (const auto& item : items) json_array_add_string_element(array, item.c_str());
    return node;
  };
  json::ObjectBuilder out;
  out.set("generation", static_cast<gint64>(generation))
      .set_node("changed", list(changed))
      .set_node("restart_required", list(restart_required));
  return out.str();
}
}  // namespace

Gateway::Gateway(config::Config initial)
    : snapshots_(with_start_up_values(std::move(initial))),
      pipeline_description_(load_pipeline_description(
          config().pipeline_file.empty() ? default_pipeline_file() : config().pipeline_file)),
      session_pipeline_description_(load_pipeline_description(
          config().websocket.pipeline_file.empty() ? default_session_pipeline_file()
                                                   : config().websocket.pipeline_file)),
      auth_(snapshots_),
      key_book_(snapshots_),
      workers_(config()),
      usage_(config().usage_log, budget_periods(key_book_)),
      accounting_(snapshots_, usage_, metrics_, calls_, sessions_),
      loop_(Ref<GMainLoop>::adopt(g_main_loop_new(nullptr, FALSE))) {
  calls::check_call_description(pipeline_description_);
  events::check_session_description(session_pipeline_description_);
  check_policy(config().policy_json);
  if (!config().recording.dir.empty()) {
    recording::check_dir(config().recording.dir);  // created now, or the gateway does not start
    recording_retention_ = std::make_unique<recording::RetentionSweeper>(
        config().recording.dir, config().recording.retention_days);
  }
  if (!config().webrtc.ice_addresses.empty()) {
    std::string joined;
    for (const auto& a : config().webrtc.ice_addresses) joined += (joined.empty() ? "" : ", ") + a;
    g_message("ICE gathers only on %s", joined.c_str());
  }
  // The process-wide DTLS certificate is generated when the first dtlsdec is made (~100 ms of
  // RSA key generation): pay it at start-up, not in the first caller's set-up time.
  if (auto dtls = Ref<GstElement>::sink(gst_element_factory_make("dtlsdec", nullptr)); !dtls)
    throw std::runtime_error("the dtlsdec element is missing (gstreamer1.0-plugins-bad)");
  workers_.set_builtin("echo", std::make_shared<workers::EchoWorker>(config().webrtc));
  calls_.set_observer(&accounting_);
  sessions_.set_observer(&accounting_);
  // The one report path: each call's and session's EventRelay reports its turns and decisions
  // straight to the accounting (events/relay_observer.h).
  calls_.set_relay_observer(&accounting_);
  sessions_.set_relay_observer(&accounting_);
  accounting_.set_console_feed(&console_feed_);
  metrics_.set_collector([this](metrics::Registry& m) { collect_gauges(m); });
  if (config().telemetry.enabled()) {
    tracer_ = std::make_unique<telemetry::Tracer>(snapshots_, metrics_);
    accounting_.set_tracer(tracer_.get());
  }
  if (usage_.replayed_records())
    g_message("usage log %s: %zu records replayed for budgets", config().usage_log.c_str(),
              usage_.replayed_records());
  accounting_.set_key_book(&key_book_);
  // The key store first: the ledger's budget replay needs the virtual keys' budget periods.
  if (config().auth.key_store == "postgres") start_key_store();
  if (!config().usage_postgres_url.empty()) start_postgres_ledger();
  if (config().cluster.enabled) {
    cluster_ = std::make_shared<cluster::Cluster>(config());
    accounting_.set_cluster(cluster_.get());
    cluster_->set_period_lookup(budget_periods(key_book_));
    cluster_->set_on_totals([this](const std::string& key) { accounting_.enforce_budget(key); });
    if (keys_) announce_key_changes_on(*cluster_);
  }
  server_ = std::make_unique<http::Server>(
      http::Services{snapshots_, auth_, calls_, workers_, metrics_, sessions_,
                     pipeline_description_, session_pipeline_description_,
                     [this](const std::string& key) { return accounting_.over_budget(key); },
                     config().data_dir.empty() ? RTGW_DATA_DIR : config().data_dir,
                     /*usage_report=*/{}, cluster_.get(), keys_.get()});
  server_->set_tracer(tracer_.get());
  if (config().transcripts.any()) {
    transcripts_ = std::make_shared<transcripts::TranscriptStore>(
        config().transcripts, transcripts::TranscriptStore::log_path_for(config()));
    if (postgres_)
      transcripts_->set_ledger(postgres_.get());
    else if (transcripts::TranscriptStore::log_path_for(config()).empty())
      g_warning(
          "transcripts: neither usage.postgres_url, usage.log nor transcripts.log is set: "
          "transcribed calls store nothing");
    server_->set_transcripts(transcripts_);
  }
  server_->set_console_feed(&console_feed_);
  server_->set_admin_reload([this]() -> std::string {
    ReloadOutcome r = reload("POST /admin/reload");
    if (!r.ok) throw ApiError(400, "invalid_request_error", "invalid_config", r.error);
    return reload_answer(r.generation, r.changed, r.restart_required);
  });
  metrics_.add(metrics::kConfigReloadsTotal, {"ok"}, 0);
  metrics_.add(metrics::kConfigReloadsTotal, {"error"}, 0);
  server_->set_response_gate(
      [this](const std::string& key, const std::string& model, std::string* why) {
        return accounting_.reserve_response(key, model, why);
      });
  // GET /v1/usage: the PostgreSQL table when the ledger is configured (every instance's turns,
  // queried on the ledger's writer thread; 503 while the database is down), else the usage log
  // when there is one (scanned off the main loop), else the ledger's in-memory window of this
  // process's last turns (answered on the next main-loop turn).
  if (postgres_)
    server_->set_usage_report(
        [this](usage::UsageQuery query, std::function<void(usage::UsageReply)> done) {
          return postgres_->report(std::move(query), std::move(done));
        });
  else if (config().usage_log.empty())
    server_->set_usage_report(
        [this](usage::UsageQuery query, std::function<void(usage::UsageReply)> done) {
          post_to_main([groups = usage_.memory_report(query), done = std::move(done)] {
            done({groups, std::nullopt});
          });
          return true;
        });
}

Gateway::~Gateway() = default;

void Gateway::start_postgres_ledger() {
  usage::PostgresLedger::Options options;
  options.conninfo = config().usage_postgres_url;
  options.buffer_records = static_cast<std::size_t>(config().usage_postgres_buffer_records);
  // The `instance` column: the cluster's instance id when clustered, else the host name.
  options.instance = config().cluster.enabled ? config().cluster.instance_id : g_get_host_name();
  // One deadline for a connection, a statement and a report (at least 1 s).
  options.timeout = std::chrono::seconds(std::max(1, config().usage_postgres_timeout_seconds));
  // The log's lines from before this process go into the table first (records buffered at a
  // crash or a shutdown), so the budget replay counts each record once.
  options.log_path = config().usage_log;
  options.log_bytes = usage_.replayed_bytes();
  for (const auto& key : config().auth.keys)
    if (key.budget_duration_seconds)
      options.budget_periods[key.name] = *key.budget_duration_seconds;
  if (keys_)  // virtual keys loaded at start-up (those made later are counted from their period)
    for (const auto* entry :
         keys_->directory().page(1, static_cast<int>(keys_->directory().size())))
      if (entry->config.budget_duration_seconds)
        options.budget_periods[entry->config.name] = *entry->config.budget_duration_seconds;
  postgres_ = std::make_unique<usage::PostgresLedger>(options);
  metrics_.add(metrics::kUsageLedgerDroppedTotal, {"buffer_full"}, 0);
  metrics_.add(metrics::kUsageLedgerDroppedTotal, {"rejected"}, 0);
  usage_.set_sink(
      [this](const usage::UsageRecord& record, double unix_time, std::uint64_t log_end) {
        if (!postgres_->offer(record, unix_time, log_end))
          metrics_.add(metrics::kUsageLedgerDroppedTotal, {"buffer_full"});
      });
  // Budgets: the table holds every instance's records and, once the log's tail is in, this log's
  // too; each key starts from the table's total (plus the log lines it refused).
  int wait = config().usage_postgres_timeout_seconds;
  if (auto totals = postgres_->wait_for_replay(std::chrono::seconds(wait))) {
    usage_.merge_replayed(*totals);
    return;
  }
  g_warning(
      "usage ledger: PostgreSQL did not answer within %d s: budgets start from the usage log's "
      "totals until it does",
      wait);
  postgres_->set_on_late_replay([this](const usage::TotalsByKey& totals) {
    usage_.merge_replayed(totals);
    g_message("usage ledger: budgets merged with the totals of %zu key(s) from PostgreSQL",
              totals.size());
  });
}

void Gateway::start_key_store() {
  keys::KeyManager::Options options;
  options.store.conninfo = config().auth.key_store_url.empty() ? config().usage_postgres_url
                                                               : config().auth.key_store_url;
  options.store.timeout =
      std::chrono::seconds(std::max(1, config().usage_postgres_timeout_seconds));
  options.store.instance =
      config().cluster.enabled ? config().cluster.instance_id : g_get_host_name();
  options.cache_seconds = config().auth.key_cache_seconds;
  for (const auto& key : config().auth.keys) options.config_names.insert(key.name);
  options.default_max_calls = std::max(config().limits.max_calls_per_key, 0);
  keys_ = std::make_unique<keys::KeyManager>(options);
  keys_->start();
  auth_.set_key_directory(&keys_->directory());
  key_book_.set_directory(&keys_->directory());
  keys_->directory().on_change([this](const keys::KeyChange& change) { on_key_change(change); });
}

void Gateway::announce_key_changes_on(cluster::Cluster& cluster) {
  keys_->set_publish([&cluster](const std::string& alias) { cluster.publish_key_change(alias); });
  cluster.on_key_change([this](const std::string& alias) {
    if (alias.empty())  // the subscription came back: changes may have been missed meanwhile
      keys_->refresh();
    else
      keys_->on_remote_change(alias);
  });
}

void Gateway::collect_ledger_metrics(metrics::Registry& m) {
  if (!postgres_) return;
  m.set(metrics::kUsageLedgerUp, {}, postgres_->up() ? 1 : 0);
  m.set(metrics::kUsageLedgerBufferedRecords, {}, static_cast<double>(postgres_->buffered()));
  std::uint64_t written = postgres_->written();
  m.add(metrics::kUsageLedgerWrittenTotal, {},
        static_cast<double>(written - postgres_written_seen_));
  postgres_written_seen_ = written;
  std::uint64_t rejected = postgres_->rejected();
  m.add(metrics::kUsageLedgerDroppedTotal, {"rejected"},
        static_cast<double>(rejected - postgres_rejected_seen_));
  postgres_rejected_seen_ = rejected;
}

void check_policy(const std::string& policy_json) {
  std::string error;
  if (!rtevents_check_policy(policy_json, &error)) throw std::runtime_error("config: $." + error);
}

void Gateway::collect_gauges(metrics::Registry& m) {
  m.reset(metrics::kLiveCalls);
  std::map<std::string, int> by_model;
  for (const auto& model : config().models) by_model[model.name] = 0;
  calls_.for_each([&](const calls::Call& c) { by_model[c.identity().model]++; });
  for (const auto& [model, n] : by_model) m.set(metrics::kLiveCalls, {model}, n);
  m.reset(metrics::kLiveWebsocketSessions);
  for (auto& [model, n] : by_model) n = 0;
  sessions_.for_each([&](const relay::WebSocketSession& s) { by_model[s.identity().model]++; });
  for (const auto& [model, n] : by_model) m.set(metrics::kLiveWebsocketSessions, {model}, n);
  m.set(metrics::kLiveSidebandSockets, {}, sessions_.live_sidebands());
  m.reset(metrics::kWorkerLiveCalls);
  m.reset(metrics::kWorkerHealthy);
  m.reset(metrics::kWorkerBreakerOpen);
  for (const auto& w : workers_.all_remote()) {
    m.set(metrics::kWorkerLiveCalls, {w->name()}, w->live_calls());
    m.set(metrics::kWorkerHealthy, {w->name()}, w->healthy() ? 1 : 0);
    m.set(metrics::kWorkerBreakerOpen, {w->name()}, w->breaker_open() ? 1 : 0);
  }
  collect_ledger_metrics(m);
  if (cluster_) {
    m.set(metrics::kClusterRedisUp, {}, cluster_->redis_up() ? 1 : 0);
    m.set(metrics::kClusterLeases, {}, static_cast<double>(cluster_->live_leases()));
  }
  m.set(metrics::kShuttingDown, {}, server_ && server_->shutting_down() ? 1 : 0);
  m.set(metrics::kConfigGeneration, {}, static_cast<double>(snapshots_.generation()));
  // The reaper's stuck-stop watchdog (common/pipeline_reaper.h).
  ReaperStats reaper = reaper_stats();
  m.set(metrics::kPipelineStopsStuck, {}, reaper.stuck_now);
  m.add(metrics::kPipelineStopsStuckTotal, {},
        static_cast<double>(reaper.stuck_total - reaper_stuck_seen_));
  reaper_stuck_seen_ = reaper.stuck_total;
  // Recording branches stopped by a write error (recording/call_recorder.h).
  std::uint64_t recording_failures = recording::failures_total();
  m.add(metrics::kRecordingFailuresTotal, {},
        static_cast<double>(recording_failures - recording_failures_seen_));
  recording_failures_seen_ = recording_failures;
  // The allocator's view of the heap (glibc mallinfo2: it walks the arenas' free lists, cheap
  // at scrape rates). Under ASan these come from its own allocator and mean little.
  struct mallinfo2 heap = mallinfo2();
  m.set(metrics::kMallocHeapBytes, {"in_use"}, static_cast<double>(heap.uordblks + heap.hblkhd));
  m.set(metrics::kMallocHeapBytes, {"free"}, static_cast<double>(heap.fordblks));
  m.set(metrics::kMallocHeapBytes, {"mmapped"}, static_cast<double>(heap.hblkhd));
  m.set(metrics::kMallocHeapBytes, {"arena"}, static_cast<double>(heap.arena));
}

int Gateway::run() {
  int port = server_->listen();
  workers_.start_health_checks();
  if (cluster_) cluster_->start();
  g_message("realtime-gateway listening on %s://%s:%d/ (config: %s)", server_->scheme(),
            config().listen_host().c_str(), port, config().source.c_str());
  if (config().auth.keys.empty())
    g_message(config().listens_on_loopback()
                  ? "no auth.keys configured: accepting unauthenticated calls (loopback only)"
                  : "no auth.keys configured and not on loopback: every call will be refused");

  auto on_signal = [](gpointer data) -> gboolean {
    static_cast<Gateway*>(data)->begin_drain();
    return G_SOURCE_CONTINUE;
  };
  // Above the HTTP sources: a request ready in the same loop iteration as the signal's dispatch
  // is refused (503) rather than started.
  SourceGuard term(g_unix_signal_add_full(G_PRIORITY_HIGH, SIGTERM, on_signal, this, nullptr));
  SourceGuard intr(g_unix_signal_add_full(G_PRIORITY_HIGH, SIGINT, on_signal, this, nullptr));
  // SIGHUP (the unit's ExecReload=): re-read the config file (reload()).
  auto on_hangup = [](gpointer data) -> gboolean {
    static_cast<Gateway*>(data)->reload("SIGHUP");
    return G_SOURCE_CONTINUE;
  };
  SourceGuard hup(g_unix_signal_add_full(G_PRIORITY_HIGH, SIGHUP, on_hangup, this, nullptr));
  StallProbe stall_probe;
  start_service_notifications(port);
  g_main_loop_run(loop_.get());
  notify_timer_.cancel();
  ready_poll_.cancel();
  calls_.set_on_empty(nullptr);
  sessions_.set_on_empty(nullptr);
  struct sigaction now = {};
  now.sa_handler = exit_at_once;
  sigaction(SIGTERM, &now, nullptr);
  sigaction(SIGINT, &now, nullptr);
  if (postgres_) {
    std::size_t left = postgres_->close(
        std::chrono::seconds(stop_now_ ? 0 : config().usage_postgres_timeout_seconds));
    std::uint64_t lost = postgres_->dropped() + postgres_->rejected();
    if (left == 0 && lost == 0) g_message("usage ledger: every record is in PostgreSQL");
    if (left == 0 && lost > 0)
      g_message("usage ledger: buffer flushed to PostgreSQL (%llu record(s) were dropped earlier)",
                static_cast<unsigned long long>(lost));
  }
  g_message("realtime-gateway stopped");
  return 0;
}

void Gateway::begin_drain() {
  if (draining_) {
    // A second signal: stop now.
    stop_now_ = true;
    calls_.hang_up_all("gateway shutting down");
    sessions_.end_all(close_code::kGoingAway, "gateway shutting down");
    return;
  }
  draining_ = true;
  server_->begin_shutdown();
  notifier_.stopping(service_status());
  g_message("shutting down: %d live call(s), %d WebSocket session(s), drain timeout %d s",
            calls_.live_calls(), sessions_.live_sessions(), config().limits.drain_timeout_seconds);
  if (calls_.live_calls() == 0 && sessions_.live_sessions() == 0) {
    finish();
    return;
  }
  calls_.set_on_empty([this] { finish_when_empty(); });
  sessions_.set_on_empty([this] { finish_when_empty(); });
  drain_timeout_ = SourceGuard(g_timeout_add_seconds(
      static_cast<guint>(config().limits.drain_timeout_seconds),
      [](gpointer data) -> gboolean {
        auto* self = static_cast<Gateway*>(data);
        self->drain_timeout_.forget();
        g_message("drain timeout: hanging up %d call(s), closing %d session(s)",
                  self->calls_.live_calls(), self->sessions_.live_sessions());
        self->calls_.hang_up_all("gateway shutting down");
        self->sessions_.end_all(close_code::kGoingAway, "gateway shutting down");
        return G_SOURCE_REMOVE;
      },
      this));
}

void Gateway::on_key_change(const keys::KeyChange& change) {
  if (change.kind != keys::KeyChange::kRevoked && change.kind != keys::KeyChange::kDeleted &&
      change.kind != keys::KeyChange::kExpired)
    return;
  accounting_.end_key(change.alias, "invalid_api_key",
                      "the API key '" + change.alias + "' was " + keys::kind_name(change.kind) +
                          ": the call is ended");
}

Gateway::ReloadOutcome Gateway::reload(const char* trigger) {
  ReloadOutcome outcome;
  outcome.generation = snapshots_.generation();
  const config::Config& running = config();
  auto refuse = [&](const std::string& why) {
    outcome.error = why;
    metrics_.add(metrics::kConfigReloadsTotal, {"error"});
    g_warning("config reload (%s) refused, generation %llu stays: %s", trigger,
              static_cast<unsigned long long>(outcome.generation), why.c_str());
    return outcome;
  };
  if (running.source.empty() || running.source == "(built-in default)")
    return refuse("the built-in default config has no file to re-read (start with --config FILE)");
  config::ReloadPlan plan;
  try {
    // As at start-up: the file, then RTGW_* variables, then the command line's flags; the caps
    // left to the open-file limit sized from the same limit; then every --check-config check.
    config::Config next = config::load(running.source, overrides_, config::process_env());
    config::apply_sized_caps(next, running.limits.fd_limit);
    // A TLS pair in use is checked by its reload below (the same check).
    check_loaded_config(next, /*tls=*/!running.tls.enabled());
    // A config key named as a live virtual key is refused, as the same clash is at start-up:
    // which of the two a bearer or a budget means would depend on the order of lookups.
    if (keys_) {
      for (std::size_t i = 0; i < next.auth.keys.size(); ++i)
        if (keys_->directory().find_alias(next.auth.keys[i].name))
          throw std::runtime_error("auth.keys[" + std::to_string(i) + "].name: '" +
                                   next.auth.keys[i].name +
                                   "' is also a virtual key's alias (auth.key_store): rename one");
    }
    plan = config::plan_reload(running, std::move(next));
  } catch (const std::exception& e) {
    return refuse(e.what());
  }
  // The TLS pair first (re-read even when its paths are the same: a renewal rewrites the files):
  // the one step that can still fail, so a failure leaves everything as it was.
  if (running.tls.enabled() && plan.next.tls.enabled()) {
    std::string why = server_->reload_tls(plan.next.tls.cert_file, plan.next.tls.key_file);
    if (!why.empty()) return refuse("TLS pair not replaced, the one in use stays: " + why);
  }
  outcome.ok = true;
  outcome.changed = std::move(plan.changed);
  outcome.restart_required = std::move(plan.restart_required);
  outcome.generation = snapshots_.replace(std::move(plan.next), g_get_monotonic_time());
  // From here `running` may be gone (Snapshots keeps it a while): read config().
  auto draining = workers_.apply(config());
  server_->apply_config();
  if (cluster_) {
    std::vector<std::string> names;
    for (const auto& k : config().auth.keys) names.push_back(k.name);
    cluster_->set_key_names(std::move(names));
  }
  if (keys_) {  // aliases /key/generate refuses from now on: the new file's key names
    std::set<std::string> names;
    for (const auto& k : config().auth.keys) names.insert(k.name);
    keys_->directory().set_config_names(std::move(names));
  }
  metrics_.add(metrics::kConfigReloadsTotal, {"ok"});
  g_message("config reload (%s): generation %llu from %s; changed: %s", trigger,
            static_cast<unsigned long long>(outcome.generation), config().source.c_str(),
            outcome.changed.empty() ? "nothing" : joined(outcome.changed).c_str());
  if (!outcome.restart_required.empty())
    g_warning("config reload (%s): these keys need a restart and keep their running value: %s",
              trigger, joined(outcome.restart_required).c_str());
  for (const auto& w : draining)
    g_message("worker %s (%s) removed: no new calls, %d live call(s) and session(s) finish on it",
              w->name().c_str(), w->config().url.c_str(), w->live_calls());
  return outcome;
}

std::string Gateway::service_status() const {
  std::string text = std::to_string(calls_.live_calls()) + " live call(s), " +
                     std::to_string(sessions_.live_sessions()) + " WebSocket session(s)";
  if (draining_) return "draining: " + text;
  if (!workers_.any_available()) text += "; no healthy worker";
  return text;
}

void Gateway::start_service_notifications(int port) {
  if (!notifier_.enabled()) return;
  // READY waits for every remote worker's first health check, at most this long: a worker that
  // does not answer must not keep the unit "activating" (systemd's start timeout would kill
  // it); /readyz tells a load balancer the rest.
  constexpr gint64 kReadyWaitUs = 10 * G_USEC_PER_SEC;
  ready_deadline_us_ = g_get_monotonic_time() + kReadyWaitUs;
  // The readiness poll (100 ms) until READY; then one steady timer sends STATUS on change and
  // the watchdog ping. Both run on the main loop, so a stuck loop stops the pings (WatchdogSec=
  // then restarts the service).
  std::uint64_t watchdog_us = notifier_.watchdog_us();
  ready_poll_ = run_every_ms(100, [this, port]() {
    if (!workers_.health_checked() && g_get_monotonic_time() < ready_deadline_us_) return true;
    notified_ready_ = true;
    notified_status_ = service_status();
    notifier_.ready("listening on port " + std::to_string(port) + "; " + notified_status_);
    g_message("service manager notified: READY=1 (%s)", notified_status_.c_str());
    return false;
  });
  // Pings at half the watchdog interval (sd_watchdog_enabled(3)'s advice), and at least once a
  // second for the status.
  guint steady_ms = 1000;
  if (watchdog_us > 0)
    steady_ms = static_cast<guint>(std::clamp<std::uint64_t>(watchdog_us / 2000, 50, 1000));
  notify_timer_ = run_every_ms(steady_ms, [this, watchdog_us]() {
    if (watchdog_us > 0) notifier_.watchdog();
    if (!notified_ready_) return true;
    std::string now = service_status();
    if (now != notified_status_) {
      notified_status_ = now;
      notifier_.status(now);
    }
    return true;
  });
  if (watchdog_us > 0)
    g_message("service manager watchdog: %llu ms, pinged every %u ms",
              static_cast<unsigned long long>(watchdog_us / 1000), steady_ms);
}

void Gateway::finish_when_empty() {
  if (calls_.live_calls() > 0 || sessions_.live_sessions() > 0) return;
  finish();
}

void Gateway::finish() {
  drain_timeout_.cancel();
  if (tracer_) tracer_->flush();  // the last calls' spans go out in the wait below
  // Let queued main-loop work (answers, hang-up requests, WebSocket close frames) go out before
  // stopping.
  g_timeout_add_full(
      G_PRIORITY_DEFAULT, kFinishFlushMs,
      [](gpointer data) -> gboolean {
        g_main_loop_quit(static_cast<GMainLoop*>(data));
        return G_SOURCE_REMOVE;
      },
      g_main_loop_ref(loop_.get()), reinterpret_cast<GDestroyNotify>(g_main_loop_unref));
}

}  // namespace rtgw::app
