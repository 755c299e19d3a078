// SPDX-License-Identifier: MIT
// The HTTP route layer.
//
// Owns: the SoupServer, routing requests by method and path, the checks made on the headers alone
// (431 header size, 413 body size whatever the framing, the keyless mode's loopback Host), and
// the one boundary that turns any HttpError into the SPEC's JSON error exactly once. Connections
// reach the SoupServer through a ConnectionGuard (accept, limits, deadlines, no keep-alive).
// Handlers here translate HTTP to service calls (auth, admission, calls, sessions) and back; they
// never touch pads. Whether a call or session may start is admission's (admission/admission.h):
// a handler parses, asks `admit`, and maps a refusal to its error (refusal_error). The WebSocket
// route (`GET /v1/realtime`) is in realtime_socket.cpp, the legacy (beta) routes in
// legacy_routes.cpp.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "admission/admission.h"
#include "auth/authenticator.h"
#include "auth/token_mint.h"
#include "calls/call_registry.h"
#include "cluster/cluster.h"
#include "cluster/peer_client.h"
#include "common/ref.h"
#include "config/config.h"
#include "config/snapshots.h"
#include "console/console_feed.h"
#include "http/connection_guard.h"
#include "http/console_streams.h"
#include "http/cors.h"
#include "http/http_error.h"
#include "metrics/metrics.h"
#include "sdp/session_description.h"
#include "sessions/session_registry.h"
#include "telemetry/tracer.h"
#include "transcripts/transcript_store.h"
#include "usage/budget_reservations.h"
#include "usage/usage_report.h"
#include "workers/worker_pool.h"

namespace rtgw::keys {
class KeyManager;
}

namespace rtgw::http {

inline constexpr const char* kRealtimePath = "/v1/realtime";
inline constexpr const char* kCallsPath = "/v1/realtime/calls";
// Translation sessions (SPEC "Translation sessions", http/translation_routes.cpp).
inline constexpr const char* kTranslationsPath = "/v1/realtime/translations";
inline constexpr const char* kTranslationCallsPath = "/v1/realtime/translations/calls";
inline constexpr const char* kTranslationSecretsPath = "/v1/realtime/translations/client_secrets";

// Which route a WebRTC call came in by: the GA calls route, the legacy (beta) one, or the
// translation one. One handler serves all three (handle_create_call).
enum class CallRoute { kRealtime, kBeta, kTranslation };

struct Services {
  // The current config snapshot (a reload applies to the next request); see config/snapshots.h.
  config::ConfigView config;
  const auth::Authenticator& auth;
  calls::CallRegistry& calls;
  workers::WorkerPool& workers;
  metrics::Registry& metrics;
  relay::SessionRegistry& sessions;
  std::string pipeline_description;          // per call
  std::string session_pipeline_description;  // per WebSocket session
  std::function<bool(const std::string& key_name)> over_budget;
  std::string data_dir;  // the tester page
  // GET /v1/usage's source: answers the query off the main loop and calls back on it; false when
  // it is too busy. Its reply's `unavailable` answers 503 usage_store_unavailable. Unset: the JSONL
  // usage log (usage/usage_report.h).
  std::function<bool(usage::UsageQuery, std::function<void(usage::UsageReply)>)> usage_report;
  // Cluster mode (cluster/cluster.h); null: one instance, nothing shared.
  cluster::Cluster* cluster = nullptr;
  // Virtual keys and the /key/* admin API (http/key_routes.h); null: 501 without a key store.
  keys::KeyManager* key_manager = nullptr;
};

// The body of a token mint (`POST .../client_secrets`): a JSON object (an empty body reads as
// `{}`) with an optional `session` object, returned as a copy the route completes (`{}` without
// one). Throws HttpError 400 invalid_json / invalid_session.
struct MintRequest {
  Ref<JsonNode> root;
  JsonObject* body = nullptr;  // root's object
  Ref<JsonNode> session;
};
MintRequest parse_mint_request(const std::string& text);

class Server {
 public:
  explicit Server(Services services);
  ~Server();

  // Listens on config.listen; throws std::runtime_error on failure. Returns the bound port.
  int listen();
  // Budget reservations: what calls and sessions ask before each response.create goes upstream.
  void set_response_gate(usage::ResponseGate gate) { response_gate_ = std::move(gate); }
  // telemetry.otlp_endpoint set: calls and sessions are traced (telemetry/tracer.h); null: off.
  void set_tracer(telemetry::Tracer* tracer) { tracer_ = tracer; }
  // New calls get 503 shutting_down from now on.
  void begin_shutdown() { admission_->begin_shutdown(); }
  bool shutting_down() const { return admission_->shutting_down(); }
  // "https" with tls.cert_file, else "http".
  const char* scheme() const { return tls_ ? "https" : "http"; }
  // Re-reads the TLS pair (SIGHUP); "" when the new pair is in use, else why the old one stays.
  std::string reload_tls(const std::string& cert_file, const std::string& key_file);
  // Transcripts (transcripts/transcript_store.h): calls and sessions it wants are captured, and
  // GET /v1/realtime/calls/{id}/transcript reads from it. None: no transcripts (the route 404s).
  void set_transcripts(std::shared_ptr<transcripts::TranscriptStore> store) {
    transcripts_ = std::move(store);
  }
  // POST /admin/reload (admin key): `reload` re-reads the config and returns the answer's JSON
  // body, or throws ApiError (the --check-config message of a file that fails).
  void set_admin_reload(std::function<std::string()> reload) { admin_reload_ = std::move(reload); }
  // A reload applied: the CORS origins of the current snapshot from now on.
  void apply_config() { cors_ = CorsPolicy(services_.config.current().cors_origins); }
  // Replaces GET /v1/usage's source (Services::usage_report).
  void set_usage_report(decltype(Services::usage_report) source) {
    services_.usage_report = std::move(source);
  }
  // The operator console's spend series and recent errors (console/console_feed.h); the HTTP
  // error boundary notes each error answered. Null: the console shows neither.
  void set_console_feed(console::ConsoleFeed* feed) { console_feed_ = feed; }

 private:
  void listen_redirect(int https_port);
  static void on_early_request(SoupServer*, SoupServerMessage* msg, const char* path,
                               GHashTable* query, gpointer data);
  // Each chunk of a request body: counted against limits.max_body_bytes as it arrives.
  static void on_got_chunk(SoupServerMessage* msg, GBytes* chunk, gpointer data);
  // Checks that need only the request line and headers; true when it answered.
  bool refuse_early(SoupServerMessage* msg);
  // A request that may use the reserved connections (http/connection_guard.h): GET /healthz or
  // /readyz without a body, a valid key or token (header or WebSocket subprotocol), the cluster's
  // secret.
  bool privileged_request(SoupServerMessage* msg) const;
  static void on_request(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable* query,
                         gpointer data);
  // After the upgrade of a request handle_realtime_socket() accepted.
  static void on_websocket(SoupServer*, SoupServerMessage* msg, const char* path,
                           SoupWebsocketConnection* connection, gpointer data);
  void dispatch(SoupServerMessage* msg, const char* path);
  // Model checks shared by calls and sessions (the token's model when none is named).
  const config::ModelConfig& resolve_model(const auth::Principal& principal,
                                           std::string model) const;
  // Throws the error of an admission rule that refuses (shutting down, a key over budget):
  // the checks a handler makes before it parses the rest of a request.
  static void refuse_if(std::optional<admission::Refusal> refusal);
  // The ask of a call or session of `principal` (http/admit.cpp).
  static admission::Ask ask_for(admission::Kind kind, const std::string& id,
                                const auth::Principal& principal, const std::string& model);
  // Asks admission (http/admit.cpp), then runs `then` with the ticket. An answer found at once
  // (no store to wait for) runs `then` before this returns, and a refusal is thrown as its
  // HttpError. An answer that waits (the cluster's counts) pauses `msg` meanwhile; a refusal or
  // an HttpError from `then` is answered here (for an upgrade, `upgrade` true, the handshake
  // libsoup prepared is turned into that error). A client that leaves meanwhile gets 499 and
  // the admission is cancelled (its cluster slot given back, no worker picked).
  using AdmittedFn = std::function<void(admission::Ticket)>;
  void admit(SoupServerMessage* msg, admission::Ask ask, AdmittedFn then, bool upgrade = false);
  // A request from another instance: true when X-RTGW-Internal carries the internal secret;
  // 403 when it carries anything else; false without the header or without cluster mode.
  bool internal_request(SoupServerMessage* msg) const;
  // A call this instance does not hold: asks Redis for its owner and forwards `method` `path`
  // there (404 when no instance holds it). Only for requests not from another instance.
  void forward_to_owner(SoupServerMessage* msg, const std::string& call_id,
                        const std::string& method, const std::string& path);
  // The sideband of a call held by another instance: relayed (cluster_routes.cpp).
  void relay_sideband(SoupServerMessage* msg, const std::string& call_id,
                      const std::string& authorization);

  // What a call's request decided before its admission (handle_create_call).
  struct PreparedCall {
    auth::Principal principal;
    std::string model;
    std::string upstream_model;
    sdp::CheckedOffer offer;
    std::optional<std::string> session;
    bool beta = false;
    bool translation = false;  // its policy denies what translation has not (translation_session.h)
    std::string call_id;
    telemetry::RequestTrace trace;  // off without telemetry
  };
  void start_admitted_call(SoupServerMessage* msg, PreparedCall prepared, admission::Ticket ticket);

  // GET /v1/realtime (http/realtime_socket.cpp): every check before the upgrade.
  // `translation_route`: GET /v1/realtime/translations, the same for a translation session.
  void handle_realtime_socket(SoupServerMessage* msg, GHashTable* query,
                              bool translation_route = false);
  // kBeta: the legacy WebRTC route, whose client speaks the beta dialect. kTranslation:
  // POST /v1/realtime/translations/calls (no ?model=; the session's or token's model).
  void handle_create_call(SoupServerMessage* msg, GHashTable* query,
                          CallRoute route = CallRoute::kRealtime);
  // POST /v1/realtime/translations/client_secrets (http/translation_routes.cpp).
  void handle_translation_client_secrets(SoupServerMessage* msg);
  void handle_get_call(SoupServerMessage* msg, const std::string& id);
  void handle_hangup_call(SoupServerMessage* msg, const std::string& id);
  void handle_models(SoupServerMessage* msg);
  // GET /v1/usage: a key's own totals (an admin's: every key's) by key and model.
  void handle_usage(SoupServerMessage* msg, GHashTable* query);
  void serve_tester_page(SoupServerMessage* msg);
  void handle_debug_calls(SoupServerMessage* msg);
  void handle_client_secrets(SoupServerMessage* msg);
  void handle_pipeline_dot(SoupServerMessage* msg, const std::string& id);
  // GET /v1/realtime/calls/{id}/transcript (http/transcript_routes.cpp): false when `rest` (the
  // path after /v1/realtime/calls/) is not that route.
  bool handle_transcript_route(SoupServerMessage* msg, const std::string& rest);
  // transcripts.enable_input_transcription: the session the worker gets, with input
  // transcription on when this key's or model's calls are transcribed (transcript_routes.cpp).
  // True when it changed `session`.
  bool transcribe_input(const auth::Principal& principal, const std::string& model,
                        const std::string& upstream_model,
                        std::optional<std::string>& session) const;
  // The capture of a call or session `transcripts_` wants (null: none).
  std::shared_ptr<transcripts::TranscriptCapture> transcript_capture(
      const std::string& id, const auth::Principal& principal, const std::string& model) const;
  // The operator console (http/console_routes.cpp): GET /console, its assets and
  // /console/stream. False when `path` is not the console's.
  bool handle_console(SoupServerMessage* msg, const std::string& method, const std::string& path);
  // GET /v1/realtime/calls/{id}/recording?direction= (http/recording_routes.cpp).
  void handle_recording(SoupServerMessage* msg, const std::string& id, GHashTable* query);
  void handle_admin_reload(SoupServerMessage* msg);

  // Ephemeral tokens (auth/token_mint.h), shared by client_secrets and the legacy mint routes.
  // The model a token may be minted for (exists, the key may use it and is within its budgets).
  // Throws HttpError.
  const config::ModelConfig& mintable_model(const auth::Principal& principal,
                                            const std::string& model) const;
  // The lifetime asked by an `expires_after` object (null: the configured default).
  std::int64_t token_ttl(JsonObject* expires_after) const;
  // Signs a token binding the key, the model and `ga_session` (GA form).
  auth::MintedToken mint_token(const auth::Principal& principal, const std::string& model,
                               JsonNode* ga_session, std::int64_t ttl_seconds, bool beta) const;
  // Legacy (beta) routes, http/legacy_routes.cpp.
  void handle_legacy_sessions(SoupServerMessage* msg);                 // POST /v1/realtime/sessions
  void handle_legacy_transcription_sessions(SoupServerMessage* msg);   // .../transcription_sessions
  void handle_legacy_call(SoupServerMessage* msg, GHashTable* query);  // POST /v1/realtime

  Services services_;
  CorsPolicy cors_;
  Ref<SoupServer> server_;
  std::unique_ptr<ConnectionGuard> connections_;
  std::unique_ptr<TlsIdentity> tls_;            // tls.cert_file: HTTPS and WSS
  Ref<SoupServer> redirect_;                    // tls.redirect_http: 308 to HTTPS
  std::unique_ptr<cluster::PeerClient> peers_;  // cluster mode only
  // Admission (admission/admission.h) and what it reads: the pool, the cluster's counts (or
  // the local default) and the call and session registries.
  std::unique_ptr<admission::WorkerSource> worker_source_;
  std::unique_ptr<admission::CountStore> count_store_;
  std::unique_ptr<admission::Admission> admission_;
  usage::ResponseGate response_gate_;
  telemetry::Tracer* tracer_ = nullptr;
  // A request's trace from its arrival (the caller's traceparent); off without a tracer.
  telemetry::RequestTrace start_trace(SoupServerMessage* msg) const;
  std::shared_ptr<transcripts::TranscriptStore> transcripts_;  // null: no transcripts
  // The operator console: what it shows beyond the registries, and its open streams.
  console::ConsoleFeed* console_feed_ = nullptr;
  std::unique_ptr<ConsoleStreams> console_streams_;
  std::function<std::string()> admin_reload_;  // POST /admin/reload
};

// Response helpers shared by handlers.
void respond(SoupServerMessage* msg, int status, const char* content_type, const std::string& body);
void respond_json(SoupServerMessage* msg, int status, const std::string& body);
// The {id} of GET /v1/realtime/calls/{id}/recording, or none (http/recording_routes.cpp).
std::optional<std::string> recording_route_call_id(const char* method, const char* path);
// The SPEC's error for an admission refusal (http/admit.cpp): status and code by reason, the
// refusal's detail as the message.
HttpError refusal_error(const admission::Refusal& refusal);
// Answers a paused WebSocket handshake (libsoup prepared its 101) with `error` instead.
void refuse_upgrade(SoupServerMessage* msg, const HttpError& error);

}  // namespace rtgw::http
