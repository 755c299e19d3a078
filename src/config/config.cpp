// SPDX-License-Identifier: MIT
#include "config/config.h"

#include <gio/gio.h>
#include <glib.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "common/json.h"
#include "usage/postgres_url.h"
#include "usage/pricing.h"

namespace rtgw::config {
namespace {

// A number as a person writes it (0.1, 600, 1e+12), for messages.
std::string shortest(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// Walks a JSON document keeping the JSON path for error messages.
class Reader {
 public:
  Reader(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}

  [[noreturn]] void fail(const std::string& path, const std::string& reason) const {
    throw ConfigError(file_, path, reason);
  }

  JsonObject* object(JsonNode* node, const std::string& path) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_OBJECT) fail(path, "expected an object");
    return json_node_get_object(node);
  }

  // Rejects members not in `known` so typos do not pass silently.
  void only(JsonObject* obj, const std::string& path, std::set<std::string> known) const {
    GList* members = json_object_get_members(obj);
    std::string bad;
    for (GList* l = members; l; l = l->next) {
      auto* name = static_cast<const char*>(l->data);
      if (!known.count(name) && bad.empty()) bad = name;
    }
    g_list_free(members);
    if (!bad.empty()) fail(path + "." + bad, "unknown key");
  }

  std::string string(JsonNode* node, const std::string& path) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
        json_node_get_value_type(node) != G_TYPE_STRING)
      fail(path, "expected a string");
    return json_node_get_string(node);
  }

  // A string that may be "env:NAME".
  std::string secret(JsonNode* node, const std::string& path) const {
    std::string value = string(node, path);
    if (value.rfind("env:", 0) == 0) {
      std::string name = value.substr(4);
      auto resolved = env_(name);
      if (!resolved || resolved->empty())
        fail(path, "environment variable " + name + " is not set");
      return *resolved;
    }
    return value;
  }

  std::int64_t integer(JsonNode* node, const std::string& path, std::int64_t min,
                       std::int64_t max) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
        json_node_get_value_type(node) != G_TYPE_INT64)
      fail(path, "expected an integer");
    std::int64_t v = json_node_get_int(node);
    if (v < min || v > max)
      fail(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return v;
  }

  double number(JsonNode* node, const std::string& path, double min, double max) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE) fail(path, "expected a number");
    GType t = json_node_get_value_type(node);
    double v;
    if (t == G_TYPE_INT64)
      v = static_cast<double>(json_node_get_int(node));
    else if (t == G_TYPE_DOUBLE)
      v = json_node_get_double(node);
    else
      fail(path, "expected a number");
    // NaN fails too (the comparisons below are false for it).
    if (!(v >= min && v <= max))
      fail(path, "must be a number between " + shortest(min) + " and " + shortest(max));
    return v;
  }

  bool boolean(JsonNode* node, const std::string& path) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
        json_node_get_value_type(node) != G_TYPE_BOOLEAN)
      fail(path, "expected true or false");
    return json_node_get_boolean(node);
  }

  std::vector<std::string> strings(JsonNode* node, const std::string& path) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_ARRAY)
      fail(path, "expected an array of strings");
    std::vector<std::string> out;
    JsonArray* arr = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(arr); i++)
      out.push_back(string(json_array_get_element(arr, i), path + "[" + std::to_string(i) + "]"));
    return out;
  }

  template <typename Fn>
  void array(JsonNode* node, const std::string& path, Fn&& each) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_ARRAY) fail(path, "expected an array");
    JsonArray* arr = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(arr); i++)
      each(json_array_get_element(arr, i), path + "[" + std::to_string(i) + "]");
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  const EnvLookup& env_;
};

JsonNode* member(JsonObject* obj, const char* name) {
  return json_object_has_member(obj, name) ? json_object_get_member(obj, name) : nullptr;
}

void read_auth(const Reader& r, JsonNode* node, AuthConfig& auth) {
  JsonObject* obj = r.object(node, "$.auth");
  r.only(obj, "$.auth", {"keys", "token_secret", "token_ttl_seconds"});
  if (auto* keys = member(obj, "keys")) {
    std::set<std::string> names, secrets;
    r.array(keys, "$.auth.keys", [&](JsonNode* k, const std::string& path) {
      JsonObject* ko = r.object(k, path);
      r.only(ko, path,
             {"name", "key", "models", "max_concurrent_calls", "admin", "budget_tokens",
              "budget_usd", "end_calls_over_budget"});
      KeyConfig key;
      if (!member(ko, "name")) r.fail(path + ".name", "required");
      key.name = r.string(member(ko, "name"), path + ".name");
      if (key.name.empty()) r.fail(path + ".name", "must not be empty");
      if (!names.insert(key.name).second) r.fail(path + ".name", "duplicate key name");
      if (!member(ko, "key")) r.fail(path + ".key", "required");
      key.key = r.secret(member(ko, "key"), path + ".key");
      if (key.key.size() < 8) r.fail(path + ".key", "must be at least 8 characters");
      if (!secrets.insert(key.key).second) r.fail(path + ".key", "duplicate key");
      key.models = member(ko, "models") ? r.strings(member(ko, "models"), path + ".models")
                                        : std::vector<std::string>{"*"};
      if (auto* n = member(ko, "max_concurrent_calls"))
        key.max_concurrent_calls =
            static_cast<int>(r.integer(n, path + ".max_concurrent_calls", 0, 1000000));
      if (auto* n = member(ko, "admin")) key.admin = r.boolean(n, path + ".admin");
      if (auto* n = member(ko, "budget_tokens"))
        key.budget_tokens = r.integer(n, path + ".budget_tokens", 0, INT64_MAX);
      if (auto* n = member(ko, "budget_usd"))
        key.budget_usd = r.number(n, path + ".budget_usd", 0, 1e12);
      if (auto* n = member(ko, "end_calls_over_budget"))
        key.end_calls_over_budget = r.boolean(n, path + ".end_calls_over_budget");
      auth.keys.push_back(std::move(key));
    });
  }
  if (auto* n = member(obj, "token_secret")) auth.token_secret = r.secret(n, "$.auth.token_secret");
  if (auto* n = member(obj, "token_ttl_seconds"))
    auth.token_ttl_seconds = static_cast<int>(r.integer(n, "$.auth.token_ttl_seconds", 10, 7200));
}

void check_url(const Reader& r, const std::string& url, const std::string& path) {
  UniqueError err;
  GUri* raw = g_uri_parse(url.c_str(), G_URI_FLAGS_NONE, ErrorOut(err));
  auto uri = Ref<GUri>::adopt(raw);
  if (!uri) r.fail(path, "not a valid URL: " + std::string(err ? err->message : ""));
  std::string scheme = g_uri_get_scheme(uri.get());
  if (scheme != "http" && scheme != "https")
    r.fail(path, "scheme must be http or https, not " + scheme);
  if (!g_uri_get_host(uri.get()) || !*g_uri_get_host(uri.get())) r.fail(path, "URL has no host");
}

// A table that lacks a per-token price is still used: usage/pricing.h charges the missing
// component at the fallback. Said once at load (and by --check-config), not an error.
void warn_incomplete_pricing(const std::string& file, const std::string& path, const Pricing& p) {
  std::vector<std::string> missing = usage::missing_token_prices(p);
  if (missing.empty()) return;
  std::string names;
  for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
  auto fallback = usage::fallback_per_million(p);
  std::string charged =
      fallback ? "charged at " + shortest(*fallback) + " USD per million tokens (" +
                     (p.fallback_per_million ? "fallback_per_million" : "the table's highest price") +
                     ")"
               : std::string("not priced: the table has no per-token price and no "
                             "fallback_per_million, so such turns carry cost_usd null");
  g_warning("config %s: %s.per_million_tokens: incomplete price table, no %s: tokens of those "
            "kinds are %s",
            file.c_str(), path.c_str(), names.c_str(), charged.c_str());
}

Pricing read_pricing(const Reader& r, JsonNode* node, const std::string& path) {
  JsonObject* po = r.object(node, path);
  r.only(po, path, {"per_million_tokens", "per_minute", "fallback_per_million"});
  Pricing p;
  auto price = [&](JsonObject* obj, const std::string& at, const char* name,
                   std::optional<double>& out) {
    if (auto* n = member(obj, name)) {
      double v = r.number(n, at + "." + name, 0, 1e9);
      out = v;
    }
  };
  price(po, path, "fallback_per_million", p.fallback_per_million);
  if (auto* n = member(po, "per_million_tokens")) {
    std::string at = path + ".per_million_tokens";
    JsonObject* o = r.object(n, at);
    r.only(o, at,
           {"text_input", "text_cached_input", "audio_input", "audio_cached_input", "image_input",
            "text_output", "audio_output"});
    price(o, at, "text_input", p.text_input);
    price(o, at, "text_cached_input", p.text_cached_input);
    price(o, at, "audio_input", p.audio_input);
    price(o, at, "audio_cached_input", p.audio_cached_input);
    price(o, at, "image_input", p.image_input);
    price(o, at, "text_output", p.text_output);
    price(o, at, "audio_output", p.audio_output);
  }
  if (auto* n = member(po, "per_minute")) {
    std::string at = path + ".per_minute";
    JsonObject* o = r.object(n, at);
    r.only(o, at, {"transcription", "audio"});
    price(o, at, "transcription", p.transcription);
    price(o, at, "audio", p.audio);  // translation audio (SPEC "Translation sessions")
  }
  return p;
}

void read_models(const Reader& r, JsonNode* node, std::vector<ModelConfig>& models) {
  std::set<std::string> names;
  r.array(node, "$.models", [&](JsonNode* m, const std::string& path) {
    JsonObject* mo = r.object(m, path);
    r.only(mo, path, {"name", "upstream_model", "workers", "pricing", "max_turn_tokens"});
    ModelConfig model;
    if (!member(mo, "name")) r.fail(path + ".name", "required");
    model.name = r.string(member(mo, "name"), path + ".name");
    if (model.name.empty()) r.fail(path + ".name", "must not be empty");
    if (!names.insert(model.name).second) r.fail(path + ".name", "duplicate model name");
    model.upstream_model = member(mo, "upstream_model")
                               ? r.string(member(mo, "upstream_model"), path + ".upstream_model")
                               : model.name;
    if (auto* n = member(mo, "max_turn_tokens"))
      model.max_turn_tokens = r.integer(n, path + ".max_turn_tokens", 1, 1'000'000'000);
    if (auto* n = member(mo, "pricing")) {
      model.pricing = read_pricing(r, n, path + ".pricing");
      warn_incomplete_pricing(r.file(), path + ".pricing", *model.pricing);
    }
    if (!member(mo, "workers")) r.fail(path + ".workers", "required");
    r.array(member(mo, "workers"), path + ".workers", [&](JsonNode* w, const std::string& wpath) {
      JsonObject* wo = r.object(w, wpath);
      r.only(wo, wpath,
             {"name", "provider", "url", "api_key", "timeout_seconds", "max_calls", "health_path",
              "health_interval_seconds", "breaker_failures", "breaker_open_seconds", "deployment",
              "api_version", "max_connections", "tls_ca_file", "tls_client_cert_file",
              "tls_client_key_file", "tls_verify", "proxy"});
      WorkerConfig worker;
      worker.provider =
          member(wo, "provider") ? r.string(member(wo, "provider"), wpath + ".provider") : "openai";
      static const std::set<std::string> providers = {"openai", "azure", "generic", "echo"};
      if (!providers.count(worker.provider))
        r.fail(wpath + ".provider", "must be one of openai, azure, generic, echo");
      if (worker.provider != "echo") {
        if (!member(wo, "url")) r.fail(wpath + ".url", "required for provider " + worker.provider);
        worker.url = r.string(member(wo, "url"), wpath + ".url");
        while (!worker.url.empty() && worker.url.back() == '/') worker.url.pop_back();
        check_url(r, worker.url, wpath + ".url");
      }
      if (auto* n = member(wo, "api_key")) worker.api_key = r.secret(n, wpath + ".api_key");
      if (auto* n = member(wo, "timeout_seconds"))
        worker.timeout_seconds = r.number(n, wpath + ".timeout_seconds", 0.1, 600);
      if (auto* n = member(wo, "health_path"))
        worker.health_path = r.string(n, wpath + ".health_path");
      if (auto* n = member(wo, "health_interval_seconds"))
        worker.health_interval_seconds =
            static_cast<int>(r.integer(n, wpath + ".health_interval_seconds", 0, 3600));
      if (auto* n = member(wo, "breaker_failures"))
        worker.breaker_failures =
            static_cast<int>(r.integer(n, wpath + ".breaker_failures", 1, 1000));
      if (auto* n = member(wo, "breaker_open_seconds"))
        worker.breaker_open_seconds =
            static_cast<int>(r.integer(n, wpath + ".breaker_open_seconds", 1, 3600));
      if (auto* n = member(wo, "deployment"))
        worker.deployment = r.string(n, wpath + ".deployment");
      if (auto* n = member(wo, "api_version"))
        worker.api_version = r.string(n, wpath + ".api_version");
      if (worker.provider == "azure" && worker.deployment.empty())
        r.fail(wpath + ".deployment", "required for provider azure");
      if (worker.provider == "azure" && !member(wo, "health_path"))
        worker.health_path = "/openai/models?api-version=" + worker.api_version;
      if (auto* n = member(wo, "max_connections"))
        worker.max_connections =
            static_cast<int>(r.integer(n, wpath + ".max_connections", 1, 10000));
      if (auto* n = member(wo, "tls_ca_file"))
        worker.tls_ca_file = r.string(n, wpath + ".tls_ca_file");
      if (auto* n = member(wo, "tls_client_cert_file"))
        worker.tls_client_cert_file = r.string(n, wpath + ".tls_client_cert_file");
      if (auto* n = member(wo, "tls_client_key_file"))
        worker.tls_client_key_file = r.string(n, wpath + ".tls_client_key_file");
      if (auto* n = member(wo, "tls_verify"))
        worker.tls_verify = r.boolean(n, wpath + ".tls_verify");
      if (auto* n = member(wo, "proxy")) worker.proxy = r.string(n, wpath + ".proxy");
      if (auto* n = member(wo, "max_calls"))
        worker.max_calls = static_cast<int>(r.integer(n, wpath + ".max_calls", 0, 1000000));
      worker.name = member(wo, "name") ? r.string(member(wo, "name"), wpath + ".name")
                                       : model.name + "/" + std::to_string(model.workers.size());
      model.workers.push_back(std::move(worker));
    });
    if (model.workers.empty()) r.fail(path + ".workers", "needs at least one worker");
    models.push_back(std::move(model));
  });
}

void read_webrtc(const Reader& r, JsonNode* node, WebRtcConfig& w) {
  JsonObject* obj = r.object(node, "$.webrtc");
  r.only(obj, "$.webrtc",
         {"stun_server", "turn_servers", "nat_1to1_ips", "ice_interfaces", "udp_port_min",
          "udp_port_max", "ice_gathering_timeout_ms", "ice_connect_timeout_seconds", "jitterbuffer",
          "jitterbuffer_latency_ms", "client_media_timeout_seconds", "peer_timeout_seconds",
          "ice_transport_policy", "ice_tcp", "ice_ipv6", "ice_agent"});
  if (auto* n = member(obj, "stun_server")) w.stun_server = r.string(n, "$.webrtc.stun_server");
  if (auto* n = member(obj, "turn_servers")) w.turn_servers = r.strings(n, "$.webrtc.turn_servers");
  if (auto* n = member(obj, "nat_1to1_ips")) w.nat_1to1_ips = r.strings(n, "$.webrtc.nat_1to1_ips");
  if (auto* n = member(obj, "ice_interfaces"))
    w.ice_interfaces = r.strings(n, "$.webrtc.ice_interfaces");
  if (auto* n = member(obj, "udp_port_min"))
    w.udp_port_min = static_cast<int>(r.integer(n, "$.webrtc.udp_port_min", 0, 65535));
  if (auto* n = member(obj, "udp_port_max"))
    w.udp_port_max = static_cast<int>(r.integer(n, "$.webrtc.udp_port_max", 0, 65535));
  if (auto* n = member(obj, "ice_gathering_timeout_ms"))
    w.ice_gathering_timeout_ms =
        static_cast<int>(r.integer(n, "$.webrtc.ice_gathering_timeout_ms", 10, 60000));
  if (auto* n = member(obj, "ice_connect_timeout_seconds"))
    w.ice_connect_timeout_seconds =
        static_cast<int>(r.integer(n, "$.webrtc.ice_connect_timeout_seconds", 1, 600));
  if (auto* n = member(obj, "ice_transport_policy"))
    w.ice_transport_policy = r.string(n, "$.webrtc.ice_transport_policy");
  if (auto* n = member(obj, "ice_agent")) w.ice_agent = r.string(n, "$.webrtc.ice_agent");
  if (auto* n = member(obj, "ice_tcp")) w.ice_tcp = r.boolean(n, "$.webrtc.ice_tcp");
  if (auto* n = member(obj, "ice_ipv6")) w.ice_ipv6 = r.boolean(n, "$.webrtc.ice_ipv6");
  if (auto* n = member(obj, "client_media_timeout_seconds"))
    w.client_media_timeout_seconds =
        static_cast<int>(r.integer(n, "$.webrtc.client_media_timeout_seconds", 0, 3600));
  if (auto* n = member(obj, "peer_timeout_seconds"))
    w.peer_timeout_seconds =
        static_cast<int>(r.integer(n, "$.webrtc.peer_timeout_seconds", 0, 3600));
  if (auto* n = member(obj, "jitterbuffer")) w.jitterbuffer = r.boolean(n, "$.webrtc.jitterbuffer");
  if (auto* n = member(obj, "jitterbuffer_latency_ms"))
    w.jitterbuffer_latency_ms =
        static_cast<int>(r.integer(n, "$.webrtc.jitterbuffer_latency_ms", 0, 2000));
}

void read_limits(const Reader& r, JsonNode* node, LimitsConfig& l) {
  JsonObject* obj = r.object(node, "$.limits");
  r.only(obj, "$.limits",
         {"max_body_bytes", "max_pending_event_bytes", "max_outgoing_buffer_bytes", "max_calls",
          "drain_timeout_seconds", "max_header_bytes", "header_timeout_seconds",
          "idle_timeout_seconds", "max_connections", "body_timeout_seconds",
          "min_body_bytes_per_second", "reserved_connections", "max_calls_per_key", "max_setups",
          "max_setups_per_key", "max_sidebands_per_call"});
  if (auto* n = member(obj, "max_body_bytes"))
    l.max_body_bytes = r.integer(n, "$.limits.max_body_bytes", 1024, 64 << 20);
  if (auto* n = member(obj, "max_pending_event_bytes"))
    l.max_pending_event_bytes = r.integer(n, "$.limits.max_pending_event_bytes", 1024, 1 << 30);
  if (auto* n = member(obj, "max_outgoing_buffer_bytes"))
    l.max_outgoing_buffer_bytes =
        r.integer(n, "$.limits.max_outgoing_buffer_bytes", 16 << 10, 1 << 30);
  if (auto* n = member(obj, "max_calls"))
    l.max_calls = static_cast<int>(r.integer(n, "$.limits.max_calls", 0, 1000000));
  if (auto* n = member(obj, "max_calls_per_key"))
    l.max_calls_per_key = static_cast<int>(r.integer(n, "$.limits.max_calls_per_key", 0, 1000000));
  if (auto* n = member(obj, "max_setups"))
    l.max_setups = static_cast<int>(r.integer(n, "$.limits.max_setups", 0, 1000000));
  if (auto* n = member(obj, "max_setups_per_key"))
    l.max_setups_per_key =
        static_cast<int>(r.integer(n, "$.limits.max_setups_per_key", 0, 1000000));
  if (auto* n = member(obj, "max_sidebands_per_call"))
    l.max_sidebands_per_call =
        static_cast<int>(r.integer(n, "$.limits.max_sidebands_per_call", 0, 1000));
  if (auto* n = member(obj, "drain_timeout_seconds"))
    l.drain_timeout_seconds =
        static_cast<int>(r.integer(n, "$.limits.drain_timeout_seconds", 0, 3600));
  if (auto* n = member(obj, "max_header_bytes"))
    l.max_header_bytes = r.integer(n, "$.limits.max_header_bytes", 1024, 65536);
  if (auto* n = member(obj, "header_timeout_seconds"))
    l.header_timeout_seconds =
        static_cast<int>(r.integer(n, "$.limits.header_timeout_seconds", 1, 3600));
  if (auto* n = member(obj, "idle_timeout_seconds"))
    l.idle_timeout_seconds =
        static_cast<int>(r.integer(n, "$.limits.idle_timeout_seconds", 1, 86400));
  if (auto* n = member(obj, "max_connections"))
    l.max_connections = static_cast<int>(r.integer(n, "$.limits.max_connections", 1, 1000000));
  if (auto* n = member(obj, "body_timeout_seconds"))
    l.body_timeout_seconds =
        static_cast<int>(r.integer(n, "$.limits.body_timeout_seconds", 1, 3600));
  if (auto* n = member(obj, "min_body_bytes_per_second"))
    l.min_body_bytes_per_second = r.integer(n, "$.limits.min_body_bytes_per_second", 0, 1 << 30);
  if (auto* n = member(obj, "reserved_connections"))
    l.reserved_connections =
        static_cast<int>(r.integer(n, "$.limits.reserved_connections", 0, 1000000));
}

void read_websocket(const Reader& r, JsonNode* node, WebSocketConfig& w) {
  JsonObject* obj = r.object(node, "$.websocket");
  r.only(obj, "$.websocket", {"idle_timeout_seconds", "max_message_bytes", "pipeline_file"});
  if (auto* n = member(obj, "idle_timeout_seconds"))
    w.idle_timeout_seconds =
        static_cast<int>(r.integer(n, "$.websocket.idle_timeout_seconds", 0, 86400));
  if (auto* n = member(obj, "max_message_bytes"))
    w.max_message_bytes = r.integer(n, "$.websocket.max_message_bytes", 1024, 64 << 20);
  if (auto* n = member(obj, "pipeline_file"))
    w.pipeline_file = r.string(n, "$.websocket.pipeline_file");
}

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

bool env_bool(const std::string& name, const std::string& value) {
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  throw ConfigError("environment", name, "expected true, false, 1 or 0, got '" + value + "'");
}

int env_int(const std::string& name, const std::string& value, int min, int max) {
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end || v < min || v > max)
    throw ConfigError("environment", name,
                      "expected an integer between " + std::to_string(min) + " and " +
                          std::to_string(max) + ", got '" + value + "'");
  return static_cast<int>(v);
}

void apply_env(const Reader& r, const EnvLookup& env, Config& c) {
  if (auto v = env("RTGW_LISTEN")) c.listen = *v;
  // Cluster mode: RTGW_CLUSTER_REDIS_URL alone turns it on (the secret then from
  // RTGW_CLUSTER_SECRET).
  if (auto v = env("RTGW_CLUSTER_REDIS_URL")) {
    c.cluster.enabled = true;
    c.cluster.redis_url = *v;
  }
  if (auto v = env("RTGW_CLUSTER_INSTANCE_ID")) c.cluster.instance_id = *v;
  if (auto v = env("RTGW_CLUSTER_ADVERTISE_URL")) c.cluster.advertise_url = *v;
  if (auto v = env("RTGW_CLUSTER_SECRET")) c.cluster.internal_secret = *v;
  if (auto v = env("RTGW_CLUSTER_LEASE_SECONDS"))
    c.cluster.lease_seconds = env_int("RTGW_CLUSTER_LEASE_SECONDS", *v, 2, 3600);
  if (auto v = env("RTGW_CORS_ORIGINS")) c.cors_origins = split_list(*v);
  if (auto v = env("RTGW_TOKEN_SECRET")) c.auth.token_secret = *v;
  if (auto v = env("RTGW_USAGE_LOG")) c.usage_log = *v;
  if (auto v = env("RTGW_USAGE_POSTGRES_URL")) c.usage_postgres_url = *v;
  if (auto v = env("RTGW_USAGE_POSTGRES_BUFFER_RECORDS"))
    c.usage_postgres_buffer_records =
        env_int("RTGW_USAGE_POSTGRES_BUFFER_RECORDS", *v, 1, 10000000);
  if (auto v = env("RTGW_USAGE_POSTGRES_TIMEOUT_SECONDS"))
    c.usage_postgres_timeout_seconds = env_int("RTGW_USAGE_POSTGRES_TIMEOUT_SECONDS", *v, 0, 600);
  if (auto v = env("RTGW_PIPELINE_FILE")) c.pipeline_file = *v;
  if (auto v = env("RTGW_DATA_DIR")) c.data_dir = *v;
  if (auto v = env("RTGW_LOG_JSON")) c.json_logs = (*v == "1" || *v == "true");
  if (auto v = env("RTGW_MAX_CALLS"))
    c.limits.max_calls = env_int("RTGW_MAX_CALLS", *v, 0, 1000000);
  if (auto v = env("RTGW_MAX_CALLS_PER_KEY"))
    c.limits.max_calls_per_key = env_int("RTGW_MAX_CALLS_PER_KEY", *v, 0, 1000000);
  if (auto v = env("RTGW_MAX_SETUPS"))
    c.limits.max_setups = env_int("RTGW_MAX_SETUPS", *v, 0, 1000000);
  if (auto v = env("RTGW_MAX_SETUPS_PER_KEY"))
    c.limits.max_setups_per_key = env_int("RTGW_MAX_SETUPS_PER_KEY", *v, 0, 1000000);
  if (auto v = env("RTGW_MAX_SIDEBANDS_PER_CALL"))
    c.limits.max_sidebands_per_call = env_int("RTGW_MAX_SIDEBANDS_PER_CALL", *v, 0, 1000);
  if (auto v = env("RTGW_MAX_OUTGOING_BUFFER_BYTES"))
    c.limits.max_outgoing_buffer_bytes =
        env_int("RTGW_MAX_OUTGOING_BUFFER_BYTES", *v, 16 << 10, 1 << 30);
  if (auto v = env("RTGW_DRAIN_TIMEOUT_SECONDS"))
    c.limits.drain_timeout_seconds = env_int("RTGW_DRAIN_TIMEOUT_SECONDS", *v, 0, 3600);
  if (auto v = env("RTGW_MAX_BODY_BYTES"))
    c.limits.max_body_bytes = env_int("RTGW_MAX_BODY_BYTES", *v, 1024, 64 << 20);
  if (auto v = env("RTGW_MAX_HEADER_BYTES"))
    c.limits.max_header_bytes = env_int("RTGW_MAX_HEADER_BYTES", *v, 1024, 65536);
  if (auto v = env("RTGW_HEADER_TIMEOUT_SECONDS"))
    c.limits.header_timeout_seconds = env_int("RTGW_HEADER_TIMEOUT_SECONDS", *v, 1, 3600);
  if (auto v = env("RTGW_IDLE_TIMEOUT_SECONDS"))
    c.limits.idle_timeout_seconds = env_int("RTGW_IDLE_TIMEOUT_SECONDS", *v, 1, 86400);
  if (auto v = env("RTGW_MAX_CONNECTIONS"))
    c.limits.max_connections = env_int("RTGW_MAX_CONNECTIONS", *v, 1, 1000000);
  if (auto v = env("RTGW_BODY_TIMEOUT_SECONDS"))
    c.limits.body_timeout_seconds = env_int("RTGW_BODY_TIMEOUT_SECONDS", *v, 1, 3600);
  if (auto v = env("RTGW_MIN_BODY_BYTES_PER_SECOND"))
    c.limits.min_body_bytes_per_second = env_int("RTGW_MIN_BODY_BYTES_PER_SECOND", *v, 0, 1 << 30);
  if (auto v = env("RTGW_RESERVED_CONNECTIONS"))
    c.limits.reserved_connections = env_int("RTGW_RESERVED_CONNECTIONS", *v, 0, 1000000);
  if (auto v = env("RTGW_WEBSOCKET_IDLE_TIMEOUT_SECONDS"))
    c.websocket.idle_timeout_seconds = env_int("RTGW_WEBSOCKET_IDLE_TIMEOUT_SECONDS", *v, 0, 86400);
  if (auto v = env("RTGW_WEBSOCKET_MAX_MESSAGE_BYTES"))
    c.websocket.max_message_bytes = env_int("RTGW_WEBSOCKET_MAX_MESSAGE_BYTES", *v, 1024, 64 << 20);
  if (auto v = env("RTGW_WEBSOCKET_PIPELINE_FILE")) c.websocket.pipeline_file = *v;
  if (auto v = env("RTGW_WEBRTC_STUN_SERVER")) c.webrtc.stun_server = *v;
  if (auto v = env("RTGW_WEBRTC_TURN_SERVERS")) c.webrtc.turn_servers = split_list(*v);
  if (auto v = env("RTGW_WEBRTC_NAT_1TO1_IPS")) c.webrtc.nat_1to1_ips = split_list(*v);
  if (auto v = env("RTGW_WEBRTC_ICE_INTERFACES")) c.webrtc.ice_interfaces = split_list(*v);
  if (auto v = env("RTGW_WEBRTC_UDP_PORT_MIN"))
    c.webrtc.udp_port_min = env_int("RTGW_WEBRTC_UDP_PORT_MIN", *v, 0, 65535);
  if (auto v = env("RTGW_WEBRTC_UDP_PORT_MAX"))
    c.webrtc.udp_port_max = env_int("RTGW_WEBRTC_UDP_PORT_MAX", *v, 0, 65535);
  if (auto v = env("RTGW_WEBRTC_ICE_TRANSPORT_POLICY")) c.webrtc.ice_transport_policy = *v;
  if (auto v = env("RTGW_WEBRTC_ICE_AGENT")) c.webrtc.ice_agent = *v;
  if (auto v = env("RTGW_WEBRTC_ICE_TCP")) c.webrtc.ice_tcp = (*v == "1" || *v == "true");
  if (auto v = env("RTGW_WEBRTC_ICE_IPV6")) c.webrtc.ice_ipv6 = (*v == "1" || *v == "true");
  if (auto v = env("RTGW_WEBRTC_PEER_TIMEOUT_SECONDS"))
    c.webrtc.peer_timeout_seconds = env_int("RTGW_WEBRTC_PEER_TIMEOUT_SECONDS", *v, 0, 3600);
  if (auto v = env("RTGW_WEBRTC_JITTERBUFFER"))
    c.webrtc.jitterbuffer = env_bool("RTGW_WEBRTC_JITTERBUFFER", *v);
  if (auto v = env("RTGW_WEBRTC_JITTERBUFFER_LATENCY_MS"))
    c.webrtc.jitterbuffer_latency_ms = env_int("RTGW_WEBRTC_JITTERBUFFER_LATENCY_MS", *v, 0, 2000);
}

void read_cluster(const Reader& r, JsonNode* node, ClusterConfig& k) {
  JsonObject* o = r.object(node, "$.cluster");
  r.only(o, "$.cluster",
         {"redis_url", "instance_id", "advertise_url", "internal_secret", "lease_seconds"});
  k.enabled = true;
  if (auto* n = member(o, "redis_url")) k.redis_url = r.secret(n, "$.cluster.redis_url");
  if (auto* n = member(o, "instance_id")) k.instance_id = r.string(n, "$.cluster.instance_id");
  if (auto* n = member(o, "advertise_url"))
    k.advertise_url = r.string(n, "$.cluster.advertise_url");
  if (auto* n = member(o, "internal_secret"))
    k.internal_secret = r.secret(n, "$.cluster.internal_secret");
  if (auto* n = member(o, "lease_seconds"))
    k.lease_seconds = static_cast<int>(r.integer(n, "$.cluster.lease_seconds", 2, 3600));
}

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
  if (c.webrtc.ice_agent != "shared" && c.webrtc.ice_agent != "stock")
    r.fail("$.webrtc.ice_agent", "must be \"shared\" or \"stock\"");
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
  r.only(obj, "$",
         {"listen", "cors_origins", "auth", "models", "webrtc", "policy", "usage", "limits",
          "websocket", "cluster", "pipeline_file", "data_dir", "log_json"});
  Config c;
  c.source = source;
  if (auto* n = member(obj, "listen")) c.listen = r.string(n, "$.listen");
  if (auto* n = member(obj, "cors_origins")) c.cors_origins = r.strings(n, "$.cors_origins");
  if (auto* n = member(obj, "auth")) read_auth(r, n, c.auth);
  if (auto* n = member(obj, "models")) read_models(r, n, c.models);
  if (auto* n = member(obj, "webrtc")) read_webrtc(r, n, c.webrtc);
  if (auto* n = member(obj, "policy")) {
    JsonObject* policy = r.object(n, "$.policy");
    if (auto* m = member(policy, "max_event_bytes"))
      c.max_event_bytes = r.integer(m, "$.policy.max_event_bytes", 64, 16 << 20);
    c.policy_json = json::to_string(n);
  }
  if (auto* n = member(obj, "usage")) {
    JsonObject* u = r.object(n, "$.usage");
    r.only(u, "$.usage",
           {"log", "postgres_url", "postgres_buffer_records", "postgres_timeout_seconds"});
    if (auto* l = member(u, "log")) c.usage_log = r.string(l, "$.usage.log");
    if (auto* n = member(u, "postgres_url"))
      c.usage_postgres_url = r.secret(n, "$.usage.postgres_url");
    if (auto* n = member(u, "postgres_buffer_records"))
      c.usage_postgres_buffer_records =
          static_cast<int>(r.integer(n, "$.usage.postgres_buffer_records", 1, 10000000));
    if (auto* n = member(u, "postgres_timeout_seconds"))
      c.usage_postgres_timeout_seconds =
          static_cast<int>(r.integer(n, "$.usage.postgres_timeout_seconds", 0, 600));
  }
  if (auto* n = member(obj, "limits")) read_limits(r, n, c.limits);
  if (auto* n = member(obj, "websocket")) read_websocket(r, n, c.websocket);
  if (auto* n = member(obj, "cluster")) read_cluster(r, n, c.cluster);
  if (auto* n = member(obj, "pipeline_file")) c.pipeline_file = r.string(n, "$.pipeline_file");
  if (auto* n = member(obj, "log_json")) c.json_logs = r.boolean(n, "$.log_json");
  if (auto* n = member(obj, "data_dir")) c.data_dir = r.string(n, "$.data_dir");

  apply_env(r, env, c);
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
    out << "\n";
  }
  out << "token_secret: " << (c.auth.token_secret.empty() ? "random per process" : "set")
      << ", token_ttl_seconds=" << c.auth.token_ttl_seconds << "\n";
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
      << " ice_agent=" << c.webrtc.ice_agent << " ice_tcp=" << (c.webrtc.ice_tcp ? "on" : "off")
      << " ice_ipv6=" << (c.webrtc.ice_ipv6 ? "on" : "off")
      << " jitterbuffer=" << (c.webrtc.jitterbuffer ? "on" : "off (forward as received)")
      << " jitterbuffer_latency_ms=" << c.webrtc.jitterbuffer_latency_ms
      << " ice_connect_timeout_s=" << c.webrtc.ice_connect_timeout_seconds
      << " peer_timeout_s=" << c.webrtc.peer_timeout_seconds;
  if (c.webrtc.client_media_timeout_seconds > 0)
    out << " client_media_timeout_s=" << c.webrtc.client_media_timeout_seconds << " (deprecated)";
  out << "\n";
  out << "policy: " << (c.policy_json.empty() ? "none" : c.policy_json) << "\n";
  out << "usage log: " << (c.usage_log.empty() ? "none" : c.usage_log) << "\n";
  out << "usage ledger (PostgreSQL): "
      << (c.usage_postgres_url.empty() ? "none" : usage::mask_conninfo(c.usage_postgres_url));
  if (!c.usage_postgres_url.empty())
    out << " buffer_records=" << c.usage_postgres_buffer_records
        << " timeout_seconds=" << c.usage_postgres_timeout_seconds;
  out << "\n";
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
  out << "pipeline: " << (c.pipeline_file.empty() ? "(built-in)" : c.pipeline_file)
      << ", session pipeline: "
      << (c.websocket.pipeline_file.empty() ? "(built-in)" : c.websocket.pipeline_file) << "\n";
  return out.str();
}

}  // namespace rtgw::config
