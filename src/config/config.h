// SPDX-License-Identifier: MIT
// The gateway's configuration.
//
// Owns: the typed configuration (`Config`), loading it from a JSON file, applying `RTGW_*`
// environment overrides and command-line flags (flags beat env beat file), resolving `env:NAME`
// secrets, the built-in default (no file: `echo` model, plus `openai` when OPENAI_API_KEY is set),
// and validation errors that name the file, the JSON path and the reason. Every key is a row of
// the schema (config/schema.h), which reads it, overrides it from its variable and documents it;
// cross-key checks and describe()'s summary stay here (config.cpp).
//
// Threads: loaded on the main thread at start-up, before the main loop runs (and by
// --check-config), and again on the main loop by a reload; a loaded Config is read-only, shared
// as an immutable snapshot (config/snapshots.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "usage/price_table.h"

namespace rtgw::config {

struct KeyConfig {
  // Every member (a reload reports a changed key; config/reload_diff.h).
  bool operator==(const KeyConfig&) const = default;
  std::string name;
  std::string key;                  // the secret, resolved from env: if needed
  std::vector<std::string> models;  // glob patterns ("*", "gpt-realtime*")
  // 0 = unlimited; unset (LimitsConfig::kAuto) = limits.max_calls_per_key (config/capacity.h)
  int max_concurrent_calls = -1;
  bool admin = false;
  std::optional<std::int64_t> budget_tokens;
  std::optional<double> budget_usd;  // US dollars over the usage log's lifetime
  // A turn that takes the key over a budget (tokens or USD) also ends its live calls and
  // WebSocket sessions, after the policy error event.
  bool end_calls_over_budget = false;
  // `budget_duration` ("30d"): the budgets count only the spend of the current period of this
  // many seconds, periods aligned on the unix epoch (usage/budget_period.h); none: the usage
  // log's lifetime.
  std::optional<std::int64_t> budget_duration_seconds;
  // Virtual keys (keys/virtual_key.h) materialised as a KeyConfig: when it stops authenticating
  // (unix seconds; none: never), and whether it came from the key store rather than the file.
  std::optional<std::int64_t> expires_at;
  bool virtual_key = false;
};

struct AuthConfig {
  std::vector<KeyConfig> keys;
  std::string token_secret;  // empty = random per process
  int token_ttl_seconds = 600;
  // A revoked, deleted or expired key's live calls and sessions are ended with an `error` event
  // invalid_api_key (accounting/call_accounting.h end_key); false: they run on (logged).
  bool revoke_ends_calls = true;
  // Virtual keys (keys/key_manager.h): "" (none) or "postgres"; its database ("" =
  // usage.postgres_url); how stale this instance's copy of the table may get without Redis.
  std::string key_store;
  std::string key_store_url;
  int key_cache_seconds = 1;
};

struct WorkerConfig {
  // Every member: a reload keeps a worker whose config is unchanged (workers/worker_pool.h).
  bool operator==(const WorkerConfig&) const = default;
  std::string name;                        // defaults to "<model>/<index>" or the URL's host
  std::string provider;                    // openai | azure | generic | echo
  std::string url;                         // base URL (scheme://host:port[/prefix]); empty for echo
  std::string api_key;                     // resolved secret, may be empty
  double timeout_seconds = 10.0;           // whole SDP exchange with the worker
  int max_calls = 0;                       // 0 = unlimited
  std::string health_path = "/v1/models";  // GET with the worker key; "" disables checks
  // azure: `url` is the resource URL, the deployment and api-version go in the path and query,
  // the key goes in an `api-key` header.
  std::string deployment;
  std::string api_version = "2025-08-28";
  // The worker's own HTTP session.
  int max_connections = 32;
  std::string tls_ca_file;           // PEM bundle to verify the worker with ("" = system CAs)
  std::string tls_client_cert_file;  // client certificate (PEM) ...
  std::string tls_client_key_file;   // ... and its key ("" = in the certificate file)
  bool tls_verify = true;            // false: accept any certificate (testing only)
  std::string proxy;  // http(s):// proxy URL; "" = the environment's; "none" = direct
  int health_interval_seconds = 10;  // backs off (doubling, up to 60 s) while failing
  int breaker_failures = 3;          // consecutive set-up failures that open the breaker
  int breaker_open_seconds = 10;     // then one probe call is let through
};

// A model's price table (`models[].pricing`): owned by usage, which prices turns with it.
using Pricing = usage::Pricing;

struct ModelConfig {
  std::string name;
  std::string upstream_model;  // defaults to name
  std::vector<WorkerConfig> workers;
  std::optional<Pricing> pricing;  // none: its usage records carry cost_usd null
  // The most tokens one response of this model costs, as an operator bounds it: the budget
  // reservation per response.create (usage/budget_reservations.h); none: the key's recent average.
  std::optional<std::int64_t> max_turn_tokens;
};

struct WebRtcConfig {
  std::string stun_server;  // empty/"none" = no STUN
  std::vector<std::string> turn_servers;
  std::vector<std::string> nat_1to1_ips;
  std::vector<std::string> ice_interfaces;
  int udp_port_min = 0;  // UDP candidates only (TCP ones use ephemeral ports: see ice_tcp)
  int udp_port_max = 0;
  std::string ice_transport_policy = "all";  // "relay": TURN candidates only
  bool ice_tcp = true;                       // gather and advertise ICE-TCP candidates
  bool ice_ipv6 = true;                      // advertise IPv6 candidates
  // The shared ICE thread polls its sockets through epoll (webrtc/ice_poll.h; issue 28); false:
  // GLib's poll() over every socket of every call on each wake-up.
  bool ice_epoll = true;
  // How many shared ICE threads (webrtc/ice_context.h; issue 28): agents spread over them round
  // robin. 0: one per CPU (g_get_num_processors).
  int ice_threads = 0;
  // "shared" (default): every webrtcbin gets the gateway's ICE agent (webrtc/ice_agent.h): all
  // libnice agents on one thread, consent freshness on. "stock": webrtcbin's own agent.
  std::string ice_agent = "shared";
  // true (default): with the shared agent, received packets skip transportreceivebin's queue
  // once ICE is connected, and its thread goes (webrtc/receive_bypass.h). false: stock path.
  bool receive_queue_bypass = true;
  // "rsa" (default): GStreamer's RSA-2048 DTLS certificate; "ecdsa": the gateway's ECDSA P-256
  // one (webrtc/dtls_certificate.h; issue 28).
  std::string dtls_certificate = "rsa";
  // Derived at start-up from ice_interfaces (not a config key): the addresses to gather on.
  std::vector<std::string> ice_addresses;
  int ice_gathering_timeout_ms = 2000;   // bound on every gathering wait
  int ice_connect_timeout_seconds = 15;  // client/upstream leg must connect within this
  int jitterbuffer_latency_ms = 20;      // webrtcbin `latency`: the delay the relay adds
  // false (default): a call's webrtcbins forward received RTP as it arrives (rtpforward in
  // rtpbin's jitterbuffer slot: no jitterbuffer threads, no delay; the receivers buffer).
  // true: webrtcbin's own rtpjitterbuffer (jitterbuffer_latency_ms), e.g. for a decoding pipeline.
  bool jitterbuffer = false;
  // A leg whose peer sends nothing (RTP, RTCP, DTLS/SCTP) for this long is dead: the call ends as
  // if that peer hung up (calls/peer_liveness.h). 0 disables.
  int peer_timeout_seconds = 10;
  // Deprecated (kept for existing configs): a connected client that sends no *audio* for this
  // long is treated as gone, even if it still sends RTCP or events. 0 (default) = off; peer
  // liveness above covers a client that vanished.
  int client_media_timeout_seconds = 0;
  // true (default): an event the event path has decided goes out on the other data channel from
  // the thread it came out on (calls/channel_sender.h; issue 28), when nothing of its direction
  // waits on the main loop. false: every relayed event crosses the main loop first.
  bool send_events_from_stream_thread = true;
};

struct LimitsConfig {
  // A cap not configured: sized from the open-file limit at start-up (config/capacity.h).
  static constexpr int kAuto = -1;
  std::int64_t max_body_bytes = 256 * 1024;        // POST bodies (413 above)
  std::int64_t max_pending_event_bytes = 1 << 20;  // per direction, while a channel is not open
  // Per direction per connection: what may wait towards a peer that does not read (WebSocket
  // send queue, data channel buffered amount). Past it: WebSocket close 1008, call ended.
  std::int64_t max_outgoing_buffer_bytes = 4 << 20;
  int max_calls = kAuto;  // live calls + sessions (503 no_capacity), 0 = unlimited
  // Calls + sessions of a key without its own max_concurrent_calls (429 too_many_calls); 0 = none.
  int max_calls_per_key = kAuto;
  // Calls set up but not yet connected (both legs' ICE), globally (503 no_capacity) and per key
  // (429 too_many_calls); 0 = unlimited.
  int max_setups = kAuto;
  int max_setups_per_key = kAuto;
  int max_sidebands_per_call = 4;  // sideband sockets on one call (429 too_many_sidebands)
  int drain_timeout_seconds = 10;  // SIGTERM: how long live calls may run on
  // The HTTP server (http/connection_guard.h).
  std::int64_t max_header_bytes = 16384;  // request line + headers (431 above)
  int header_timeout_seconds = 10;        // a connection must deliver its headers within this
  int idle_timeout_seconds = 60;          // a request body that stalls this long: closed
  int max_connections = kAuto;            // open HTTP and WebSocket connections
  // Slow bodies (http/connection_guard.h): a request body must be in within body_timeout_seconds
  // of its headers, and arrive at min_body_bytes_per_second or more after a 2 s grace (0 = no
  // minimum rate).
  int body_timeout_seconds = 30;
  std::int64_t min_body_bytes_per_second = 500;
  // Connections kept for requests with a valid key or token and for /healthz and /readyz: other
  // requests may hold at most max_connections - reserved_connections. -1: max_connections / 10.
  int reserved_connections = -1;
  // Set by apply_sized_caps(): the open-file limit the kAuto caps were sized from, and their names.
  std::uint64_t fd_limit = 0;
  std::vector<std::string> sized;
};

// WebSocket realtime sessions (`GET /v1/realtime`) and sideband sockets.
struct WebSocketConfig {
  int idle_timeout_seconds = 300;            // no message either way this long: close (0 = never)
  std::int64_t max_message_bytes = 4 << 20;  // a client message above this: close 1009
  std::string pipeline_file;                 // per-session event pipeline ("" = built-in path)
};

// Scale-out (SPEC "Scale-out (cluster mode)"): instances sharing one Redis act as one gateway.
// Absent (`enabled` false): one process, no Redis.
struct ClusterConfig {
  bool enabled = false;
  std::string redis_url;  // redis://[:password@]host[:port][/db]
  // Parsed from redis_url.
  std::string redis_host;
  int redis_port = 6379;
  int redis_db = 0;
  std::string redis_user;  // Redis 6 ACL user ("" = AUTH with the password alone)
  std::string redis_password;
  std::string instance_id;      // default: hostname:port
  std::string advertise_url;    // how peers reach this instance (default: http://<listen>)
  std::string internal_secret;  // authenticates instance-to-instance requests
  int lease_seconds = 10;       // a dead instance's leases lapse within this
};

// tls: the listener serves HTTPS and WSS with this pair (PEM; the certificate file may hold the
// chain after the leaf). Both empty: plain HTTP. redirect_http: a second, plain listener
// (HOST:PORT) that answers every request with a 308 to the same path over HTTPS.
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string redirect_http;
  bool enabled() const { return !cert_file.empty(); }
};

// telemetry (telemetry/exporter.h): OpenTelemetry traces over OTLP/HTTP JSON. No endpoint: no
// exporter and no span is built.
struct TelemetryConfig {
  std::string otlp_endpoint;  // base URL; spans go to POST {otlp_endpoint}/v1/traces
  std::string service_name = "realtime-gateway";
  // Extra request headers for the collector (an API key); values are resolved secrets.
  std::vector<std::pair<std::string, std::string>> headers;
  bool include_content = false;  // a response.done's transcript text on its span event
  bool enabled() const { return !otlp_endpoint.empty(); }
};

// transcripts (SPEC "Telemetry, recording, transcripts"; transcripts/transcript_store.h): which
// calls and sessions have their transcription events stored, and where. Off when both lists are
// empty.
struct TranscriptsConfig {
  std::vector<std::string> keys;    // key name patterns ("*", "?")
  std::vector<std::string> models;  // model name patterns
  // A call or session without input transcription gets it switched on for the worker.
  bool enable_input_transcription = false;
  std::string input_transcription_model = "gpt-4o-mini-transcribe";
  std::string log;  // JSONL file without a PostgreSQL ledger ("" = `{usage.log}.transcripts.jsonl`)
  bool any() const { return !keys.empty() || !models.empty(); }
};

// recording (recording/): calls whose key name or model matches one of the patterns get a
// recording branch per audio direction, written to `dir`. Empty dir: recording off.
struct RecordingConfig {
  std::string dir;
  std::vector<std::string> keys;    // key name patterns (glob_match)
  std::vector<std::string> models;  // model name patterns
  int retention_days = 0;           // 0: kept for ever
  bool enabled() const { return !dir.empty() && (!keys.empty() || !models.empty()); }
};

struct Config {
  std::string source;  // the file it came from, or "(built-in default)"
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> cors_origins;
  AuthConfig auth;
  std::vector<ModelConfig> models;
  WebRtcConfig webrtc;
  std::string policy_json;  // the `policy` object as JSON text ("" = none)
  // policy.max_event_bytes: the largest event relayed either way (the data channel caps it at
  // 65536 whatever this says).
  std::int64_t max_event_bytes = 65536;
  std::string usage_log;  // path of the usage JSON-lines log ("" = none)
  // The PostgreSQL usage ledger (usage/postgres_ledger.h): a libpq connection string ("" = none),
  // how many records it holds while the database is unreachable, and how long start-up waits
  // for its budget replay and shutdown for its flush.
  std::string usage_postgres_url;
  int usage_postgres_buffer_records = 10000;
  int usage_postgres_timeout_seconds = 5;
  LimitsConfig limits;
  WebSocketConfig websocket;
  ClusterConfig cluster;
  TlsConfig tls;
  TelemetryConfig telemetry;
  TranscriptsConfig transcripts;
  RecordingConfig recording;
  std::string pipeline_file;  // per-call pipeline description ("" = built-in path)
  std::string data_dir;       // the tester page's folder ("" = the source tree's data/)
  bool json_logs = false;

  const ModelConfig* find_model(const std::string& name) const;
  // Listen host and port split from `listen`.
  std::string listen_host() const;
  int listen_port() const;
  bool listens_on_loopback() const;
};

// A configuration error: "FILE: $.json.path: reason".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, const std::string& path, const std::string& reason)
      : std::runtime_error(file + ": " + path + ": " + reason) {}
};

// Reads environment variables; injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

struct Overrides {
  std::optional<std::string> listen;         // --listen
  std::optional<std::string> pipeline_file;  // --pipeline
};

// Loads `file` (or the built-in default when empty), applies env then flag overrides, resolves
// secrets and validates. Throws ConfigError.
Config load(const std::string& file, const Overrides& flags, const EnvLookup& env);
// Same, from JSON text (for tests); `source` names it in errors.
Config load_from_text(const std::string& text, const std::string& source, const Overrides& flags,
                      const EnvLookup& env);

// A human summary of what the gateway would run (for --check-config), secrets masked.
std::string describe(const Config& config);

// Glob match with `*` (any run) and `?` (one char), used for model and key patterns.
bool glob_match(const std::string& pattern, const std::string& text);

// "HOST:PORT" (HOST may be empty or [v6]) split at its last colon; none when there is no colon,
// nothing before it, or PORT is not a number from 0 to 65535.
std::optional<std::pair<std::string, int>> split_host_port(const std::string& text);

}  // namespace rtgw::config
