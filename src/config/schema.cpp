// SPDX-License-Identifier: MIT
#include "config/schema.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

#include "common/json.h"
#include "config/reader.h"
#include "config/structured.h"

namespace rtgw::config {
namespace {

// A row's place in Config; a captureless lambda, so the table stays plain data.
#define SLOT(field) [](Config& c) -> Slot { return &c.field; }

constexpr double kInt64Max = 9223372036854775807.0;

// Help texts say what the key does and why one would change it; ranges and defaults are columns.
const std::vector<Row> kRows = {
    // ---- top level
    {.path = "listen",
     .env = "RTGW_LISTEN",
     .type = Type::kString,
     .help = "HOST:PORT the HTTP server listens on (--listen beats it).",
     .example = "127.0.0.1:9090",
     .slot = SLOT(listen)},
    {.path = "cors_origins",
     .env = "RTGW_CORS_ORIGINS",
     .type = Type::kStringList,
     .help = "Browser origins allowed to call the API (CORS); the variable is comma-separated.",
     .example = "https://app.example.com",
     .slot = SLOT(cors_origins)},
    {.path = "pipeline_file",
     .env = "RTGW_PIPELINE_FILE",
     .type = Type::kString,
     .default_note = "\"\" (the built-in pipelines/call.pipeline)",
     .help = "Per-call pipeline description (--pipeline beats it).",
     .example = "/etc/rtgw/call.pipeline",
     .slot = SLOT(pipeline_file)},
    {.path = "data_dir",
     .env = "RTGW_DATA_DIR",
     .type = Type::kString,
     .default_note = "\"\" (the source tree's data/)",
     .help = "Folder of the tester page.",
     .example = "/srv/rtgw/data",
     .slot = SLOT(data_dir)},
    {.path = "log_json",
     .env = "RTGW_LOG_JSON",
     .type = Type::kBoolean,
     .help = "Log one JSON object per line instead of text.",
     .example = "true",
     .slot = SLOT(json_logs)},

    // ---- auth
    {.path = "auth", .env = "", .type = Type::kSection, .help = "API keys and ephemeral tokens."},
    {.path = "auth.keys",
     .env = "",
     .type = Type::kArray,
     .default_note = "none: unauthenticated calls, accepted on loopback only",
     .help = "API keys clients present as `Authorization: Bearer`.",
     .read = read_keys},
    {.path = "auth.keys[].name",
     .env = "",
     .type = Type::kString,
     .default_note = "required",
     .help = "Unique name of the key (logs, usage records, metrics)."},
    {.path = "auth.keys[].key",
     .env = "",
     .type = Type::kSecret,
     .default_note = "required",
     .help = "The secret, at least 8 characters, unique."},
    {.path = "auth.keys[].models",
     .env = "",
     .type = Type::kStringList,
     .default_note = "[\"*\"]",
     .help = "Model name patterns (`*`, `?`) the key may use."},
    {.path = "auth.keys[].max_concurrent_calls",
     .env = "",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "limits.max_calls_per_key",
     .help = "Live calls plus sessions of this key (429 too_many_calls); 0 = unlimited."},
    {.path = "auth.keys[].admin",
     .env = "",
     .type = Type::kBoolean,
     .default_note = "false",
     .help = "May use the admin routes."},
    {.path = "auth.keys[].budget_tokens",
     .env = "",
     .type = Type::kInteger,
     .min = 0,
     .max = kInt64Max,
     .default_note = "none",
     .help = "Tokens the key may spend over the usage log's lifetime."},
    {.path = "auth.keys[].budget_usd",
     .env = "",
     .type = Type::kNumber,
     .min = 0,
     .max = 1e12,
     .default_note = "none",
     .help = "US dollars the key may spend over the usage log's lifetime."},
    {.path = "auth.keys[].end_calls_over_budget",
     .env = "",
     .type = Type::kBoolean,
     .default_note = "false",
     .help = "A turn that takes the key over a budget also ends its live calls and sessions."},
    {.path = "auth.keys[].budget_duration",
     .env = "",
     .type = Type::kString,
     .default_note = "none (the usage log's lifetime)",
     .help = "Budget period, e.g. \"30d\" (units s, m, h, d): budget_tokens and budget_usd count "
             "only the spend of the current period; periods are aligned on the unix epoch."},
    {.path = "auth.token_secret",
     .env = "RTGW_TOKEN_SECRET",
     .type = Type::kSecret,
     .default_note = "random per process",
     .help = "Signs ephemeral client tokens; share it between instances that accept each "
             "other's tokens.",
     .example = "s3cret-example",
     .slot = SLOT(auth.token_secret)},
    {.path = "auth.token_ttl_seconds",
     .env = "",
     .type = Type::kInteger,
     .min = 10,
     .max = 7200,
     .help = "Lifetime of an ephemeral client token.",
     .example = "300",
     .slot = SLOT(auth.token_ttl_seconds)},
    {.path = "auth.revoke_ends_calls",
     .env = "",
     .type = Type::kBoolean,
     .help = "A revoked, deleted or expired key's live calls and sessions end with an error event "
             "invalid_api_key; false: they run on.",
     .example = "false",
     .slot = SLOT(auth.revoke_ends_calls)},
    {.path = "auth.key_store",
     .env = "RTGW_AUTH_KEY_STORE",
     .type = Type::kString,
     .default_note = "\"\" (none: the admin API answers 501)",
     .help = "\"postgres\": virtual keys managed at run time by the /key/* admin API, kept in "
             "PostgreSQL beside the config file's keys.",
     .example = "postgres",
     .slot = SLOT(auth.key_store)},
    {.path = "auth.key_store_url",
     .env = "RTGW_AUTH_KEY_STORE_URL",
     .type = Type::kSecret,
     .default_note = "\"\" (usage.postgres_url)",
     .help = "The key store's database, a libpq connection string.",
     .example = "postgresql://gw@db.example.com/keys",
     .slot = SLOT(auth.key_store_url)},
    {.path = "auth.key_cache_seconds",
     .env = "RTGW_AUTH_KEY_CACHE_SECONDS",
     .type = Type::kInteger,
     .min = 1,
     .max = 5,
     .help = "How stale an instance's copy of the key table may get: it is re-read twice per "
             "period (a change made on this instance applies at once).",
     .example = "2",
     .slot = SLOT(auth.key_cache_seconds)},

    // ---- models
    {.path = "models",
     .env = "",
     .type = Type::kArray,
     .default_note = "`echo`, plus `gpt-realtime` and `gpt-realtime-mini` when OPENAI_API_KEY is "
                     "set (no config file only)",
     .help = "Models clients may ask for, each with its upstream workers.",
     .read = read_models},
    {.path = "models[].name",
     .env = "",
     .type = Type::kString,
     .default_note = "required",
     .help = "The name clients ask for; unique."},
    {.path = "models[].upstream_model",
     .env = "",
     .type = Type::kString,
     .default_note = "the name",
     .help = "The model name sent to the workers."},
    {.path = "models[].max_turn_tokens",
     .env = "",
     .type = Type::kInteger,
     .min = 1,
     .max = 1000000000,
     .default_note = "none: the key's recent average",
     .help = "The most tokens one response costs: the budget reservation per response.create."},
    {.path = "models[].pricing",
     .env = "",
     .type = Type::kSection,
     .default_note = "none: usage records carry cost_usd null",
     .help = "Price table, US dollars."},
    {.path = "models[].pricing.per_million_tokens",
     .env = "",
     .type = Type::kSection,
     .help = "Prices per million tokens: text_input, text_cached_input, audio_input, "
             "audio_cached_input, image_input, text_output, audio_output (each a number 0 to "
             "1e9; cached prices fall back to the full price)."},
    {.path = "models[].pricing.per_minute",
     .env = "",
     .type = Type::kSection,
     .help = "Prices per minute: transcription (duration-billed transcription), audio (a "
             "translation session's audio, reported as usage.seconds)."},
    {.path = "models[].pricing.fallback_per_million",
     .env = "",
     .type = Type::kNumber,
     .min = 0,
     .max = 1e9,
     .default_note = "the table's highest per-token price",
     .help = "What a token the table has no price for costs."},
    {.path = "models[].workers",
     .env = "",
     .type = Type::kArray,
     .default_note = "required, at least one",
     .help = "Upstream workers serving the model, tried in order."},
    {.path = "models[].workers[].provider",
     .env = "",
     .type = Type::kString,
     .default_note = "\"openai\"",
     .help = "openai, azure, generic or echo (in-process)."},
    {.path = "models[].workers[].name",
     .env = "",
     .type = Type::kString,
     .default_note = "MODEL/INDEX",
     .help = "Name in logs and metrics."},
    {.path = "models[].workers[].url",
     .env = "",
     .type = Type::kString,
     .default_note = "required but for echo",
     .help = "Base URL, http(s)://host[:port][/prefix]; azure: the resource URL."},
    {.path = "models[].workers[].api_key",
     .env = "",
     .type = Type::kSecret,
     .default_note = "none",
     .help = "The worker's key."},
    {.path = "models[].workers[].timeout_seconds",
     .env = "",
     .type = Type::kNumber,
     .min = 0.1,
     .max = 600,
     .default_note = "10",
     .help = "Bound on the whole SDP exchange with the worker."},
    {.path = "models[].workers[].max_calls",
     .env = "",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "0",
     .help = "Calls this worker takes at once; 0 = unlimited."},
    {.path = "models[].workers[].health_path",
     .env = "",
     .type = Type::kString,
     .default_note = "\"/v1/models\" (azure: /openai/models?api-version=...)",
     .help = "GET with the worker's key to check health; \"\" disables checks."},
    {.path = "models[].workers[].health_interval_seconds",
     .env = "",
     .type = Type::kInteger,
     .min = 0,
     .max = 3600,
     .default_note = "10",
     .help = "Between health checks; doubles up to 60 s while failing."},
    {.path = "models[].workers[].breaker_failures",
     .env = "",
     .type = Type::kInteger,
     .min = 1,
     .max = 1000,
     .default_note = "3",
     .help = "Consecutive set-up failures that open the breaker."},
    {.path = "models[].workers[].breaker_open_seconds",
     .env = "",
     .type = Type::kInteger,
     .min = 1,
     .max = 3600,
     .default_note = "10",
     .help = "How long an open breaker waits before letting one probe call through."},
    {.path = "models[].workers[].deployment",
     .env = "",
     .type = Type::kString,
     .default_note = "required for azure",
     .help = "Azure deployment name."},
    {.path = "models[].workers[].api_version",
     .env = "",
     .type = Type::kString,
     .default_note = "\"2025-08-28\"",
     .help = "Azure api-version."},
    {.path = "models[].workers[].max_connections",
     .env = "",
     .type = Type::kInteger,
     .min = 1,
     .max = 10000,
     .default_note = "32",
     .help = "Connections of the worker's own HTTP session."},
    {.path = "models[].workers[].tls_ca_file",
     .env = "",
     .type = Type::kString,
     .default_note = "\"\" (system CAs)",
     .help = "PEM bundle to verify the worker with."},
    {.path = "models[].workers[].tls_client_cert_file",
     .env = "",
     .type = Type::kString,
     .default_note = "\"\"",
     .help = "Client certificate (PEM)."},
    {.path = "models[].workers[].tls_client_key_file",
     .env = "",
     .type = Type::kString,
     .default_note = "\"\" (in the certificate file)",
     .help = "Client certificate key (PEM)."},
    {.path = "models[].workers[].tls_verify",
     .env = "",
     .type = Type::kBoolean,
     .default_note = "true",
     .help = "false accepts any certificate (testing only)."},
    {.path = "models[].workers[].proxy",
     .env = "",
     .type = Type::kString,
     .default_note = "\"\" (the environment's)",
     .help = "http(s):// proxy URL; \"none\" = direct."},

    // ---- webrtc
    {.path = "webrtc", .env = "", .type = Type::kSection, .help = "ICE, NAT and media timing."},
    {.path = "webrtc.stun_server",
     .env = "RTGW_WEBRTC_STUN_SERVER",
     .type = Type::kString,
     .help = "STUN server, stun:host:port (\"\" or \"none\" = no STUN).",
     .example = "stun:stun.example.com:3478",
     .slot = SLOT(webrtc.stun_server)},
    {.path = "webrtc.turn_servers",
     .env = "RTGW_WEBRTC_TURN_SERVERS",
     .type = Type::kStringList,
     .help = "TURN servers, turn(s)://user:password@host:port; the variable is comma-separated.",
     .example = "turn://user:pass@turn.example.com:3478",
     .slot = SLOT(webrtc.turn_servers)},
    {.path = "webrtc.nat_1to1_ips",
     .env = "RTGW_WEBRTC_NAT_1TO1_IPS",
     .type = Type::kStringList,
     .help = "Public IP addresses to advertise for a host behind 1:1 NAT.",
     .example = "203.0.113.7",
     .slot = SLOT(webrtc.nat_1to1_ips)},
    {.path = "webrtc.ice_interfaces",
     .env = "RTGW_WEBRTC_ICE_INTERFACES",
     .type = Type::kStringList,
     .default_note = "[] (every interface)",
     .help = "Interfaces or addresses to gather candidates on.",
     .example = "eth0",
     .slot = SLOT(webrtc.ice_interfaces)},
    {.path = "webrtc.udp_port_min",
     .env = "RTGW_WEBRTC_UDP_PORT_MIN",
     .type = Type::kInteger,
     .min = 0,
     .max = 65535,
     .default_note = "0 (any port)",
     .help = "Lowest UDP port for candidates; set with udp_port_max.",
     .example = "40000",
     .slot = SLOT(webrtc.udp_port_min)},
    {.path = "webrtc.udp_port_max",
     .env = "RTGW_WEBRTC_UDP_PORT_MAX",
     .type = Type::kInteger,
     .min = 0,
     .max = 65535,
     .default_note = "0 (any port)",
     .help = "Highest UDP port for candidates; set with udp_port_min.",
     .example = "40100",
     .slot = SLOT(webrtc.udp_port_max)},
    {.path = "webrtc.ice_transport_policy",
     .env = "RTGW_WEBRTC_ICE_TRANSPORT_POLICY",
     .type = Type::kString,
     .help = "\"all\", or \"relay\": TURN candidates only (needs turn_servers).",
     .example = "relay",
     .slot = SLOT(webrtc.ice_transport_policy)},
    {.path = "webrtc.ice_tcp",
     .env = "RTGW_WEBRTC_ICE_TCP",
     .type = Type::kBoolean,
     .help = "Gather and advertise ICE-TCP candidates.",
     .example = "false",
     .slot = SLOT(webrtc.ice_tcp)},
    {.path = "webrtc.ice_ipv6",
     .env = "RTGW_WEBRTC_ICE_IPV6",
     .type = Type::kBoolean,
     .help = "Advertise IPv6 candidates.",
     .example = "false",
     .slot = SLOT(webrtc.ice_ipv6)},
    {.path = "webrtc.ice_agent",
     .env = "RTGW_WEBRTC_ICE_AGENT",
     .type = Type::kString,
     .help = "\"shared\": one libnice thread for every call, consent freshness on; \"stock\": "
             "webrtcbin's own agent.",
     .example = "stock",
     .slot = SLOT(webrtc.ice_agent)},
    {.path = "webrtc.receive_queue_bypass",
     .env = "RTGW_WEBRTC_RECEIVE_QUEUE_BYPASS",
     .type = Type::kBoolean,
     .help = "With the shared ICE agent: once ICE is connected, received packets skip webrtcbin's "
             "receive queue and its thread; false: the stock queue.",
     .example = "false",
     .slot = SLOT(webrtc.receive_queue_bypass)},
    {.path = "webrtc.ice_epoll",
     .env = "RTGW_WEBRTC_ICE_EPOLL",
     .type = Type::kBoolean,
     .help = "The shared ICE threads (ice_agent \"shared\") wait with epoll, which costs a "
             "wake-up the ready sockets only; false: poll() over every call's sockets.",
     .example = "false",
     .slot = SLOT(webrtc.ice_epoll)},
    {.path = "webrtc.ice_threads",
     .env = "RTGW_WEBRTC_ICE_THREADS",
     .type = Type::kInteger,
     .min = 0,
     .max = 64,
     .help = "With the shared ICE agent: how many threads (rtgw-ice-N) run every call's libnice "
             "agents, each new agent on the next round robin; 0 = one per CPU.",
     .example = "1",
     .slot = SLOT(webrtc.ice_threads)},
    {.path = "webrtc.dtls_certificate",
     .env = "RTGW_WEBRTC_DTLS_CERTIFICATE",
     .type = Type::kString,
     .help = "\"rsa\": GStreamer's RSA-2048 DTLS certificate; \"ecdsa\": an ECDSA P-256 one made "
             "at first use (cheaper handshakes).",
     .example = "ecdsa",
     .slot = SLOT(webrtc.dtls_certificate)},
    {.path = "webrtc.send_events_from_stream_thread",
     .env = "RTGW_WEBRTC_SEND_EVENTS_FROM_STREAM_THREAD",
     .type = Type::kBoolean,
     .help = "Send a relayed data-channel event from the thread the event path decided it on, "
             "skipping the main loop when nothing of its direction waits there; false: every "
             "event crosses the main loop.",
     .example = "false",
     .slot = SLOT(webrtc.send_events_from_stream_thread)},
    {.path = "webrtc.ice_gathering_timeout_ms",
     .env = "",
     .type = Type::kInteger,
     .min = 10,
     .max = 60000,
     .help = "Bound on every candidate gathering wait.",
     .example = "1000",
     .slot = SLOT(webrtc.ice_gathering_timeout_ms)},
    {.path = "webrtc.ice_connect_timeout_seconds",
     .env = "",
     .type = Type::kInteger,
     .min = 1,
     .max = 600,
     .help = "Each leg must connect (ICE) within this.",
     .example = "30",
     .slot = SLOT(webrtc.ice_connect_timeout_seconds)},
    {.path = "webrtc.jitterbuffer",
     .env = "RTGW_WEBRTC_JITTERBUFFER",
     .type = Type::kBoolean,
     .help = "false: forward RTP as received; true: webrtcbin's own jitterbuffer "
             "(jitterbuffer_latency_ms).",
     .example = "true",
     .slot = SLOT(webrtc.jitterbuffer)},
    {.path = "webrtc.jitterbuffer_latency_ms",
     .env = "RTGW_WEBRTC_JITTERBUFFER_LATENCY_MS",
     .type = Type::kInteger,
     .min = 0,
     .max = 2000,
     .help = "webrtcbin's latency when the jitterbuffer is on.",
     .example = "50",
     .slot = SLOT(webrtc.jitterbuffer_latency_ms)},
    {.path = "webrtc.peer_timeout_seconds",
     .env = "RTGW_WEBRTC_PEER_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 0,
     .max = 3600,
     .help = "A leg whose peer sends nothing this long is dead and the call ends; 0 disables.",
     .example = "7",
     .slot = SLOT(webrtc.peer_timeout_seconds)},
    {.path = "webrtc.client_media_timeout_seconds",
     .env = "",
     .type = Type::kInteger,
     .min = 0,
     .max = 3600,
     .help = "Deprecated: a client that sends no audio this long is treated as gone; 0 = off.",
     .example = "30",
     .slot = SLOT(webrtc.client_media_timeout_seconds)},

    // ---- policy
    {.path = "policy",
     .env = "",
     .type = Type::kSection,
     .default_note = "none",
     .help = "Event policy, passed whole to the rtevents filter (docs/behaviour.md); only the "
             "keys below are read by the gateway itself.",
     .read = read_policy,
     .open = true},
    {.path = "policy.max_event_bytes",
     .env = "",
     .type = Type::kInteger,
     .min = 64,
     .max = 16 << 20,
     .help = "Largest event relayed either way (the data channel caps it at 65536).",
     .example = "32768",
     .slot = SLOT(max_event_bytes)},

    // ---- usage
    {.path = "usage", .env = "", .type = Type::kSection, .help = "Where usage records go."},
    {.path = "usage.log",
     .env = "RTGW_USAGE_LOG",
     .type = Type::kString,
     .default_note = "\"\" (none)",
     .help = "Path of the usage JSON-lines log.",
     .example = "/var/log/rtgw/usage.jsonl",
     .slot = SLOT(usage_log)},
    {.path = "usage.postgres_url",
     .env = "RTGW_USAGE_POSTGRES_URL",
     .type = Type::kSecret,
     .default_note = "\"\" (none)",
     .help = "PostgreSQL usage ledger, a libpq connection string.",
     .example = "postgresql://gw@db.example.com/usage",
     .slot = SLOT(usage_postgres_url)},
    {.path = "usage.postgres_buffer_records",
     .env = "RTGW_USAGE_POSTGRES_BUFFER_RECORDS",
     .type = Type::kInteger,
     .min = 1,
     .max = 10000000,
     .help = "Records held while the database is unreachable.",
     .example = "500",
     .slot = SLOT(usage_postgres_buffer_records)},
    {.path = "usage.postgres_timeout_seconds",
     .env = "RTGW_USAGE_POSTGRES_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 0,
     .max = 600,
     .help = "How long start-up waits for the budget replay and shutdown for the flush.",
     .example = "10",
     .slot = SLOT(usage_postgres_timeout_seconds)},

    // ---- transcripts
    {.path = "transcripts",
     .env = "",
     .type = Type::kSection,
     .help = "Transcripts, opt-in: a call or session whose key or model matches has its input and "
             "output transcripts stored per turn (docs/operations.md#transcripts)."},
    {.path = "transcripts.keys",
     .env = "",
     .type = Type::kStringList,
     .default_note = "[] (none)",
     .help = "Key name patterns (`*`, `?`) whose calls and sessions are transcribed.",
     .example = "support-*",
     .slot = SLOT(transcripts.keys)},
    {.path = "transcripts.models",
     .env = "",
     .type = Type::kStringList,
     .default_note = "[] (none)",
     .help = "Model name patterns whose calls and sessions are transcribed.",
     .example = "gpt-realtime*",
     .slot = SLOT(transcripts.models)},
    {.path = "transcripts.enable_input_transcription",
     .env = "",
     .type = Type::kBoolean,
     .help = "A transcribed call or session whose session does not name input transcription gets "
             "it switched on for the worker (a client's explicit setting is kept).",
     .example = "true",
     .slot = SLOT(transcripts.enable_input_transcription)},
    {.path = "transcripts.input_transcription_model",
     .env = "",
     .type = Type::kString,
     .help = "The transcription model enable_input_transcription asks the worker for.",
     .example = "whisper-1",
     .slot = SLOT(transcripts.input_transcription_model)},
    {.path = "transcripts.log",
     .env = "RTGW_TRANSCRIPTS_LOG",
     .type = Type::kString,
     .default_note = "\"\" (`{usage.log}.transcripts.jsonl`; none without usage.log)",
     .help = "JSON-lines file of transcript entries when usage.postgres_url is not set.",
     .example = "/var/log/rtgw/transcripts.jsonl",
     .slot = SLOT(transcripts.log)},

    // ---- limits
    {.path = "limits",
     .env = "",
     .type = Type::kSection,
     .help = "Caps and timeouts. Caps marked sized default to figures from the open-file limit "
             "(docs/security.md)."},
    {.path = "limits.max_body_bytes",
     .env = "RTGW_MAX_BODY_BYTES",
     .type = Type::kInteger,
     .min = 1024,
     .max = 64 << 20,
     .help = "POST bodies (413 above).",
     .example = "65536",
     .slot = SLOT(limits.max_body_bytes)},
    {.path = "limits.max_pending_event_bytes",
     .env = "",
     .type = Type::kInteger,
     .min = 1024,
     .max = 1 << 30,
     .help = "Events held per direction while a channel is not open.",
     .example = "65536",
     .slot = SLOT(limits.max_pending_event_bytes)},
    {.path = "limits.max_outgoing_buffer_bytes",
     .env = "RTGW_MAX_OUTGOING_BUFFER_BYTES",
     .type = Type::kInteger,
     .min = 16 << 10,
     .max = 1 << 30,
     .help = "What may wait towards a peer that does not read, per direction per connection; "
             "past it the WebSocket closes 1008 or the call ends.",
     .example = "1048576",
     .slot = SLOT(limits.max_outgoing_buffer_bytes)},
    {.path = "limits.max_calls",
     .env = "RTGW_MAX_CALLS",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "sized",
     .help = "Live calls plus sessions (503 no_capacity); 0 = unlimited.",
     .example = "100",
     .slot = SLOT(limits.max_calls)},
    {.path = "limits.max_calls_per_key",
     .env = "RTGW_MAX_CALLS_PER_KEY",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "sized: max_calls / 2",
     .help = "Calls plus sessions of a key without its own max_concurrent_calls "
             "(429 too_many_calls); 0 = none.",
     .example = "10",
     .slot = SLOT(limits.max_calls_per_key)},
    {.path = "limits.max_setups",
     .env = "RTGW_MAX_SETUPS",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "sized: max_calls / 4, at least 4",
     .help = "Calls set up but not yet connected (503 no_capacity); 0 = unlimited.",
     .example = "20",
     .slot = SLOT(limits.max_setups)},
    {.path = "limits.max_setups_per_key",
     .env = "RTGW_MAX_SETUPS_PER_KEY",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "sized: max_setups / 2",
     .help = "Set-ups in progress per key (429 too_many_calls); 0 = unlimited.",
     .example = "5",
     .slot = SLOT(limits.max_setups_per_key)},
    {.path = "limits.max_sidebands_per_call",
     .env = "RTGW_MAX_SIDEBANDS_PER_CALL",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000,
     .help = "Sideband sockets on one call (429 too_many_sidebands).",
     .example = "2",
     .slot = SLOT(limits.max_sidebands_per_call)},
    {.path = "limits.drain_timeout_seconds",
     .env = "RTGW_DRAIN_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 0,
     .max = 3600,
     .help = "After SIGTERM, how long live calls may run on.",
     .example = "30",
     .slot = SLOT(limits.drain_timeout_seconds)},
    {.path = "limits.max_header_bytes",
     .env = "RTGW_MAX_HEADER_BYTES",
     .type = Type::kInteger,
     .min = 1024,
     .max = 65536,
     .help = "Request line plus headers (431 above).",
     .example = "8192",
     .slot = SLOT(limits.max_header_bytes)},
    {.path = "limits.header_timeout_seconds",
     .env = "RTGW_HEADER_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 1,
     .max = 3600,
     .help = "A connection must deliver its headers within this.",
     .example = "5",
     .slot = SLOT(limits.header_timeout_seconds)},
    {.path = "limits.idle_timeout_seconds",
     .env = "RTGW_IDLE_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 1,
     .max = 86400,
     .help = "A request body that stalls this long is closed.",
     .example = "30",
     .slot = SLOT(limits.idle_timeout_seconds)},
    {.path = "limits.max_connections",
     .env = "RTGW_MAX_CONNECTIONS",
     .type = Type::kInteger,
     .min = 1,
     .max = 1000000,
     .default_note = "sized",
     .help = "Open HTTP and WebSocket connections.",
     .example = "200",
     .slot = SLOT(limits.max_connections)},
    {.path = "limits.reserved_connections",
     .env = "RTGW_RESERVED_CONNECTIONS",
     .type = Type::kInteger,
     .min = 0,
     .max = 1000000,
     .default_note = "max_connections / 10",
     .help = "Connections kept for requests with a key or token and for /healthz and /readyz; "
             "must be below max_connections.",
     .example = "20",
     .slot = SLOT(limits.reserved_connections)},
    {.path = "limits.body_timeout_seconds",
     .env = "RTGW_BODY_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 1,
     .max = 3600,
     .help = "A request body must be in within this of its headers.",
     .example = "10",
     .slot = SLOT(limits.body_timeout_seconds)},
    {.path = "limits.min_body_bytes_per_second",
     .env = "RTGW_MIN_BODY_BYTES_PER_SECOND",
     .type = Type::kInteger,
     .min = 0,
     .max = 1 << 30,
     .help = "Slowest body rate accepted after a 2 s grace; 0 = no minimum.",
     .example = "1000",
     .slot = SLOT(limits.min_body_bytes_per_second)},

    // ---- websocket
    {.path = "websocket",
     .env = "",
     .type = Type::kSection,
     .help = "WebSocket realtime sessions (GET /v1/realtime) and sideband sockets."},
    {.path = "websocket.idle_timeout_seconds",
     .env = "RTGW_WEBSOCKET_IDLE_TIMEOUT_SECONDS",
     .type = Type::kInteger,
     .min = 0,
     .max = 86400,
     .help = "No message either way this long closes the socket; 0 = never.",
     .example = "60",
     .slot = SLOT(websocket.idle_timeout_seconds)},
    {.path = "websocket.max_message_bytes",
     .env = "RTGW_WEBSOCKET_MAX_MESSAGE_BYTES",
     .type = Type::kInteger,
     .min = 1024,
     .max = 64 << 20,
     .help = "A client message above this closes the socket with 1009.",
     .example = "1048576",
     .slot = SLOT(websocket.max_message_bytes)},
    {.path = "websocket.pipeline_file",
     .env = "RTGW_WEBSOCKET_PIPELINE_FILE",
     .type = Type::kString,
     .default_note = "\"\" (the built-in pipelines/session.pipeline)",
     .help = "Per-session event pipeline description.",
     .example = "/etc/rtgw/session.pipeline",
     .slot = SLOT(websocket.pipeline_file)},

    // ---- recording (recording/: per-call Ogg/Opus files, issue 27)
    {.path = "recording",
     .env = "",
     .type = Type::kSection,
     .default_note = "absent: no call is recorded",
     .help = "Per-call recording: each audio direction's Opus to an Ogg/Opus file (no decoding) "
             "for calls whose key or model matches; GET /v1/realtime/calls/{id}/recording."},
    {.path = "recording.dir",
     .env = "RTGW_RECORDING_DIR",
     .type = Type::kString,
     .default_note = "\"\" (recording off)",
     .help = "Folder of the files ({call_id}.client.ogg, {call_id}.upstream.ogg and the "
             "{call_id}.json sidecar); created if missing. --check-config checks it is writable.",
     .example = "/var/lib/realtime-gateway/recordings",
     .slot = SLOT(recording.dir)},
    {.path = "recording.keys",
     .env = "RTGW_RECORDING_KEYS",
     .type = Type::kStringList,
     .default_note = "[] (none)",
     .help = "Key name patterns (`*`, `?`) whose calls are recorded (a call is recorded when its "
             "key or its model matches).",
     .example = "support-*",
     .slot = SLOT(recording.keys)},
    {.path = "recording.models",
     .env = "RTGW_RECORDING_MODELS",
     .type = Type::kStringList,
     .default_note = "[] (none)",
     .help = "Model name patterns (`*`, `?`) whose calls are recorded.",
     .example = "gpt-realtime",
     .slot = SLOT(recording.models)},
    {.path = "recording.retention_days",
     .env = "RTGW_RECORDING_RETENTION_DAYS",
     .type = Type::kInteger,
     .min = 0,
     .max = 36500,
     .default_note = "0 (kept for ever)",
     .help = "Recordings (and their sidecars) older than this are removed by a sweep at start-up "
             "and hourly.",
     .example = "30",
     .slot = SLOT(recording.retention_days)},

    // ---- cluster
    {.path = "cluster",
     .env = "",
     .type = Type::kSection,
     .default_note = "absent: one instance, no Redis",
     .help = "Scale-out: instances sharing one Redis act as one gateway. Present (or "
             "RTGW_CLUSTER_REDIS_URL set): cluster mode.",
     .read = read_cluster},
    {.path = "cluster.redis_url",
     .env = "RTGW_CLUSTER_REDIS_URL",
     .type = Type::kSecret,
     .default_note = "required in cluster mode",
     .help = "redis://[[user]:password@]host[:port][/db]; the variable alone turns cluster mode "
             "on.",
     .example = "redis://127.0.0.1:6390/2",
     .slot = SLOT(cluster.redis_url),
     .on_env = enable_cluster},
    {.path = "cluster.internal_secret",
     .env = "RTGW_CLUSTER_SECRET",
     .type = Type::kSecret,
     .default_note = "required in cluster mode",
     .help = "Authenticates instance-to-instance requests; at least 16 characters.",
     .example = "0123456789abcdef-example",
     .slot = SLOT(cluster.internal_secret)},
    {.path = "cluster.instance_id",
     .env = "RTGW_CLUSTER_INSTANCE_ID",
     .type = Type::kString,
     .default_note = "hostname:port",
     .help = "This instance's name among its peers.",
     .example = "gw-1",
     .slot = SLOT(cluster.instance_id)},
    {.path = "cluster.advertise_url",
     .env = "RTGW_CLUSTER_ADVERTISE_URL",
     .type = Type::kString,
     .default_note = "http://LISTEN (required when listening on every interface)",
     .help = "How peers reach this instance, http(s)://host:port.",
     .example = "http://10.0.0.5:8080",
     .slot = SLOT(cluster.advertise_url)},
    {.path = "cluster.lease_seconds",
     .env = "RTGW_CLUSTER_LEASE_SECONDS",
     .type = Type::kInteger,
     .min = 2,
     .max = 3600,
     .help = "A dead instance's leases lapse within this.",
     .example = "20",
     .slot = SLOT(cluster.lease_seconds)},

    // ---- tls
    {.path = "tls",
     .env = "",
     .type = Type::kSection,
     .default_note = "absent: plain HTTP",
     .help = "HTTPS and WSS on the listener; SIGHUP re-reads the pair (a failed one keeps the "
             "pair in use)."},
    {.path = "tls.cert_file",
     .env = "RTGW_TLS_CERT_FILE",
     .type = Type::kString,
     .default_note = "\"\" (plain HTTP)",
     .help = "PEM certificate, the chain after the leaf; with tls.key_file the listener serves "
             "HTTPS and WSS only. --check-config refuses an unreadable or mismatched pair.",
     .example = "/etc/realtime-gateway/fullchain.pem",
     .slot = SLOT(tls.cert_file)},
    {.path = "tls.key_file",
     .env = "RTGW_TLS_KEY_FILE",
     .type = Type::kString,
     .default_note = "\"\"",
     .help = "PEM private key of tls.cert_file.",
     .example = "/etc/realtime-gateway/privkey.pem",
     .slot = SLOT(tls.key_file)},
    {.path = "tls.redirect_http",
     .env = "RTGW_TLS_REDIRECT_HTTP",
     .type = Type::kString,
     .default_note = "\"\" (none)",
     .help = "HOST:PORT of a second, plain listener answering every request with a 308 to the "
             "same path over HTTPS.",
     .example = "0.0.0.0:8081",
     .slot = SLOT(tls.redirect_http)},

    // ---- telemetry (telemetry/: OpenTelemetry traces)
    {.path = "telemetry",
     .env = "",
     .type = Type::kSection,
     .default_note = "absent: no traces",
     .help = "OpenTelemetry traces over OTLP/HTTP JSON: a span per call and WebSocket session, "
             "child spans for its set-up steps, an event per response.done (docs/operations.md)."},
    {.path = "telemetry.otlp_endpoint",
     .env = "RTGW_TELEMETRY_OTLP_ENDPOINT",
     .type = Type::kString,
     .default_note = "\"\" (no exporter, no spans built)",
     .help = "Collector base URL, http(s)://host:port[/prefix]; spans are posted to "
             "{otlp_endpoint}/v1/traces in batches. A down collector drops spans "
             "(rtgw_telemetry_dropped_total), never slows a call.",
     .example = "http://127.0.0.1:4318",
     .slot = SLOT(telemetry.otlp_endpoint)},
    {.path = "telemetry.service_name",
     .env = "RTGW_TELEMETRY_SERVICE_NAME",
     .type = Type::kString,
     .help = "The resource's service.name on every span.",
     .example = "gateway-eu-1",
     .slot = SLOT(telemetry.service_name)},
    {.path = "telemetry.headers",
     .env = "",
     .type = Type::kSection,
     .default_note = "{} (none)",
     .help = "Extra headers sent to the collector, an object of strings (e.g. an API key); a "
             "value may be \"env:NAME\".",
     .read = read_telemetry_headers,
     .open = true},
    {.path = "telemetry.include_content",
     .env = "RTGW_TELEMETRY_INCLUDE_CONTENT",
     .type = Type::kBoolean,
     .help = "Add a response.done's transcript text (at most 4096 bytes) to its span event; off, "
             "spans carry no prompt, transcript or audio.",
     .example = "true",
     .slot = SLOT(telemetry.include_content)},
};

#undef SLOT

// "limits.max_calls" -> parent "limits", name "max_calls"; "listen" -> "", "listen".
std::pair<std::string, std::string> split_path(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}

std::string json_path(const std::string& path) { return path.empty() ? "$" : "$." + path; }

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

[[noreturn]] void env_fail(const Row& row, const std::string& reason) {
  throw ConfigError("environment", row.env, reason);
}

std::string range_text(const Row& row) {
  if (row.type == Type::kInteger)
    return std::to_string(static_cast<std::int64_t>(row.min)) + " and " +
           std::to_string(static_cast<std::int64_t>(row.max));
  return shortest(row.min) + " and " + shortest(row.max);
}

// One parser per type for the variables; the file's go through Reader.
void set_from_env(const Row& row, const std::string& value, Config& c) {
  Slot slot = row.slot(c);
  switch (row.type) {
    case Type::kString:
    case Type::kSecret:
      *std::get<std::string*>(slot) = value;
      break;
    case Type::kStringList:
      *std::get<std::vector<std::string>*>(slot) = split_list(value);
      break;
    case Type::kBoolean:
      // Strict: a typo ("yes", "ture", "off") must not quietly turn a feature off.
      if (value == "1" || value == "true")
        *std::get<bool*>(slot) = true;
      else if (value == "0" || value == "false")
        *std::get<bool*>(slot) = false;
      else
        env_fail(row, "expected true, false, 1 or 0, got '" + value + "'");
      break;
    case Type::kInteger: {
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end || errno != 0 || v < row.min || v > row.max)
        env_fail(row, "expected an integer between " + range_text(row) + ", got '" + value + "'");
      if (auto* i = std::get_if<int*>(&slot))
        **i = static_cast<int>(v);
      else
        *std::get<std::int64_t*>(slot) = v;
      break;
    }
    case Type::kNumber: {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end || !(v >= row.min && v <= row.max))
        env_fail(row, "expected a number between " + range_text(row) + ", got '" + value + "'");
      *std::get<double*>(slot) = v;
      break;
    }
    case Type::kSection:
    case Type::kArray:
      break;
  }
}

void set_from_file(const Reader& r, const Row& row, JsonNode* node, Config& c) {
  const std::string at = json_path(row.path);
  Slot slot = row.slot(c);
  switch (row.type) {
    case Type::kString:
      *std::get<std::string*>(slot) = r.string(node, at);
      break;
    case Type::kSecret:
      *std::get<std::string*>(slot) = r.secret(node, at);
      break;
    case Type::kStringList:
      *std::get<std::vector<std::string>*>(slot) = r.strings(node, at);
      break;
    case Type::kBoolean:
      *std::get<bool*>(slot) = r.boolean(node, at);
      break;
    case Type::kInteger: {
      std::int64_t v = r.integer(node, at, static_cast<std::int64_t>(row.min),
                                 static_cast<std::int64_t>(row.max));
      if (auto* i = std::get_if<int*>(&slot))
        **i = static_cast<int>(v);
      else
        *std::get<std::int64_t*>(slot) = v;
      break;
    }
    case Type::kNumber:
      *std::get<double*>(slot) = r.number(node, at, row.min, row.max);
      break;
    case Type::kSection:
    case Type::kArray:
      break;
  }
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// The value as a JSON literal ("relay", 10, true, ["a","b"]), secrets masked when asked.
std::string literal(const Row& row, Config& c, bool mask) {
  Slot slot = row.slot(c);
  if (row.type == Type::kSecret && mask)
    return std::get<std::string*>(slot)->empty() ? "(none)" : "(set)";
  struct Show {
    std::string operator()(std::string* v) const { return quote(*v); }
    std::string operator()(int* v) const { return std::to_string(*v); }
    std::string operator()(std::int64_t* v) const { return std::to_string(*v); }
    std::string operator()(double* v) const { return shortest(*v); }
    std::string operator()(bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(std::vector<std::string>* v) const {
      std::string out = "[";
      for (size_t i = 0; i < v->size(); i++) out += (i ? "," : "") + quote((*v)[i]);
      return out + "]";
    }
  };
  return std::visit(Show{}, slot);
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kString:
      return "string";
    case Type::kSecret:
      return "secret";
    case Type::kInteger:
      return "integer";
    case Type::kNumber:
      return "number";
    case Type::kBoolean:
      return "boolean";
    case Type::kStringList:
      return "list of strings";
    case Type::kSection:
      return "object";
    case Type::kArray:
      return "array of objects";
  }
  return "?";
}

std::string default_text(const Row& row) {
  if (row.default_note) return row.default_note;
  if (!row.slot) return "";
  Config defaults;
  return literal(row, defaults, false);
}

std::string range_column(const Row& row) {
  if (row.type != Type::kInteger && row.type != Type::kNumber) return "";
  if (row.type == Type::kInteger && row.max == kInt64Max)
    return std::to_string(static_cast<std::int64_t>(row.min)) + " to 2^63-1";
  std::string r = range_text(row);
  return r.replace(r.find(" and "), 5, " to ");
}

std::string cell(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += '\\';
    out += ch;
  }
  return out;
}

}  // namespace

const std::vector<Row>& rows() { return kRows; }

const Row* find_row(const std::string& path) {
  for (const auto& row : kRows)
    if (path == row.path) return &row;
  return nullptr;
}

std::set<std::string> members_of(const std::string& path) {
  std::set<std::string> out;
  for (const auto& row : kRows) {
    auto [parent, name] = split_path(row.path);
    if (parent == path) out.insert(name);
  }
  return out;
}

void read_rows(const Reader& r, JsonObject* obj, const std::string& path, Config& c) {
  const Row* self = path.empty() ? nullptr : find_row(path);
  if (!self || !self->open) r.only(obj, json_path(path), members_of(path));
  for (const auto& row : kRows) {
    auto [parent, name] = split_path(row.path);
    if (parent != path) continue;
    JsonNode* node = member(obj, name.c_str());
    if (!node) continue;
    if (row.type == Type::kSection) {
      read_rows(r, r.object(node, json_path(row.path)), row.path, c);
      if (row.read) row.read(r, node, json_path(row.path), c);
    } else if (row.type == Type::kArray) {
      row.read(r, node, json_path(row.path), c);
    } else {
      set_from_file(r, row, node, c);
    }
  }
}

void apply_env_rows(const EnvLookup& env, Config& c) {
  for (const auto& row : kRows) {
    if (!*row.env) continue;
    auto value = env(row.env);
    if (!value) continue;
    set_from_env(row, *value, c);
    if (row.on_env) row.on_env(c);
  }
}

std::string show_value(const Row& row, Config& c, bool mask) { return literal(row, c, mask); }

std::string describe_settings(const Config& config) {
  Config c = config;  // slots hand out mutable pointers; describe() must not change its input
  std::ostringstream out;
  out << "settings (every scalar key, docs/config.md):\n";
  for (const auto& row : kRows) {
    if (!row.slot) continue;
    out << "  " << row.path << "=" << show_value(row, c);
    auto [parent, name] = split_path(row.path);
    if (parent == "limits" &&
        std::find(c.limits.sized.begin(), c.limits.sized.end(), name) != c.limits.sized.end())
      out << " (sized)";
    out << "\n";
  }
  return out.str();
}

std::string env_help() {
  std::ostringstream out;
  out << "Environment variables (flags beat variables beat the file; booleans are true, false, 1 "
         "or 0;\nlists are comma-separated; docs/config.md describes every key):\n";
  for (const auto& row : kRows) {
    if (!*row.env) continue;
    out << "  " << row.env << " = " << row.path << " (" << type_name(row.type);
    std::string range = range_column(row);
    if (!range.empty()) out << ", " << range;
    out << ", default " << default_text(row) << ")\n      " << row.help << "\n";
  }
  return out.str();
}

std::string reference_markdown() {
  std::ostringstream out;
  out << "# Configuration reference\n\n"
         "<!-- Generated by `realtime-gateway --config-reference` from src/config/schema.cpp; do "
         "not edit. A test fails when this file differs from the generated text. -->\n\n"
         "The gateway reads one JSON file (`--config FILE`; none: the built-in `echo` model on "
         "127.0.0.1:8080). `RTGW_*` variables override the file and flags (`--listen`, "
         "`--pipeline`) override both. An unknown key, a value of the wrong type or out of range "
         "is a start-up error naming the file (or `environment`), the key and the reason. "
         "Booleans in variables are exactly `true`, `false`, `1` or `0`; lists are "
         "comma-separated. A secret may be written `env:NAME` in the file to read it from the "
         "variable NAME. `--check-config` prints every value below as loaded.\n\n"
         "To add a key, see docs/architecture.md, \"Adding a config key\".\n";
  std::string section = "-";
  for (const auto& row : kRows) {
    std::string path = row.path;
    auto dot = path.find_first_of(".[");
    std::string top = dot == std::string::npos ? "" : path.substr(0, dot);
    if (row.type == Type::kSection || row.type == Type::kArray)
      if (path.find_first_of(".[") == std::string::npos) top = path;
    if (top != section) {
      section = top;
      out << "\n## " << (top.empty() ? "Top level" : "`" + top + "`") << "\n\n"
          << "| Key | Variable | Type | Range | Default | Description |\n"
          << "|---|---|---|---|---|---|\n";
    }
    out << "| `" << path << "` | " << (*row.env ? "`" + std::string(row.env) + "`" : "") << " | "
        << type_name(row.type) << " | " << range_column(row) << " | " << cell(default_text(row))
        << " | " << cell(row.help);
    if (*row.example) out << " Example: `" << row.example << "`.";
    out << " |\n";
  }
  return out.str();
}

}  // namespace rtgw::config
