// SPDX-License-Identifier: MIT
// The composition root: builds every service from the config and runs the main loop.
//
// Owns: the configuration (its snapshots, config/snapshots.h, and their reload: SIGHUP and
// POST /admin/reload), the authenticator, the worker pool, the call and session registries,
// the HTTP server, the per-call and per-session pipeline descriptions, the PostgreSQL usage ledger
// when configured (its start-up budget replay and its flush at exit), and the process lifecycle
// (start-up checks, SIGTERM/SIGINT drain, exit code).
//
// Threads: the process's main thread, which runs the one GLib main loop that owns server, call
// and session state (SIGTERM/SIGINT arrive there as GLib unix signal sources).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "accounting/call_accounting.h"
#include "app/service_notify.h"
#include "auth/authenticator.h"
#include "auth/key_book.h"
#include "calls/call_registry.h"
#include "common/ref.h"
#include "config/config.h"
#include "config/snapshots.h"
#include "http/server.h"
#include "keys/key_manager.h"
#include "recording/retention.h"
#include "sessions/session_registry.h"
#include "transcripts/transcript_store.h"
#include "usage/postgres_ledger.h"
#include "workers/worker_pool.h"

namespace rtgw::app {

// The files used when the config names none.
std::string default_pipeline_file();
std::string default_session_pipeline_file();
// The addresses of the named interfaces (IPv4, and IPv6 unless disabled; not link-local).
// Throws std::runtime_error naming an interface that does not exist or has no address.
std::vector<std::string> resolve_interfaces(const std::vector<std::string>& names, bool ipv6);
// Validates the policy object (rteventfilter's rules). Throws std::runtime_error.
void check_policy(const std::string& policy_json);

class Gateway {
 public:
  explicit Gateway(config::Config initial);
  ~Gateway();

  // Listens and runs until drained after SIGTERM/SIGINT. Returns the exit code.
  int run();
  // The command-line overrides a reload applies again over the re-read file.
  void set_reload_overrides(config::Overrides overrides) { overrides_ = std::move(overrides); }
  // A key changed (the key directory's announcement, main loop): a revoked, deleted or expired
  // key's live calls and sessions end with the `error` event invalid_api_key
  // (CallAccounting::end_key; kept running when auth.revoke_ends_calls is false). Created and
  // updated keys need nothing here: budgets and limits are read at each use.
  void on_key_change(const keys::KeyChange& change);

 private:
  void begin_drain();
  // What a reload did: applied (a new generation), or refused with the --check-config message.
  struct ReloadOutcome {
    bool ok = false;
    std::string error;
    std::uint64_t generation = 0;
    std::vector<std::string> changed;
    std::vector<std::string> restart_required;
  };
  // SIGHUP and POST /admin/reload (`trigger` says which, for the log): re-reads the config file
  // with the command line's overrides, runs every --check-config check, then applies the new
  // snapshot at once (keys, models and workers, prices, policy, CORS, limits, the TLS pair);
  // keys that need a restart are reported and keep their running value. A file that fails to
  // load or check changes nothing.
  ReloadOutcome reload(const char* trigger);
  // The current snapshot (read it afresh: a reload replaces it).
  const config::Config& config() const { return snapshots_.current(); }
  // systemd: READY=1 once the workers' first health checks answered (bounded), then STATUS=
  // and WATCHDOG=1 from one main-loop timer (app/service_notify.h).
  void start_service_notifications(int port);
  std::string service_status() const;
  void collect_gauges(metrics::Registry& m);
  void finish();
  // Live calls and sessions both hold a drain open.
  void finish_when_empty();
  // usage.postgres_url: starts the writer and replays budgets from the table (waits up to
  // usage.postgres_timeout_seconds; a later answer is merged when it comes).
  void start_postgres_ledger();
  void collect_ledger_metrics(metrics::Registry& m);
  // auth.key_store: loads the virtual keys (a config name clash throws) and wires the mirror
  // into authentication, key lookups and the change hooks below.
  void start_key_store();
  // Cluster mode: this instance's key writes are announced on Redis, and other instances'
  // announcements refresh the key mirror at once.
  void announce_key_changes_on(cluster::Cluster& cluster);

  config::Snapshots snapshots_;
  config::Overrides overrides_;
  std::string pipeline_description_;
  std::string session_pipeline_description_;
  auth::Authenticator auth_;
  auth::KeyBook key_book_;                  // keys by name, config and virtual
  std::unique_ptr<keys::KeyManager> keys_;  // auth.key_store only
  workers::WorkerPool workers_;
  calls::CallRegistry calls_;
  relay::SessionRegistry sessions_;  // after calls_: its sidebands detach from live calls
  metrics::Registry metrics_;
  usage::UsageLedger usage_;
  std::unique_ptr<usage::PostgresLedger> postgres_;  // null without usage.postgres_url
  std::uint64_t reaper_stuck_seen_ = 0;      // rtgw_pipeline_stops_stuck_total already added
  std::uint64_t postgres_written_seen_ = 0;  // counters already added to /metrics
  std::uint64_t postgres_rejected_seen_ = 0;
  // Before the accounting and the server, which hold it: null without telemetry.otlp_endpoint.
  std::unique_ptr<telemetry::Tracer> tracer_;
  // The operator console's spend series and recent errors (before what feeds it).
  console::ConsoleFeed console_feed_;
  // Recording: the failures already added to rtgw_recording_failures_total, and the
  // recording.retention_days sweep at start-up and hourly (none when recording is off).
  std::uint64_t recording_failures_seen_ = 0;
  std::unique_ptr<recording::RetentionSweeper> recording_retention_;
  CallAccounting accounting_;
  std::shared_ptr<cluster::Cluster> cluster_;  // cluster mode only
  // transcripts (transcripts/transcript_store.h); null when no key or model is transcribed.
  std::shared_ptr<transcripts::TranscriptStore> transcripts_;
  std::unique_ptr<http::Server> server_;
  Ref<GMainLoop> loop_;
  SourceGuard drain_timeout_;
  ServiceNotifier notifier_ = ServiceNotifier::from_environment();
  SourceGuard notify_timer_;
  SourceGuard ready_poll_;
  bool notified_ready_ = false;
  gint64 ready_deadline_us_ = 0;
  std::string notified_status_;
  bool draining_ = false;
  bool stop_now_ = false;  // a second SIGTERM/SIGINT: the ledger's flush gets no wait
};

}  // namespace rtgw::app
