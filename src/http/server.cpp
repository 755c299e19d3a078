// SPDX-License-Identifier: MIT
#include "http/server.h"

#include <gio/gio.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <string_view>

#include "admission/cluster_store.h"
#include "admission/pool_source.h"
#include "common/json.h"
#include "events/beta_dialect.h"
#include "http/call_request.h"
#include "http/client_watch.h"
#include "http/host_check.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/key_routes.h"
#include "http/session_shape.h"
#include "http/translation_session.h"
#include "recording/recording_plan.h"
#include "sdp/session_description.h"

namespace rtgw::http {
namespace {

std::string query_value(GHashTable* query, const char* name) {
  if (!query) return {};
  auto* v = static_cast<const char*>(g_hash_table_lookup(query, name));
  return v ? v : "";
}

const char* request_header(SoupServerMessage* msg, const char* name) {
  return soup_message_headers_get_one(soup_server_message_get_request_headers(msg), name);
}

std::string request_body(SoupServerMessage* msg) {
  SoupMessageBody* body = soup_server_message_get_request_body(msg);
  if (!body || !body->data) return {};
  return std::string(body->data, static_cast<size_t>(body->length));
}

bool looks_like_json_error(const std::string& body) {
  auto node = json::parse(body);
  return node && JSON_NODE_TYPE(node.get()) == JSON_NODE_OBJECT &&
         json_object_has_member(json_node_get_object(node.get()), "error");
}

void respond_setup_failure(SoupServerMessage* m, const calls::SetupFailure& f) {
  using K = calls::SetupFailure::Kind;
  switch (f.kind) {
    case K::kUpstreamStatus:
      // An upstream's own JSON error passes through with its status, except a 401/403: that
      // is the gateway's own credentials refused, and its body may quote the worker key.
      if (f.status != 401 && f.status != 403 && looks_like_json_error(f.body)) {
        respond_json(m, f.status, f.body);
        return;
      }
      respond_json(m, 502, HttpError(502, "upstream_error", "upstream_error", f.message).body());
      return;
    case K::kUpstreamTimeout:
      respond_json(m, 504, HttpError(504, "upstream_error", "upstream_timeout", f.message).body());
      return;
    case K::kUpstreamUnreachable:
      respond_json(m, 502, HttpError(502, "upstream_error", "upstream_error", f.message).body());
      return;
    case K::kNoCapacity:
      respond_json(m, 503, HttpError(503, "server_error", "no_capacity", f.message).body());
      return;
    case K::kInvalidOffer:
      respond_json(m, 400,
                   HttpError(400, "invalid_request_error", "invalid_sdp", f.message).body());
      return;
    case K::kCancelled:  // nobody is there to read it
      respond_json(
          m, 499,
          HttpError(499, "invalid_request_error", "client_closed_request", f.message).body());
      return;
    case K::kInternal:
      respond_json(m, 500, HttpError(500, "server_error", "internal_error", f.message).body());
      return;
  }
}

// A response held open while a call is set up.
struct PendingResponse {
  Ref<SoupServerMessage> msg;  // empty once answered (or the client is gone)
  std::unique_ptr<ClientWatch> watch;
};

}  // namespace

void respond(SoupServerMessage* msg, int status, const char* content_type,
             const std::string& body) {
  soup_server_message_set_status(msg, static_cast<guint>(status), nullptr);
  soup_server_message_set_response(msg, content_type, SOUP_MEMORY_COPY, body.data(), body.size());
}

void respond_json(SoupServerMessage* msg, int status, const std::string& body) {
  respond(msg, status, "application/json", body);
}

Server::Server(Services services)
    : services_(std::move(services)), cors_(services_.config.current().cors_origins) {
  server_ = Ref<SoupServer>::adopt(
      SOUP_SERVER(g_object_new(SOUP_TYPE_SERVER, "server-header", "realtime-gateway", nullptr)));
  // The same handlers serve every path. libsoup routes by the longest registered prefix, and
  // "/v1/realtime" also has the WebSocket handler, which libsoup runs whenever the regular one
  // leaves the status unset, as a call held open for its answer does: so the calls get a prefix
  // of their own, without one.
  // The translation routes are laid out the same way (a WebSocket path and a calls path).
  for (const char* path : {static_cast<const char*>(nullptr), kRealtimePath, kCallsPath,
                           kTranslationsPath, kTranslationCallsPath}) {
    soup_server_add_early_handler(server_.get(), path, &Server::on_early_request, this, nullptr);
    soup_server_add_handler(server_.get(), path, &Server::on_request, this, nullptr);
  }
  for (const char* path : {kRealtimePath, kTranslationsPath})
    soup_server_add_websocket_handler(server_.get(), path, nullptr, nullptr, &Server::on_websocket,
                                      this, nullptr);
  // permessage-deflate off: libsoup 3.2 inflates each frame without bound (a small compressed
  // frame can cost gigabytes), and the frame filter bounds messages by their bytes on the wire
  // (http/websocket_frame_limit.h). Realtime events are small JSON; clients go on uncompressed.
  soup_server_remove_websocket_extension(server_.get(), SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  // Admission reads the pool, the shared counts (the cluster's, or nothing to share) and this
  // instance's call and session registries.
  worker_source_ = std::make_unique<admission::PoolWorkerSource>(services_.workers);
  if (services_.cluster)
    count_store_ = std::make_unique<admission::ClusterCountStore>(*services_.cluster);
  else
    count_store_ = std::make_unique<admission::LocalCountStore>();
  admission_ = std::make_unique<admission::Admission>(
      services_.config, *worker_source_, *count_store_,
      std::vector<const admission::LocalCounts*>{&services_.calls, &services_.sessions},
      services_.over_budget);
  connections_ = std::make_unique<ConnectionGuard>(
      server_.get(), services_.config.current().limits,
      static_cast<std::uint64_t>(services_.config.current().websocket.max_message_bytes));
  if (services_.config.current().tls.enabled()) {
    tls_ = std::make_unique<TlsIdentity>(services_.config.current().tls.cert_file,
                                         services_.config.current().tls.key_file);
    connections_->use_tls(tls_.get());
  }
  if (services_.cluster)
    peers_ = std::make_unique<cluster::PeerClient>(
        services_.config.current().cluster.internal_secret,
        cluster::RelayLimits{
            static_cast<std::uint64_t>(services_.config.current().websocket.max_message_bytes),
            static_cast<std::uint64_t>(services_.config.current().limits.max_outgoing_buffer_bytes),
            services_.config.current().websocket.idle_timeout_seconds});
}

void Server::on_early_request(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*,
                              gpointer data) {
  try {
    static_cast<Server*>(data)->refuse_early(msg);
  } catch (const std::exception& e) {
    g_warning("early request check: %s", e.what());
  }
}

bool Server::refuse_early(SoupServerMessage* msg) {
  const auto& limits = services_.config.current().limits;
  SoupMessageHeaders* request = soup_server_message_get_request_headers(msg);
  // No keep-alive: every connection closes after its response (see http/connection_guard.h).
  // A WebSocket handshake keeps its own `Connection: Upgrade`.
  if (!soup_message_headers_get_one(request, "Upgrade"))
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                                 "close");
  auto refuse = [&](const HttpError& e) {
    cors_.apply(msg);  // so a browser sees the error, not a CORS failure
    connections_->refuse(msg, e.status(), "application/json", e.body());
    return true;
  };
  const bool websocket = soup_message_headers_header_contains(request, "Upgrade", "websocket");
  if (!connections_->headers_received(msg, privileged_request(msg), websocket))
    return refuse(HttpError(503, "server_error", "too_many_connections",
                            "the connections left are reserved for requests with a valid key "
                            "and for health probes (limits.reserved_connections)"));

  // Request line and headers, as received (give or take the separators).
  GUri* uri = soup_server_message_get_uri(msg);
  std::int64_t header_bytes = 16;  // method, version, spaces, CRLFs
  if (const char* method = soup_server_message_get_method(msg))
    header_bytes += static_cast<std::int64_t>(strlen(method));
  if (uri) {
    header_bytes += static_cast<std::int64_t>(strlen(g_uri_get_path(uri)));
    if (const char* q = g_uri_get_query(uri)) header_bytes += static_cast<std::int64_t>(strlen(q));
  }
  SoupMessageHeadersIter iter;
  soup_message_headers_iter_init(&iter, request);
  const char* name = nullptr;
  const char* value = nullptr;
  while (soup_message_headers_iter_next(&iter, &name, &value))
    header_bytes += static_cast<std::int64_t>(strlen(name) + strlen(value) + 4);
  if (header_bytes > limits.max_header_bytes)
    return refuse(HttpError(431, "invalid_request_error", "headers_too_large",
                            "the request line and headers are larger than " +
                                std::to_string(limits.max_header_bytes) + " bytes"));

  // Bodies: a Content-Length above the limit is refused before a byte of the body is read; any
  // other body is counted as it arrives (on_got_chunk).
  HttpError too_large(
      413, "invalid_request_error", "body_too_large",
      "the request body is larger than " + std::to_string(limits.max_body_bytes) + " bytes");
  SoupEncoding encoding = soup_message_headers_get_encoding(request);
  // A WebSocket handshake is a GET without a body; the frame filter counts on the frames
  // starting right after the headers (http/websocket_frame_limit.h).
  if (websocket && encoding != SOUP_ENCODING_NONE &&
      !(encoding == SOUP_ENCODING_CONTENT_LENGTH &&
        soup_message_headers_get_content_length(request) == 0))
    return refuse(HttpError(400, "invalid_request_error", "invalid_request",
                            "an upgrade request carries no body"));
  if (encoding == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length(request) > limits.max_body_bytes)
    return refuse(too_large);

  // Keyless loopback mode: only loopback names (no DNS rebinding).
  if (services_.config.current().auth.keys.empty()) {
    const char* host = soup_message_headers_get_one(request, "Host");
    if (!is_loopback_host(host ? host : ""))
      return refuse(HttpError(
          403, "invalid_request_error", "invalid_host",
          "this gateway has no keys and answers only requests to a loopback host (localhost, "
          "127.0.0.1, [::1]), not to '" +
              std::string(host ? host : "") + "'"));
  }

  if (encoding != SOUP_ENCODING_NONE && !(encoding == SOUP_ENCODING_CONTENT_LENGTH &&
                                          soup_message_headers_get_content_length(request) == 0))
    g_signal_connect(msg, "got-chunk", G_CALLBACK(&Server::on_got_chunk), this);
  return false;
}

bool Server::privileged_request(SoupServerMessage* msg) const {
  GUri* uri = soup_server_message_get_uri(msg);
  const char* path = uri ? g_uri_get_path(uri) : nullptr;
  SoupMessageHeaders* h = soup_server_message_get_request_headers(msg);
  // A probe is a GET (or HEAD) without a body: a slow POST /healthz is no probe.
  const char* method = soup_server_message_get_method(msg);
  SoupEncoding encoding = soup_message_headers_get_encoding(h);
  bool bodiless =
      encoding == SOUP_ENCODING_NONE ||
      (encoding == SOUP_ENCODING_CONTENT_LENGTH && soup_message_headers_get_content_length(h) == 0);
  if ((g_strcmp0(path, "/healthz") == 0 || g_strcmp0(path, "/readyz") == 0) && bodiless &&
      (g_strcmp0(method, "GET") == 0 || g_strcmp0(method, "HEAD") == 0))
    return true;
  if (services_.cluster) {
    const char* internal = soup_message_headers_get_one(h, cluster::kInternalHeader);
    if (internal && services_.cluster->internal_secret_matches(internal)) return true;
  }
  std::string authorization;
  if (const char* a = soup_message_headers_get_one(h, "Authorization")) authorization = a;
  if (authorization.empty()) {
    // Browsers carry the key of a WebSocket in a subprotocol (realtime_socket.cpp).
    static constexpr std::string_view kKeyProtocol = "openai-insecure-api-key.";
    const char* p = soup_message_headers_get_one(h, "Sec-WebSocket-Protocol");
    std::string_view protocols = p ? p : "";
    if (auto at = protocols.find(kKeyProtocol); at != std::string_view::npos) {
      std::string_view key = protocols.substr(at + kKeyProtocol.size());
      key = key.substr(0, key.find_first_of(", "));
      authorization = "Bearer " + std::string(key);
    }
  }
  if (authorization.empty()) return false;
  try {
    services_.auth.authenticate(authorization.c_str(), /*accept_tokens=*/true);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void Server::on_got_chunk(SoupServerMessage* msg, GBytes* chunk, gpointer data) {
  auto* self = static_cast<Server*>(data);
  try {
    self->connections_->body_progress(msg, chunk ? g_bytes_get_size(chunk) : 0);
    SoupMessageBody* body = soup_server_message_get_request_body(msg);
    const auto max = self->services_.config.current().limits.max_body_bytes;
    if (!body || body->length <= max) return;
    g_signal_handlers_disconnect_by_func(msg, reinterpret_cast<gpointer>(&Server::on_got_chunk),
                                         data);
    self->cors_.apply(msg);
    HttpError e(413, "invalid_request_error", "body_too_large",
                "the request body is larger than " + std::to_string(max) + " bytes");
    self->connections_->refuse(msg, e.status(), "application/json", e.body());
  } catch (const std::exception& e) {
    g_warning("request body check: %s", e.what());
  }
}

void Server::on_request(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable* query,
                        gpointer data) {
  auto* self = static_cast<Server*>(data);
  // The one boundary where errors become the SPEC's JSON.
  try {
    auto verdict = self->cors_.apply(msg);
    if (self->cors_.answer_preflight(msg, verdict)) return;
    if (verdict == CorsPolicy::Verdict::kRefused)
      throw errors::forbidden("origin_not_allowed",
                              "this origin is not in the gateway's cors_origins");
    const char* method = soup_server_message_get_method(msg);
    if (g_strcmp0(method, "POST") == 0 && g_strcmp0(path, kCallsPath) == 0)
      self->handle_create_call(msg, query);
    else if (g_strcmp0(method, "POST") == 0 && g_strcmp0(path, kTranslationCallsPath) == 0)
      self->handle_create_call(msg, query, CallRoute::kTranslation);
    else if (g_strcmp0(method, "GET") == 0 && g_strcmp0(path, kTranslationsPath) == 0)
      self->handle_realtime_socket(msg, query, /*translation_route=*/true);
    else if (g_strcmp0(method, "GET") == 0 && g_strcmp0(path, kRealtimePath) == 0)
      self->handle_realtime_socket(msg, query);
    else if (g_strcmp0(method, "POST") == 0 && g_strcmp0(path, kRealtimePath) == 0)
      self->handle_legacy_call(msg, query);
    else if (g_strcmp0(method, "GET") == 0 && g_strcmp0(path, "/v1/usage") == 0)
      self->handle_usage(msg, query);
    else if (g_str_has_prefix(path, kKeyRoutesPrefix))
      handle_key_route(self->services_, msg, method, path, query);
    else if (auto recording_id = recording_route_call_id(method, path))
      self->handle_recording(msg, *recording_id, query);
    else
      self->dispatch(msg, path);
  } catch (const HttpError& e) {
    if (self->console_feed_)  // the console's recent errors (console/console_feed.h)
      self->console_feed_->note_http_error(e, soup_server_message_get_method(msg), path);
    respond_json(msg, e.status(), e.body());
  } catch (const std::exception& e) {
    g_warning("internal error on %s: %s", path, e.what());
    respond_json(msg, 500, HttpError(500, "server_error", "internal_error", e.what()).body());
  }
}

Server::~Server() {
  if (connections_) connections_->stop();
  if (server_) soup_server_disconnect(server_.get());
  connections_.reset();
}

namespace {

// A listener's address: an IP address, "localhost" (IPv4 loopback), or "0.0.0.0"/"" (any).
// Throws std::runtime_error naming `what` (the config key) for anything else.
Ref<GSocketAddress> listen_address(const std::string& what, const std::string& host, int port) {
  auto address = Ref<GInetAddress>::adopt(g_inet_address_new_from_string(host.c_str()));
  if (!address) {
    if (host == "localhost")
      address = Ref<GInetAddress>::adopt(g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4));
    else if (host == "0.0.0.0" || host.empty())
      address = Ref<GInetAddress>::adopt(g_inet_address_new_any(G_SOCKET_FAMILY_IPV4));
    else
      throw std::runtime_error(what + ": '" + host + "' is not an IP address");
  }
  return Ref<GSocketAddress>::adopt(
      g_inet_socket_address_new(address.get(), static_cast<guint16>(port)));
}

}  // namespace

int Server::listen() {
  const auto& c = services_.config.current();
  Ref<GSocketAddress> socket_address = listen_address("listen", c.listen_host(), c.listen_port());
  // The connections come through the guard, which bounds them (http/connection_guard.h).
  int port;
  try {
    port = connections_->listen(socket_address.get());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot listen on " + c.listen + ": " + e.what());
  }
  if (tls_) g_message("TLS: %s", tls_->describe().c_str());
  if (!c.tls.redirect_http.empty()) listen_redirect(port);
  return port;
}

std::string Server::reload_tls(const std::string& cert_file, const std::string& key_file) {
  if (!tls_) return "tls is not configured (enabling it needs a restart)";
  std::string why = tls_->reload(cert_file, key_file);
  if (why.empty()) g_message("TLS: reloaded, %s", tls_->describe().c_str());
  return why;
}

void Server::listen_redirect(int https_port) {
  const std::string& where = services_.config.current().tls.redirect_http;
  auto [host, port] = *config::split_host_port(where);  // checked at load
  redirect_ = Ref<SoupServer>::adopt(
      SOUP_SERVER(g_object_new(SOUP_TYPE_SERVER, "server-header", "realtime-gateway", nullptr)));
  // Every path: 308 (the method and body stay) to the same path and query over HTTPS, on the
  // host the client asked for.
  soup_server_add_handler(
      redirect_.get(), nullptr,
      [](SoupServer*, SoupServerMessage* msg, const char*, GHashTable*, gpointer data) {
        int https_port = GPOINTER_TO_INT(data);
        GUri* uri = soup_server_message_get_uri(msg);
        const char* host_header =
            soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Host");
        std::string host = host_header ? host_header : g_uri_get_host(uri);
        if (!host.empty() && host[0] == '[') {  // [v6]:port
          host = host.substr(0, host.find(']') + 1);
        } else if (auto c = host.rfind(':'); c != std::string::npos) {
          host = host.substr(0, c);
        }
        std::string location =
            "https://" + host + ":" + std::to_string(https_port) + g_uri_get_path(uri);
        if (const char* q = g_uri_get_query(uri)) location += std::string("?") + q;
        soup_server_message_set_redirect(msg, 308, location.c_str());
      },
      GINT_TO_POINTER(https_port), nullptr);
  Ref<GSocketAddress> socket_address = listen_address("tls.redirect_http", host, port);
  UniqueError err;
  if (!soup_server_listen(redirect_.get(), socket_address.get(),
                          static_cast<SoupServerListenOptions>(0), ErrorOut(err)))
    throw std::runtime_error("cannot listen on tls.redirect_http " + where + ": " +
                             (err ? err->message : "failed"));
  g_message("redirecting http://%s/ to HTTPS port %d", where.c_str(), https_port);
}

void Server::dispatch(SoupServerMessage* msg, const char* path_cstr) {
  std::string method = soup_server_message_get_method(msg);
  std::string path = path_cstr;
  if ((path == "/" || path == "/index.html") && method == "GET") {
    serve_tester_page(msg);
    return;
  }
  if (handle_console(msg, method, path)) return;
  if (path == "/healthz") {
    respond_json(msg, 200, R"({"status":"ok"})");
    return;
  }
  if (path == "/readyz") {
    // Each reason a load balancer should send no new calls here, first one first.
    if (shutting_down())
      respond_json(msg, 503, R"({"status":"shutting_down","detail":"draining live calls"})");
    else if (!services_.workers.any_available())
      respond_json(
          msg, 503,
          R"({"status":"no_healthy_worker","detail":"no worker of any model is healthy"})");
    else if (services_.cluster && !services_.cluster->redis_up())
      respond_json(
          msg, 503,
          R"({"status":"cluster_store_down","detail":"the cluster's Redis does not answer"})");
    else
      respond_json(msg, 200, R"({"status":"ready"})");
    return;
  }
  if (path == "/metrics" && method == "GET") {
    respond(msg, 200, "text/plain; version=0.0.4; charset=utf-8", services_.metrics.render());
    return;
  }
  if (path == "/v1/realtime/client_secrets" && method == "POST") {
    handle_client_secrets(msg);
    return;
  }
  if (path == kTranslationSecretsPath && method == "POST") {
    handle_translation_client_secrets(msg);
    return;
  }
  if (path == "/v1/realtime/sessions" && method == "POST") {
    handle_legacy_sessions(msg);
    return;
  }
  if (path == "/v1/realtime/transcription_sessions" && method == "POST") {
    handle_legacy_transcription_sessions(msg);
    return;
  }
  if (path == "/v1/models" && method == "GET") {
    handle_models(msg);
    return;
  }

  const std::string calls_prefix = "/v1/realtime/calls/";
  if (path.rfind(calls_prefix, 0) == 0) {
    std::string rest = path.substr(calls_prefix.size());
    const std::string hangup_suffix = "/hangup";
    if (method == "POST" && rest.size() > hangup_suffix.size() &&
        rest.compare(rest.size() - hangup_suffix.size(), hangup_suffix.size(), hangup_suffix) ==
            0) {
      handle_hangup_call(msg, rest.substr(0, rest.size() - hangup_suffix.size()));
      return;
    }
    if (method == "GET" && handle_transcript_route(msg, rest)) return;
    if (method == "GET" && rest.find('/') == std::string::npos) {
      handle_get_call(msg, rest);
      return;
    }
  }
  if (path == "/admin/reload" && method == "POST") {
    handle_admin_reload(msg);
    return;
  }
  if (path == "/debug/calls" && method == "GET") {
    handle_debug_calls(msg);
    return;
  }
  const std::string debug_prefix = "/debug/calls/";
  const std::string dot_suffix = "/pipeline.dot";
  if (method == "GET" && path.rfind(debug_prefix, 0) == 0 &&
      path.size() > debug_prefix.size() + dot_suffix.size() &&
      path.compare(path.size() - dot_suffix.size(), dot_suffix.size(), dot_suffix) == 0) {
    handle_pipeline_dot(msg, path.substr(debug_prefix.size(),
                                         path.size() - debug_prefix.size() - dot_suffix.size()));
    return;
  }
  if (path == kCallsPath || path == kTranslationCallsPath)
    throw HttpError(405, "invalid_request_error", "method_not_allowed", "use POST");
  throw errors::not_found("not_found", "no route for " + method + " " + path);
}

void Server::serve_tester_page(SoupServerMessage* msg) {
  // Read per request: an operator may edit data/index.html without a restart.
  std::string path = services_.data_dir + "/index.html";
  gchar* contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(path.c_str(), &contents, &length, nullptr))
    throw errors::not_found("not_found", "the tester page is not installed (" + path + ")");
  UniqueStr owned(contents);
  std::string page(contents, length);
  // Tell the page whether a request without a key is answered (the authenticator's own
  // decision), so it asks for nothing that needs a key before one is typed: no 401 on opening.
  static constexpr std::string_view kAuthMarker = R"(name="rtgw-auth" content="")";
  if (auto at = page.find(kAuthMarker); at != std::string::npos) {
    bool keyless = true;
    try {
      services_.auth.authenticate(nullptr);
    } catch (const std::exception&) {
      keyless = false;
    }
    page.replace(
        at, kAuthMarker.size(),
        keyless ? R"(name="rtgw-auth" content="none")" : R"(name="rtgw-auth" content="key")");
  }
  respond(msg, 200, "text/html; charset=utf-8", page);
}

telemetry::RequestTrace Server::start_trace(SoupServerMessage* msg) const {
  if (!tracer_) return {};
  return tracer_->start_request(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "traceparent"));
}

void Server::handle_create_call(SoupServerMessage* msg, GHashTable* query, CallRoute route) {
  const auto& config = services_.config.current();
  const bool translation = route == CallRoute::kTranslation;
  telemetry::RequestTrace trace = start_trace(msg);
  refuse_if(admission_->shutting_down_gate());  // before anything is parsed
  if (translation && query && g_hash_table_contains(query, "model"))
    throw errors::bad_request("invalid_request",
                              "POST /v1/realtime/translations/calls takes no ?model=: the model "
                              "comes from the session (session.model) or the token (default " +
                                  std::string(kDefaultTranslationModel) + ")");
  auth::Principal principal =
      services_.auth.authenticate(request_header(msg, "Authorization"), /*accept_tokens=*/true);
  check_token_route(principal, translation);
  trace.lap("rtgw.auth");

  std::string body = request_body(msg);
  if (static_cast<std::int64_t>(body.size()) > config.limits.max_body_bytes)
    throw HttpError(413, "invalid_request_error", "body_too_large",
                    "the request body is larger than " +
                        std::to_string(config.limits.max_body_bytes) + " bytes");
  CallRequest request = parse_call_request(request_header(msg, "Content-Type"), body,
                                           /*realtime_session=*/!translation);

  std::string model;
  if (translation) {
    // The request's session names it, else the token's; else the default translation model.
    std::optional<std::string> named;
    if (request.session_json) named = translation_session_model(*request.session_json);
    if (!named && principal.token_model) named = principal.token_model;
    model = named.value_or(kDefaultTranslationModel);
  } else {
    model = choose_model(request.shape, query_value(query, "model"));
  }
  const config::ModelConfig& model_config = resolve_model(principal, model);
  model = model_config.name;  // the token's, when the request named none
  refuse_if(admission_->budget_gate(principal.key_name));  // before the offer is parsed

  sdp::CheckedOffer offer;
  try {
    offer = sdp::check_offer(request.sdp);
  } catch (const sdp::SdpError& e) {
    throw errors::bad_request("invalid_sdp", e.what());
  }
  trace.lap("rtgw.offer_checks");

  std::optional<std::string> session = request.session_json;
  if (!session && principal.token_session_json) session = principal.token_session_json;
  const bool beta = route == CallRoute::kBeta || principal.token_beta;
  // A beta session is translated first: the policy, like the worker, sees GA.
  if (beta && session) session = events::beta::session_json_to_ga(*session);
  if (session)
    session = apply_initial_session_policy(config.policy_json, principal.key_name, model, *session,
                                           &principal.models);
  if (translation)  // always sent: the worker learns from it that this is a translation
    session = translation_session_for_upstream(session, model_config.upstream_model);
  else if (session)
    session = session_for_upstream(*session, model_config.upstream_model);
  if (!translation) transcribe_input(principal, model, model_config.upstream_model, session);

  // Admission: the cluster's counts first (one Redis round trip in cluster mode), then this
  // instance's and a worker.
  auto prepared = std::make_shared<PreparedCall>();
  prepared->principal = principal;
  prepared->model = model;
  prepared->upstream_model = model_config.upstream_model;
  prepared->offer = std::move(offer);
  prepared->session = std::move(session);
  prepared->beta = beta;
  prepared->translation = translation;
  prepared->call_id = calls::CallRegistry::new_call_id();
  prepared->trace = std::move(trace);
  admit(msg,
        ask_for(translation ? admission::Kind::kTranslationCall : admission::Kind::kCall,
                prepared->call_id, principal, model),
        [this, msg, prepared](admission::Ticket ticket) {
          start_admitted_call(msg, std::move(*prepared), std::move(ticket));
        });
}

void Server::start_admitted_call(SoupServerMessage* msg, PreparedCall prepared,
                                 admission::Ticket ticket) {
  const auto& config = services_.config.current();
  const auth::Principal& principal = prepared.principal;
  const std::string& model = prepared.model;
  workers::WorkerLease lease = std::move(ticket.lease);
  std::optional<std::string> session = std::move(prepared.session);
  sdp::CheckedOffer offer = std::move(prepared.offer);
  const bool beta = prepared.beta;

  calls::CallIdentity identity{prepared.call_id, principal.key_name, model, prepared.upstream_model,
                               lease->name()};
  calls::CallSettings settings;
  settings.webrtc = config.webrtc;
  settings.max_pending_event_bytes = config.limits.max_pending_event_bytes;
  settings.max_outgoing_event_bytes = config.limits.max_outgoing_buffer_bytes;
  settings.max_event_bytes = config.max_event_bytes;
  settings.pipeline_description = services_.pipeline_description;
  settings.policy_json =
      prepared.translation ? translation_policy_json(config.policy_json) : config.policy_json;
  settings.budget_exceeded = ticket.over_budget;
  settings.response_gate = response_gate_;
  settings.allowed_models = allowed_models(principal.models, prepared.upstream_model);
  settings.pricing = std::move(ticket.pricing);
  settings.failover = std::move(ticket.failover);
  settings.beta_client = beta;
  settings.trace_steps = tracer_ != nullptr;
  if (tracer_) settings.response_content = tracer_->content_hook(identity.call_id);
  settings.transcript = transcript_capture(identity.call_id, principal, model);
  settings.recording =
      recording::plan_for(config.recording, principal.key_name, model, identity.call_id);
  settings.config_snapshot = services_.config.snapshot();

  auto pending = std::make_shared<PendingResponse>();
  pending->msg = Ref<SoupServerMessage>::retain(msg);
  std::string call_id = identity.call_id;
  auto on_answer = [pending, call_id](std::variant<std::string, calls::SetupFailure> result) {
    if (!pending->msg) return;
    SoupServerMessage* m = pending->msg.get();
    if (auto* answer = std::get_if<std::string>(&result)) {
      std::string location = "/v1/realtime/calls/" + call_id;
      soup_message_headers_replace(soup_server_message_get_response_headers(m), "Location",
                                   location.c_str());
      respond(m, 201, "application/sdp", *answer);
    } else {
      respond_setup_failure(m, std::get<calls::SetupFailure>(result));
    }
    soup_server_message_unpause(m);
    pending->watch.reset();
    pending->msg.reset();
  };

  if (tracer_) {
    prepared.trace.lap("rtgw.admission");  // the worker pick (and the cluster's counts)
    tracer_->begin(call_id, std::move(prepared.trace));
  }
  soup_server_message_pause(msg);
  try {
    services_.calls.start_call(std::move(identity), std::move(settings), std::move(lease),
                               std::move(offer), std::move(session), std::move(on_answer));
  } catch (const std::exception& e) {
    soup_server_message_unpause(msg);
    if (tracer_) tracer_->forget(call_id);
    throw HttpError(500, "server_error", "internal_error", e.what());
  }
  if (!pending->msg) return;  // already answered (a failure found at once)

  // A client that drops its request before the answer cancels the set-up: the upstream exchange
  // is cancelled (or, answered already, hung up) and the call ends; nobody is left to answer.
  std::weak_ptr<PendingResponse> weak = pending;
  pending->watch = std::make_unique<ClientWatch>(
      msg, connections_->socket_of(msg), [weak, calls = &services_.calls, call_id] {
        auto p = weak.lock();
        if (!p || !p->msg) return;
        Ref<SoupServerMessage> m = std::move(p->msg);
        p->watch.reset();
        if (calls::Call* call = calls->find(call_id))
          call->cancel_setup("client went away during set-up");
        // libsoup then fails to write this to the closed connection and lets it go.
        respond_json(m.get(), 499,
                     HttpError(499, "invalid_request_error", "client_closed_request",
                               "the client went away before the answer")
                         .body());
        soup_server_message_unpause(m.get());
      });
}

const config::ModelConfig& Server::resolve_model(const auth::Principal& principal,
                                                 std::string model) const {
  if (model.empty() && principal.token_model) model = *principal.token_model;
  if (model.empty())
    throw errors::bad_request("missing_model",
                              "name the model with ?model= (or session.model in a multipart body)");
  if (principal.token_model && model != *principal.token_model)
    throw errors::forbidden("model_not_allowed",
                            "this token is bound to model " + *principal.token_model);
  const config::ModelConfig* model_config = services_.config.current().find_model(model);
  if (!model_config)
    throw errors::not_found("model_not_found", "the model '" + model + "' does not exist");
  if (!principal.may_use(model))
    throw errors::forbidden("model_not_allowed", "this key may not use the model '" + model + "'");
  return *model_config;
}

void Server::handle_get_call(SoupServerMessage* msg, const std::string& id) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  const bool from_peer = internal_request(msg);
  if (calls::Call* call = services_.calls.find(id);
      call && principal.may_access(call->identity().key_name)) {
    respond_json(msg, 200, call->describe().str());
    return;
  }
  if (auto* ended = services_.calls.find_ended(id); ended && principal.may_access(ended->first)) {
    respond_json(msg, 200, ended->second);
    return;
  }
  // Cluster mode: perhaps another instance holds it (the owner checks the key again).
  if (services_.cluster && !from_peer && !services_.calls.find(id) &&
      !services_.calls.find_ended(id)) {
    forward_to_owner(msg, id, "GET", "/v1/realtime/calls/" + id);
    return;
  }
  throw errors::not_found("call_not_found", "no call " + id + " for this key");
}

void Server::handle_hangup_call(SoupServerMessage* msg, const std::string& id) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  const bool from_peer = internal_request(msg);
  calls::Call* call = services_.calls.find(id);
  if (!call && services_.cluster && !from_peer && !services_.calls.find_ended(id)) {
    forward_to_owner(msg, id, "POST", "/v1/realtime/calls/" + id + "/hangup");
    return;
  }
  if (!call || !principal.may_access(call->identity().key_name)) {
    if (auto* ended = services_.calls.find_ended(id); ended && principal.may_access(ended->first)) {
      respond_json(msg, 200, ended->second);
      return;
    }
    throw errors::not_found("call_not_found", "no live call " + id + " for this key");
  }
  call->hang_up("hung up by " + principal.key_name);
  respond_json(msg, 200, call->describe().str());
}

void Server::handle_models(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  auto list = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  JsonArray* array = json_array_new();
  json_node_take_array(list.get(), array);
  for (const auto& m : services_.config.current().models) {
    if (!principal.may_use(m.name)) continue;
    json::ObjectBuilder item;
    item.set("id", m.name)
        .set("object", "model")
        .set("created", gint64{0})
        .set("owned_by", "realtime-gateway");
    json_array_add_element(array, item.node().release());
  }
  json::ObjectBuilder out;
  out.set("object", "list").set_node("data", list);
  respond_json(msg, 200, out.str());
}

namespace {

// A `since`/`until` value: unix seconds, a non-negative finite number.
std::optional<double> unix_seconds(GHashTable* query, const char* name) {
  if (!query || !g_hash_table_contains(query, name)) return std::nullopt;
  std::string text = query_value(query, name);
  const char* start = text.c_str();
  char* end = nullptr;
  double v = text.empty() ? -1 : g_ascii_strtod(start, &end);
  if (text.empty() || end != start + text.size() || !std::isfinite(v) || v < 0 ||
      !g_ascii_isdigit(text[0]))
    throw errors::bad_request("invalid_request_error",
                              std::string("'") + name + "' must be unix seconds (a number >= 0)");
  return v;
}

}  // namespace

void Server::handle_usage(SoupServerMessage* msg, GHashTable* query) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  usage::UsageQuery q;
  q.since = unix_seconds(query, "since");
  q.until = unix_seconds(query, "until");
  if (q.since && q.until && *q.since > *q.until)
    throw errors::bad_request("invalid_request_error", "'since' is after 'until'");
  // A key sees its own records; an admin every key's, or one key's with ?key=.
  if (!principal.admin)
    q.key = principal.key_name;
  else if (query && g_hash_table_contains(query, "key"))
    q.key = query_value(query, "key");

  auto pending = Ref<SoupServerMessage>::retain(msg);
  auto done = [pending](usage::UsageReply reply) {
    if (reply.unavailable) {
      g_warning("GET /v1/usage: the usage store is unavailable: %s", reply.unavailable->c_str());
      HttpError e =
          errors::unavailable("usage_store_unavailable",
                              "the usage store (PostgreSQL) is unavailable: retry in a moment");
      respond_json(pending.get(), e.status(), e.body());
    } else {
      respond_json(pending.get(), 200, usage::usage_report_json(reply.groups));
    }
    soup_server_message_unpause(pending.get());
  };
  soup_server_message_pause(msg);
  bool started = services_.usage_report ? services_.usage_report(std::move(q), std::move(done))
                                        : usage::query_usage_log_async(
                                              services_.config.current().usage_log, std::move(q),
                                              [done](std::vector<usage::UsageGroup> groups) {
                                                done({std::move(groups), std::nullopt});
                                              });
  if (!started) {
    soup_server_message_unpause(msg);
    throw errors::too_many("rate_limit_exceeded",
                           "too many usage reports are running: retry in a moment");
  }
}

MintRequest parse_mint_request(const std::string& text) {
  std::string error;
  MintRequest out;
  out.root = text.empty() ? json::parse("{}") : json::parse(text, &error);
  if (!out.root || JSON_NODE_TYPE(out.root.get()) != JSON_NODE_OBJECT)
    throw errors::bad_request(
        "invalid_json", "the body must be a JSON object" + (error.empty() ? "" : ": " + error));
  out.body = json_node_get_object(out.root.get());
  JsonObject* session = json::get_object(out.body, "session");
  if (json_object_has_member(out.body, "session") && !session)
    throw errors::bad_request("invalid_session", "`session` must be an object");
  out.session =
      session ? Ref<JsonNode>::adopt(json_node_copy(json_object_get_member(out.body, "session")))
              : json::parse("{}");
  return out;
}

void Server::handle_client_secrets(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  MintRequest request = parse_mint_request(request_body(msg));
  JsonObject* body = request.body;
  Ref<JsonNode> session_node = request.session;
  JsonObject* s = json_node_get_object(session_node.get());
  // A realtime session names its model in session.model, a transcription session in
  // session.audio.input.transcription.model (SPEC "Transcription sessions").
  SessionShape shape = session_shape(s);
  if (!json_object_has_member(s, "type")) json_object_set_string_member(s, "type", "realtime");
  std::string model = shape.model.value_or("");
  if (model.empty())
    throw errors::bad_request("missing_model",
                              shape.transcription()
                                  ? "name the model in session.audio.input.transcription.model"
                                  : "name the model in session.model");
  mintable_model(principal, model);
  check_transcription_models(principal.models, json::to_string(session_node.get()));

  std::int64_t ttl = token_ttl(json::get_object(body, "expires_after"));
  auth::MintedToken token = mint_token(principal, model, session_node.get(), ttl, /*beta=*/false);

  json_object_set_string_member(
      s, "object", shape.transcription() ? "realtime.transcription_session" : "realtime.session");
  if (!json_object_has_member(s, "id"))
    json_object_set_string_member(s, "id", auth::new_session_object_id().c_str());
  json::ObjectBuilder out;
  out.set("value", token.value)
      .set("expires_at", static_cast<gint64>(token.expires_at))
      .set_node("session", session_node);
  respond_json(msg, 200, out.str());
}

const config::ModelConfig& Server::mintable_model(const auth::Principal& principal,
                                                  const std::string& model) const {
  const config::ModelConfig* model_config = services_.config.current().find_model(model);
  if (!model_config)
    throw errors::not_found("model_not_found", "the model '" + model + "' does not exist");
  if (!principal.may_use(model))
    throw errors::forbidden("model_not_allowed", "this key may not use the model '" + model + "'");
  // A token is a new call or session to come: refused now, not then.
  refuse_if(admission_->budget_gate(principal.key_name));
  return *model_config;
}

std::int64_t Server::token_ttl(JsonObject* expires) const {
  return auth::token_ttl(expires, services_.config.current().auth.token_ttl_seconds);
}

auth::MintedToken Server::mint_token(const auth::Principal& principal, const std::string& model,
                                     JsonNode* ga_session, std::int64_t ttl_seconds,
                                     bool beta) const {
  return auth::mint_token(services_.auth.tokens(), principal, model, json::to_string(ga_session),
                          ttl_seconds, beta);
}

void Server::handle_debug_calls(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  if (!principal.admin) throw errors::forbidden("admin_required", "an admin key is required");
  auto list = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  JsonArray* array = json_array_new();
  json_node_take_array(list.get(), array);
  services_.calls.for_each([&](const calls::Call& call) {
    json_array_add_element(array, call.describe().node().release());
  });
  services_.sessions.for_each([&](const relay::WebSocketSession& session) {
    json_array_add_element(array, session.describe().node().release());
  });
  json::ObjectBuilder out;
  out.set("object", "list").set_node("data", list);
  respond_json(msg, 200, out.str());
}

void Server::handle_admin_reload(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  if (!principal.admin) throw errors::forbidden("admin_required", "an admin key is required");
  if (!admin_reload_)
    throw errors::unavailable("reload_unavailable", "this gateway cannot reload its config");
  respond_json(msg, 200, admin_reload_());
}

void Server::handle_pipeline_dot(SoupServerMessage* msg, const std::string& id) {
  auth::Principal principal = services_.auth.authenticate(request_header(msg, "Authorization"));
  if (!principal.admin) throw errors::forbidden("admin_required", "an admin key is required");
  calls::Call* call = services_.calls.find(id);
  if (!call) throw errors::not_found("call_not_found", "no live call " + id);
  respond(msg, 200, "text/vnd.graphviz", call->pipeline_dot());
}

}  // namespace rtgw::http
