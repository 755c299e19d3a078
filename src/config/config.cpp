// SPDX-License-Identifier: MIT
#include "config/config.h"

#include <gio/gio.h>
#include <glib.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "common/json.h"
#include "config/reader.h"
#include "config/schema.h"
#include "usage/postgres_url.h"

namespace rtgw::config {
namespace {

// redis://[[user]:password@]host[:port][/db]; false when it does not parse.
bool parse_redis_url(ClusterConfig& k) {
  UniqueError err;
  GUri* uri = g_uri_parse(k.redis_url.c_str(), G_URI_FLAGS_HAS_PASSWORD, ErrorOut(err));
  if (!uri) return false;
  std::unique_ptr<GUri, decltype(&g_uri_unref)> owned(uri, g_uri_unref);
  if (g_strcmp0(g_uri_get_scheme(uri), "redis") != 0) return false;
  const char* host = g_uri_get_host(uri);
  if (!host || !*host) return false;
  k.redis_host = host;
  k.redis_port = g_uri_get_port(uri) > 0 ? g_uri_get_port(uri) : 6379;
  if (const char* user = g_uri_get_user(uri)) k.redis_user = user;
  if (const char* password = g_uri_get_password(uri)) k.redis_password = password;
  std::string path = g_uri_get_path(uri);
  if (!path.empty() && path != "/") {
    char* end = nullptr;
    long db = std::strtol(path.c_str() + 1, &end, 10);
    if (*end || db < 0 || db > 1000) return false;
    k.redis_db = static_cast<int>(db);
  }
  return true;
}

void validate_cluster(const Reader& r, Config& c) {
  ClusterConfig& k = c.cluster;
  if (!k.enabled) return;
  if (k.redis_url.empty()) r.fail("$.cluster.redis_url", "required in cluster mode");
  if (!parse_redis_url(k))
    r.fail("$.cluster.redis_url",
           "expected redis://[:password@]host[:port][/db], got '" + k.redis_url + "'");
  if (k.internal_secret.size() < 16)
    r.fail("$.cluster.internal_secret",
           "required in cluster mode, at least 16 characters (instances authenticate each other "
           "with it)");
  if (k.instance_id.empty()) {
    k.instance_id = std::string(g_get_host_name()) + ":" + std::to_string(c.listen_port());
  }
  if (k.advertise_url.empty()) {
    std::string host = c.listen_host();
    if (host.empty() || host == "0.0.0.0" || host == "::")
      r.fail("$.cluster.advertise_url",
             "required when listening on every interface (how do the other instances reach this "
             "one?)");
    k.advertise_url = "http://" + c.listen;
  }
  while (!k.advertise_url.empty() && k.advertise_url.back() == '/') k.advertise_url.pop_back();
  if (k.advertise_url.rfind("http://", 0) != 0 && k.advertise_url.rfind("https://", 0) != 0)
    r.fail("$.cluster.advertise_url",
           "expected http(s)://host:port, got '" + k.advertise_url + "'");
}

void validate(const Reader& r, Config& c) {
  // listen
  auto colon = c.listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    r.fail("$.listen", "expected HOST:PORT, got '" + c.listen + "'");
  char* end = nullptr;
  long port = std::strtol(c.listen.c_str() + colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) r.fail("$.listen", "invalid port in '" + c.listen + "'");
  if (c.tls.cert_file.empty() != c.tls.key_file.empty())
    r.fail(c.tls.cert_file.empty() ? "$.tls.cert_file" : "$.tls.key_file",
           "set both tls.cert_file and tls.key_file, or neither");
  if (!c.tls.redirect_http.empty()) {
    if (!c.tls.enabled()) r.fail("$.tls.redirect_http", "needs tls.cert_file and tls.key_file");
    if (!split_host_port(c.tls.redirect_http))
      r.fail("$.tls.redirect_http", "expected HOST:PORT, got '" + c.tls.redirect_http + "'");
  }
  if ((c.webrtc.udp_port_min == 0) != (c.webrtc.udp_port_max == 0))
    r.fail("$.webrtc.udp_port_min", "set both udp_port_min and udp_port_max, or neither");
  if (c.webrtc.udp_port_min > c.webrtc.udp_port_max)
    r.fail("$.webrtc.udp_port_min", "greater than udp_port_max");
  if (c.models.empty()) r.fail("$.models", "no models configured");
  // A sized max_connections (kAuto) is known only in apply_sized_caps(), which checks it there.
  if (c.limits.max_connections != LimitsConfig::kAuto &&
      c.limits.reserved_connections >= c.limits.max_connections)
    r.fail("$.limits.reserved_connections",
           std::to_string(c.limits.reserved_connections) + " leaves no connection for requests " +
               "without a key: it must be below limits.max_connections (" +
               std::to_string(c.limits.max_connections) + ")");
  if (!c.usage_postgres_url.empty())
    if (auto error = usage::conninfo_error(c.usage_postgres_url))
      r.fail("$.usage.postgres_url", "not a PostgreSQL connection string: " + *error);
  if (c.auth.key_store != "" && c.auth.key_store != "postgres")
    r.fail("$.auth.key_store", "must be \"postgres\" or \"\" (none)");
  if (c.auth.key_store == "postgres" && c.auth.key_store_url.empty() &&
      c.usage_postgres_url.empty())
    r.fail("$.auth.key_store", "\"postgres\" needs auth.key_store_url or usage.postgres_url");
  if (!c.auth.key_store_url.empty())
    if (auto error = usage::conninfo_error(c.auth.key_store_url))
      r.fail("$.auth.key_store_url", "not a PostgreSQL connection string: " + *error);
  if (std::string& e = c.telemetry.otlp_endpoint; !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
      r.fail("$.telemetry.otlp_endpoint", "expected http(s)://host:port[/prefix], got '" + e + "'");
  }
  if (c.transcripts.enable_input_transcription && c.transcripts.input_transcription_model.empty())
    r.fail("$.transcripts.input_transcription_model",
           "enable_input_transcription needs a transcription model");
  if (c.webrtc.ice_agent != "shared" && c.webrtc.ice_agent != "stock")
    r.fail("$.webrtc.ice_agent", "must be \"shared\" or \"stock\"");
  if (c.webrtc.dtls_certificate != "rsa" && c.webrtc.dtls_certificate != "ecdsa")
    r.fail("$.webrtc.dtls_certificate", "must be \"rsa\" or \"ecdsa\"");
  if (c.webrtc.ice_transport_policy != "all" && c.webrtc.ice_transport_policy != "relay")
    r.fail("$.webrtc.ice_transport_policy", "must be \"all\" or \"relay\"");
  if (c.webrtc.ice_transport_policy == "relay" && c.webrtc.turn_servers.empty())
    r.fail("$.webrtc.ice_transport_policy", "\"relay\" needs at least one of turn_servers");
  for (size_t i = 0; i < c.webrtc.turn_servers.size(); i++) {
    const auto& t = c.webrtc.turn_servers[i];
    if (t.rfind("turn://", 0) != 0 && t.rfind("turns://", 0) != 0)
      r.fail("$.webrtc.turn_servers[" + std::to_string(i) + "]",
             "expected turn(s)://user:password@host:port");
  }
  for (size_t i = 0; i < c.webrtc.nat_1to1_ips.size(); i++) {
    auto addr =
        Ref<GInetAddress>::adopt(g_inet_address_new_from_string(c.webrtc.nat_1to1_ips[i].c_str()));
    if (!addr) r.fail("$.webrtc.nat_1to1_ips[" + std::to_string(i) + "]", "not an IP address");
  }
  for (size_t i = 0; i < c.auth.keys.size(); i++)
    for (const auto& pattern : c.auth.keys[i].models) {
      bool any = false;
      for (const auto& m : c.models) any = any || glob_match(pattern, m.name);
      if (!any)
        g_warning("config %s: $.auth.keys[%zu].models: '%s' matches no configured model",
                  r.file().c_str(), i, pattern.c_str());
    }
}

const char* kDefaultConfig = R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]})";

}  // namespace

std::optional<std::pair<std::string, int>> split_host_port(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  char* end = nullptr;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) return std::nullopt;
  return std::make_pair(text.substr(0, colon), static_cast<int>(port));
}

bool glob_match(const std::string& pattern, const std::string& text) {
  return g_pattern_match_simple(pattern.c_str(), text.c_str());
}

const ModelConfig* Config::find_model(const std::string& name) const {
  for (const auto& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

std::string Config::listen_host() const {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

int Config::listen_port() const { return std::atoi(listen.c_str() + listen.rfind(':') + 1); }

bool Config::listens_on_loopback() const {
  std::string host = listen_host();
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = g_getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Config load_from_text(const std::string& text, const std::string& source, const Overrides& flags,
                      const EnvLookup& env) {
  Reader r(source, env);
  std::string error;
  auto root = json::parse(text, &error);
  if (!root) r.fail("$", "invalid JSON: " + error);
  JsonObject* obj = r.object(root.get(), "$");
  Config c;
  c.source = source;
  // Every key through its row (config/schema.h): scalars read here, arrays by their readers.
  read_rows(r, obj, "", c);

  apply_env_rows(env, c);
  if (flags.listen) c.listen = *flags.listen;
  if (flags.pipeline_file) c.pipeline_file = *flags.pipeline_file;
  validate(r, c);
  validate_cluster(r, c);
  return c;
}

Config load(const std::string& file, const Overrides& flags, const EnvLookup& env) {
  if (file.empty()) {
    std::string text = kDefaultConfig;
    if (auto key = env("OPENAI_API_KEY"); key && !key->empty()) {
      text =
          R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]},
              {"name": "gpt-realtime", "workers": [{"provider": "openai",
               "url": "https://api.openai.com", "api_key": "env:OPENAI_API_KEY"}]},
              {"name": "gpt-realtime-mini", "workers": [{"provider": "openai",
               "url": "https://api.openai.com", "api_key": "env:OPENAI_API_KEY"}]},
              {"name": "gpt-realtime-translate", "workers": [{"provider": "openai",
               "url": "https://api.openai.com", "api_key": "env:OPENAI_API_KEY"}]}]})";
    }
    return load_from_text(text, "(built-in default)", flags, env);
  }
  gchar* contents = nullptr;
  gsize length = 0;
  UniqueError err;
  if (!g_file_get_contents(file.c_str(), &contents, &length, ErrorOut(err)))
    throw ConfigError(file, "$", std::string("cannot read: ") + (err ? err->message : "?"));
  UniqueStr owned(contents);
  return load_from_text(std::string(contents, length), file, flags, env);
}

std::string describe(const Config& c) {
  std::ostringstream out;
  // A cap: "auto" until sized (config/capacity.h), "unlimited" for 0.
  auto cap = [](int v) -> std::string {
    if (v == LimitsConfig::kAuto) return "auto";
    return v == 0 ? "unlimited" : std::to_string(v);
  };
  out << "config: " << c.source << "\n";
  out << "listen: " << c.listen << "\n";
  out << "cors_origins: ";
  for (const auto& o : c.cors_origins) out << o << " ";
  out << "\n";
  if (c.auth.keys.empty())
    out << "auth: no keys (unauthenticated calls accepted"
        << (c.listens_on_loopback() ? " on loopback only)" : "; refused: not loopback)") << "\n";
  for (const auto& k : c.auth.keys) {
    out << "key: " << k.name << " models=";
    for (const auto& m : k.models) out << m << ",";
    out << " max_concurrent_calls=" << cap(k.max_concurrent_calls) << (k.admin ? " admin" : "");
    if (k.budget_tokens) out << " budget_tokens=" << *k.budget_tokens;
    if (k.budget_usd) out << " budget_usd=" << shortest(*k.budget_usd);
    if (k.end_calls_over_budget) out << " end_calls_over_budget";
    if (k.budget_duration_seconds) out << " budget_duration=" << *k.budget_duration_seconds << "s";
    out << "\n";
  }
  out << "token_secret: " << (c.auth.token_secret.empty() ? "random per process" : "set")
      << ", token_ttl_seconds=" << c.auth.token_ttl_seconds
      << ", revoke_ends_calls=" << (c.auth.revoke_ends_calls ? "true" : "false") << "\n";
  for (const auto& m : c.models) {
    out << "model: " << m.name << " -> " << m.upstream_model
        << (m.max_turn_tokens ? " max_turn_tokens=" + std::to_string(*m.max_turn_tokens) : "")
        << "\n";
    out << "  pricing: ";
    if (!m.pricing) {
      out << "none (cost_usd null)\n";
    } else {
      // USD per million tokens, and per minute of duration-billed transcription.
      const Pricing& p = *m.pricing;
      auto show = [&](const char* name, const std::optional<double>& v) {
        out << name << "=" << (v ? shortest(*v) : std::string("-")) << " ";
      };
      out << "per_million_tokens: ";
      show("text_input", p.text_input);
      show("text_cached_input", p.text_cached_input);
      show("audio_input", p.audio_input);
      show("audio_cached_input", p.audio_cached_input);
      show("image_input", p.image_input);
      show("text_output", p.text_output);
      show("audio_output", p.audio_output);
      out << "per_minute: ";
      show("transcription", p.transcription);
      if (p.audio) show("audio", p.audio);
      show("fallback_per_million", p.fallback_per_million);
      out << "\n";
    }
    for (const auto& w : m.workers)
      out << "  worker: " << w.name << " provider=" << w.provider
          << (w.url.empty() ? "" : " url=" + w.url)
          << " api_key=" << (w.api_key.empty() ? "none" : "set") << " timeout=" << w.timeout_seconds
          << "s max_calls=" << w.max_calls << "\n";
  }
  out << "webrtc: stun=" << (c.webrtc.stun_server.empty() ? "none" : c.webrtc.stun_server)
      << " turn=" << c.webrtc.turn_servers.size() << " nat_1to1_ips=";
  for (const auto& ip : c.webrtc.nat_1to1_ips) out << ip << ",";
  out << " ice_interfaces=";
  for (const auto& i : c.webrtc.ice_interfaces) out << i << ",";
  out << " udp_ports=" << c.webrtc.udp_port_min << "-" << c.webrtc.udp_port_max
      << " ice_transport_policy=" << c.webrtc.ice_transport_policy
      << " ice_agent=" << c.webrtc.ice_agent << " dtls_certificate=" << c.webrtc.dtls_certificate
      << " receive_queue_bypass=" << (c.webrtc.receive_queue_bypass ? "on" : "off")
      << " ice_tcp=" << (c.webrtc.ice_tcp ? "on" : "off")
      << " ice_ipv6=" << (c.webrtc.ice_ipv6 ? "on" : "off")
      << " ice_epoll=" << (c.webrtc.ice_epoll ? "on" : "off") << " ice_threads="
      << (c.webrtc.ice_threads ? std::to_string(c.webrtc.ice_threads) : "per-cpu")
      << " jitterbuffer=" << (c.webrtc.jitterbuffer ? "on" : "off (forward as received)")
      << " jitterbuffer_latency_ms=" << c.webrtc.jitterbuffer_latency_ms
      << " ice_connect_timeout_s=" << c.webrtc.ice_connect_timeout_seconds
      << " peer_timeout_s=" << c.webrtc.peer_timeout_seconds;
  if (c.webrtc.client_media_timeout_seconds > 0)
    out << " client_media_timeout_s=" << c.webrtc.client_media_timeout_seconds << " (deprecated)";
  out << "\n";
  out << "policy: " << (c.policy_json.empty() ? "none" : c.policy_json) << "\n";
  if (!c.auth.key_store.empty())
    out << "key store: " << c.auth.key_store << " "
        << usage::mask_conninfo(c.auth.key_store_url.empty() ? c.usage_postgres_url
                                                             : c.auth.key_store_url)
        << " key_cache_seconds=" << c.auth.key_cache_seconds << "\n";
  out << "usage log: " << (c.usage_log.empty() ? "none" : c.usage_log) << "\n";
  out << "usage ledger (PostgreSQL): "
      << (c.usage_postgres_url.empty() ? "none" : usage::mask_conninfo(c.usage_postgres_url));
  if (!c.usage_postgres_url.empty())
    out << " buffer_records=" << c.usage_postgres_buffer_records
        << " timeout_seconds=" << c.usage_postgres_timeout_seconds;
  out << "\n";
  if (c.transcripts.any()) {
    out << "transcripts: keys=" << c.transcripts.keys.size()
        << " models=" << c.transcripts.models.size() << " to "
        << (!c.usage_postgres_url.empty() ? std::string("PostgreSQL table transcripts")
            : !c.transcripts.log.empty()  ? c.transcripts.log
            : !c.usage_log.empty()
                ? c.usage_log + ".transcripts.jsonl"
                : std::string("nowhere (set usage.postgres_url, usage.log or transcripts.log)"));
    if (c.transcripts.enable_input_transcription)
      out << " input_transcription=" << c.transcripts.input_transcription_model;
    out << "\n";
  }
  out << "limits: max_body_bytes=" << c.limits.max_body_bytes
      << " max_pending_event_bytes=" << c.limits.max_pending_event_bytes
      << " max_outgoing_buffer_bytes=" << c.limits.max_outgoing_buffer_bytes
      << " drain_timeout_seconds=" << c.limits.drain_timeout_seconds
      << " max_header_bytes=" << c.limits.max_header_bytes
      << " header_timeout_seconds=" << c.limits.header_timeout_seconds
      << " idle_timeout_seconds=" << c.limits.idle_timeout_seconds
      << " max_connections=" << cap(c.limits.max_connections)
      << " reserved_connections=" << c.limits.reserved_connections
      << " body_timeout_seconds=" << c.limits.body_timeout_seconds
      << " min_body_bytes_per_second=" << c.limits.min_body_bytes_per_second << "\n";
  // The caps (config/capacity.h): "(sized)" = not configured, sized from the open-file limit.
  auto sized = [&](const char* name) {
    return std::find(c.limits.sized.begin(), c.limits.sized.end(), name) != c.limits.sized.end()
               ? " (sized)"
               : "";
  };
  out << "caps: max_calls=" << cap(c.limits.max_calls) << sized("max_calls")
      << " max_calls_per_key=" << cap(c.limits.max_calls_per_key) << sized("max_calls_per_key")
      << " max_setups=" << cap(c.limits.max_setups) << sized("max_setups")
      << " max_setups_per_key=" << cap(c.limits.max_setups_per_key) << sized("max_setups_per_key")
      << " max_sidebands_per_call=" << cap(c.limits.max_sidebands_per_call)
      << " max_connections=" << cap(c.limits.max_connections) << sized("max_connections");
  if (c.limits.fd_limit) out << " (open-file limit " << c.limits.fd_limit << ")";
  out << "\n";
  out << "websocket: idle_timeout_seconds=" << c.websocket.idle_timeout_seconds
      << " max_message_bytes=" << c.websocket.max_message_bytes << "\n";
  if (c.cluster.enabled) {
    // The URL's password, if any, is not shown.
    out << "cluster: redis=" << c.cluster.redis_host << ":" << c.cluster.redis_port << "/"
        << c.cluster.redis_db << (c.cluster.redis_password.empty() ? "" : " (password set)")
        << " instance_id=" << c.cluster.instance_id << " advertise_url=" << c.cluster.advertise_url
        << " internal_secret=set"
        << " lease_seconds=" << c.cluster.lease_seconds << "\n";
  } else {
    out << "cluster: off (one instance)\n";
  }
  if (c.telemetry.enabled())
    out << "telemetry: otlp_endpoint=" << c.telemetry.otlp_endpoint
        << " service_name=" << c.telemetry.service_name << " headers=" << c.telemetry.headers.size()
        << " include_content=" << (c.telemetry.include_content ? "true" : "false") << "\n";
  else
    out << "telemetry: off\n";
  out << "pipeline: " << (c.pipeline_file.empty() ? "(built-in)" : c.pipeline_file)
      << ", session pipeline: "
      << (c.websocket.pipeline_file.empty() ? "(built-in)" : c.websocket.pipeline_file) << "\n";
  out << describe_settings(c);
  return out.str();
}

}  // namespace rtgw::config
