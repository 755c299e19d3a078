// SPDX-License-Identifier: MIT
// The metrics catalogue: every Prometheus family the gateway exposes, declared once.
//
// Owns: one row per family (its C++ name, type, metric name, help, buckets, label names), in
// RTGW_METRIC_FAMILIES below. Each row becomes an `extern const Family` (metrics::kCallsTotal...)
// that every use names (metrics::Registry::add/set/observe take a Family, never a name), and an
// entry of catalogue(), which the Registry renders (HELP and TYPE even before a first sample).
// Adding a metric: one row here, the call that records it, a line in docs/operations.md.
//
// Threads: any (constant data).
#pragma once

#include <string>
#include <vector>

namespace rtgw::metrics {

enum class Type { kCounter, kGauge, kHistogram };

struct Family {
  const char* name;
  Type type;
  const char* help;
  std::vector<double> buckets;      // histograms only, ascending (the +Inf bucket is implied)
  std::vector<std::string> labels;  // label names, in the order a use gives their values
};

// Seconds, for latencies from a few milliseconds to seconds.
#define RTGW_LATENCY_BUCKETS \
  { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
#define RTGW_NO_BUCKETS \
  {}

// X(id, type, name, help, buckets, label names...)
#define RTGW_METRIC_FAMILIES(X)                                                                    \
  /* Calls and sessions (accounting/call_accounting.cpp, at their end or set-up) */                \
  X(kCallsTotal, kCounter, "rtgw_calls_total", "Calls by model and outcome", RTGW_NO_BUCKETS,      \
    "model", "outcome")                                                                            \
  X(kCallSetupSeconds, kHistogram, "rtgw_call_setup_seconds",                                      \
    "Time from the client's offer to the gateway's answer", RTGW_LATENCY_BUCKETS, "model")         \
  X(kUpstreamRequestSeconds, kHistogram, "rtgw_upstream_request_seconds",                          \
    "Time the worker took to answer the gateway's offer", RTGW_LATENCY_BUCKETS, "worker")          \
  X(kDtlsFailuresTotal, kCounter, "rtgw_dtls_failures_total",                                      \
    "Calls ended because a leg's peer DTLS certificate did not match its SDP fingerprint (or "     \
    "could not be read), by leg and reason",                                                       \
    RTGW_NO_BUCKETS, "leg", "reason")                                                              \
  X(kPeerTimeoutsTotal, kCounter, "rtgw_peer_timeouts_total",                                      \
    "Calls ended because a leg's peer sent nothing for webrtc.peer_timeout_seconds, by leg",       \
    RTGW_NO_BUCKETS, "leg")                                                                        \
  X(kRtpPacketsTotal, kCounter, "rtgw_rtp_packets_total",                                          \
    "RTP packets relayed, by the leg they came from", RTGW_NO_BUCKETS, "leg")                      \
  X(kRtpBytesTotal, kCounter, "rtgw_rtp_bytes_total",                                              \
    "RTP bytes relayed, by the leg they came from", RTGW_NO_BUCKETS, "leg")                        \
  X(kRtpPacketsLostTotal, kCounter, "rtgw_rtp_packets_lost_total",                                 \
    "RTP packets lost (webrtcbin's receive statistics), by leg", RTGW_NO_BUCKETS, "leg")           \
  X(kEventsTotal, kCounter, "rtgw_events_total", "Realtime events relayed, by direction",          \
    RTGW_NO_BUCKETS, "direction")                                                                  \
  X(kWebsocketSessionsTotal, kCounter, "rtgw_websocket_sessions_total",                            \
    "WebSocket realtime sessions by model and outcome", RTGW_NO_BUCKETS, "model", "outcome")       \
  /* Turns and decisions (the report path: EventRelay -> CallAccounting::OnRelay*) */              \
  X(kTokensTotal, kCounter, "rtgw_tokens_total", "Tokens metered, by key, model and kind",         \
    RTGW_NO_BUCKETS, "key", "model", "kind")                                                       \
  X(kTurnsTotal, kCounter, "rtgw_turns_total",                                                     \
    "Metered turns, by key, model and kind (response: a response.done; transcription: an input "   \
    "audio transcription)",                                                                        \
    RTGW_NO_BUCKETS, "key", "model", "kind")                                                       \
  X(kTranscriptionSecondsTotal, kCounter, "rtgw_transcription_seconds_total",                      \
    "Seconds of duration-billed input audio transcription, by key and model", RTGW_NO_BUCKETS,     \
    "key", "model")                                                                                \
  X(kSpendUsdTotal, kCounter, "rtgw_spend_usd_total",                                              \
    "US dollars spent, by key and model (turns of models with a price table)", RTGW_NO_BUCKETS,    \
    "key", "model")                                                                                \
  X(kFirstTokenSeconds, kHistogram, "rtgw_first_token_seconds",                                    \
    "response.create to first output delta", RTGW_LATENCY_BUCKETS, "model")                        \
  X(kUsageInvalidTotal, kCounter, "rtgw_usage_invalid_total",                                      \
    "Turns whose usage had a token count over 10^9 (counted at that cap), by key and model",       \
    RTGW_NO_BUCKETS, "key", "model")                                                               \
  X(kEventsBlockedTotal, kCounter, "rtgw_events_blocked_total",                                    \
    "Client events blocked, by rule and reason", RTGW_NO_BUCKETS, "rule", "reason")                \
  X(kEventsFilteredTotal, kCounter, "rtgw_events_filtered_total",                                  \
    "Client events changed by a filter rule", RTGW_NO_BUCKETS, "rule")                             \
  /* Budgets and the usage log */                                                                  \
  X(kBudgetRefusalsTotal, kCounter, "rtgw_budget_refusals_total",                                  \
    "response.create refused because the key's budget has no room for one more turn "              \
    "(insufficient_quota), by key",                                                                \
    RTGW_NO_BUCKETS, "key")                                                                        \
  X(kUsageLogErrorsTotal, kCounter, "rtgw_usage_log_errors_total",                                 \
    "Usage records that could not be written to the usage log (they still count towards "          \
    "budgets in memory)",                                                                          \
    RTGW_NO_BUCKETS)                                                                               \
  X(kUsageLedgerUp, kGauge, "rtgw_usage_ledger_up",                                                \
    "1 while the PostgreSQL usage ledger is connected", RTGW_NO_BUCKETS)                           \
  X(kUsageLedgerBufferedRecords, kGauge, "rtgw_usage_ledger_buffered_records",                     \
    "Usage records waiting for the PostgreSQL ledger", RTGW_NO_BUCKETS)                            \
  X(kUsageLedgerWrittenTotal, kCounter, "rtgw_usage_ledger_written_total",                         \
    "Usage records inserted into PostgreSQL (a record offered again is not counted)",              \
    RTGW_NO_BUCKETS)                                                                               \
  X(kUsageLedgerDroppedTotal, kCounter, "rtgw_usage_ledger_dropped_total",                         \
    "Usage records the PostgreSQL ledger could not write, by reason (buffer_full: the bounded "    \
    "buffer was full while the database was unavailable; rejected: the database refused the "      \
    "record's data)",                                                                              \
    RTGW_NO_BUCKETS, "reason")                                                                     \
  /* Traces (telemetry/exporter.cpp) */                                                            \
  X(kTelemetryDroppedTotal, kCounter, "rtgw_telemetry_dropped_total",                              \
    "Spans not delivered to the OTLP collector, by reason (queue_full: the bounded queue was "     \
    "full; export_failed: the collector was unreachable, slow or refused the batch)",              \
    RTGW_NO_BUCKETS, "reason")                                                                     \
  X(kTelemetryExportedTotal, kCounter, "rtgw_telemetry_exported_total",                            \
    "Spans the OTLP collector accepted", RTGW_NO_BUCKETS)                                          \
  /* Live state, set at scrape time (app/gateway.cpp collect_gauges) */                            \
  X(kLiveCalls, kGauge, "rtgw_live_calls", "Live calls by model", RTGW_NO_BUCKETS, "model")        \
  X(kLiveWebsocketSessions, kGauge, "rtgw_live_websocket_sessions",                                \
    "Live WebSocket sessions by model", RTGW_NO_BUCKETS, "model")                                  \
  X(kLiveSidebandSockets, kGauge, "rtgw_live_sideband_sockets",                                    \
    "Sideband sockets attached to live calls", RTGW_NO_BUCKETS)                                    \
  X(kWorkerLiveCalls, kGauge, "rtgw_worker_live_calls", "Live calls per worker", RTGW_NO_BUCKETS,  \
    "worker")                                                                                      \
  X(kWorkerHealthy, kGauge, "rtgw_worker_healthy", "1 when the worker's last health check passed", \
    RTGW_NO_BUCKETS, "worker")                                                                     \
  X(kWorkerBreakerOpen, kGauge, "rtgw_worker_breaker_open",                                        \
    "1 while the worker's circuit breaker is open", RTGW_NO_BUCKETS, "worker")                     \
  X(kShuttingDown, kGauge, "rtgw_shutting_down", "1 while draining after SIGTERM",                 \
    RTGW_NO_BUCKETS)                                                                               \
  /* Config reloads (app/gateway.cpp: SIGHUP, POST /admin/reload) */                               \
  X(kConfigReloadsTotal, kCounter, "rtgw_config_reloads_total",                                    \
    "Config reloads by result (ok: applied; error: the file failed to load or check)",             \
    RTGW_NO_BUCKETS, "result")                                                                     \
  X(kConfigGeneration, kGauge, "rtgw_config_generation",                                           \
    "Generation of the config in use: 1 at start-up, +1 per applied reload", RTGW_NO_BUCKETS)      \
  X(kMallocHeapBytes, kGauge, "rtgw_malloc_heap_bytes",                                            \
    "glibc malloc heap (mallinfo2): in_use = uordblks + hblkhd, free = fordblks, mmapped = "       \
    "hblkhd, arena = arena (sbrk'd main heap)",                                                    \
    RTGW_NO_BUCKETS, "kind")                                                                       \
  X(kPipelineStopsStuck, kGauge, "rtgw_pipeline_stops_stuck",                                      \
    "Pipeline stops running on a reaper thread for longer than the stuck-stop bound now",          \
    RTGW_NO_BUCKETS)                                                                               \
  X(kPipelineStopsStuckTotal, kCounter, "rtgw_pipeline_stops_stuck_total",                         \
    "Pipeline stops that ran longer than the stuck-stop bound (set_state(NULL) not returned; "     \
    "common/pipeline_reaper.h)",                                                                   \
    RTGW_NO_BUCKETS)                                                                               \
  /* Recording (recording/call_recorder.h; added at scrape time) */                                \
  X(kRecordingFailuresTotal, kCounter, "rtgw_recording_failures_total",                            \
    "Call recordings stopped by a write error (e.g. a full disk); the call went on",               \
    RTGW_NO_BUCKETS)                                                                               \
  /* Cluster mode */                                                                               \
  X(kClusterRedisUp, kGauge, "rtgw_cluster_redis_up",                                              \
    "1 while this instance reaches the cluster's Redis", RTGW_NO_BUCKETS)                          \
  X(kClusterLeases, kGauge, "rtgw_cluster_leases",                                                 \
    "Live calls and sessions this instance holds a lease for", RTGW_NO_BUCKETS)                    \
  X(kClusterForwardedTotal, kCounter, "rtgw_cluster_forwarded_total",                              \
    "Requests forwarded to the instance holding the call, by kind", RTGW_NO_BUCKETS, "kind")

#define RTGW_DECLARE_METRIC_FAMILY(id, type, name, help, buckets, ...) extern const Family id;
RTGW_METRIC_FAMILIES(RTGW_DECLARE_METRIC_FAMILY)
#undef RTGW_DECLARE_METRIC_FAMILY

// Every family above, in declaration order.
const std::vector<const Family*>& catalogue();

// The family called `name`, or nullptr.
const Family* find_family(const std::string& name);

}  // namespace rtgw::metrics
