// SPDX-License-Identifier: MIT
#include "config/structured.h"

#include <gio/gio.h>
#include <glib.h>

#include <cstdint>
#include <set>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "config/reader.h"
#include "config/schema.h"
#include "config/worker_dialect.h"
#include "usage/budget_period.h"
#include "usage/pricing.h"

namespace rtgw::config {
namespace {

// An integer or number member, in the range its row (config/schema.cpp) gives, so the docs and
// the check cannot disagree. `row` is the member's row path, e.g. "models[].workers[].max_calls".
std::int64_t row_integer(const Reader& r, JsonNode* node, const std::string& at, const char* row) {
  const Row* schema = find_row(row);
  // budget_tokens' maximum is 2^63-1, which a double rounds up: clamp instead of casting it.
  const std::int64_t max =
      schema->max >= 9.2e18 ? INT64_MAX : static_cast<std::int64_t>(schema->max);
  return r.integer(node, at, static_cast<std::int64_t>(schema->min), max);
}

double row_number(const Reader& r, JsonNode* node, const std::string& at, const char* row) {
  const Row* schema = find_row(row);
  return r.number(node, at, schema->min, schema->max);
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
      fallback
          ? "charged at " + shortest(*fallback) + " USD per million tokens (" +
                (p.fallback_per_million ? "fallback_per_million" : "the table's highest price") +
                ")"
          : std::string(
                "not priced: the table has no per-token price and no "
                "fallback_per_million, so such turns carry cost_usd null");
  g_warning(
      "config %s: %s.per_million_tokens: incomplete price table, no %s: tokens of those "
      "kinds are %s",
      file.c_str(), path.c_str(), names.c_str(), charged.c_str());
}

Pricing read_pricing(const Reader& r, JsonNode* node, const std::string& path) {
  JsonObject* po = r.object(node, path);
  r.only(po, path, members_of("models[].pricing"));
  Pricing p;
  auto price = [&](JsonObject* obj, const std::string& at, const char* name,
                   std::optional<double>& out) {
    if (auto* n = member(obj, name)) {
      // Every price shares fallback_per_million's range.
      double v = row_number(r, n, at + "." + name, "models[].pricing.fallback_per_million");
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

}  // namespace

void read_keys(const Reader& r, JsonNode* keys, const std::string& at, Config& c) {
  AuthConfig& auth = c.auth;
  {
    std::set<std::string> names, secrets;
    r.array(keys, at, [&](JsonNode* k, const std::string& path) {
      JsonObject* ko = r.object(k, path);
      r.only(ko, path, members_of("auth.keys[]"));
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
        key.max_concurrent_calls = static_cast<int>(
            row_integer(r, n, path + ".max_concurrent_calls", "auth.keys[].max_concurrent_calls"));
      if (auto* n = member(ko, "admin")) key.admin = r.boolean(n, path + ".admin");
      if (auto* n = member(ko, "budget_tokens"))
        key.budget_tokens = row_integer(r, n, path + ".budget_tokens", "auth.keys[].budget_tokens");
      if (auto* n = member(ko, "budget_usd"))
        key.budget_usd = row_number(r, n, path + ".budget_usd", "auth.keys[].budget_usd");
      if (auto* n = member(ko, "end_calls_over_budget"))
        key.end_calls_over_budget = r.boolean(n, path + ".end_calls_over_budget");
      if (auto* n = member(ko, "budget_duration")) {
        std::string text = r.string(n, path + ".budget_duration");
        key.budget_duration_seconds = usage::parse_budget_duration(text);
        if (!key.budget_duration_seconds)
          r.fail(path + ".budget_duration",
                 "expected a positive whole number and a unit s, m, h or d (e.g. \"30d\"), not \"" +
                     text + "\"");
      }
      auth.keys.push_back(std::move(key));
    });
  }
}

void read_models(const Reader& r, JsonNode* node, const std::string& at, Config& c) {
  std::vector<ModelConfig>& models = c.models;
  std::set<std::string> names;
  r.array(node, at, [&](JsonNode* m, const std::string& path) {
    JsonObject* mo = r.object(m, path);
    r.only(mo, path, members_of("models[]"));
    ModelConfig model;
    if (!member(mo, "name")) r.fail(path + ".name", "required");
    model.name = r.string(member(mo, "name"), path + ".name");
    if (model.name.empty()) r.fail(path + ".name", "must not be empty");
    if (!names.insert(model.name).second) r.fail(path + ".name", "duplicate model name");
    model.upstream_model = member(mo, "upstream_model")
                               ? r.string(member(mo, "upstream_model"), path + ".upstream_model")
                               : model.name;
    if (auto* n = member(mo, "max_turn_tokens"))
      model.max_turn_tokens =
          row_integer(r, n, path + ".max_turn_tokens", "models[].max_turn_tokens");
    if (auto* n = member(mo, "pricing")) {
      model.pricing = read_pricing(r, n, path + ".pricing");
      warn_incomplete_pricing(r.file(), path + ".pricing", *model.pricing);
    }
    if (!member(mo, "workers")) r.fail(path + ".workers", "required");
    r.array(member(mo, "workers"), path + ".workers", [&](JsonNode* w, const std::string& wpath) {
      JsonObject* wo = r.object(w, wpath);
      r.only(wo, wpath, members_of("models[].workers[]"));
      WorkerConfig worker;
      worker.provider =
          member(wo, "provider") ? r.string(member(wo, "provider"), wpath + ".provider") : "openai";
      // The dialect (workers/providers/) owns its checks; config only asks it through
      // config/worker_dialect.h.
      const WorkerDialect* dialect = find_worker_dialect(worker.provider);
      if (!dialect) r.fail(wpath + ".provider", "must be one of " + worker_dialect_names());
      if (dialect->remote()) {
        if (!member(wo, "url")) r.fail(wpath + ".url", "required for provider " + worker.provider);
        worker.url = r.string(member(wo, "url"), wpath + ".url");
        while (!worker.url.empty() && worker.url.back() == '/') worker.url.pop_back();
        check_url(r, worker.url, wpath + ".url");
      }
      if (auto* n = member(wo, "api_key")) worker.api_key = r.secret(n, wpath + ".api_key");
      if (auto* n = member(wo, "timeout_seconds"))
        worker.timeout_seconds =
            row_number(r, n, wpath + ".timeout_seconds", "models[].workers[].timeout_seconds");
      if (auto* n = member(wo, "health_path"))
        worker.health_path = r.string(n, wpath + ".health_path");
      if (auto* n = member(wo, "health_interval_seconds"))
        worker.health_interval_seconds =
            static_cast<int>(row_integer(r, n, wpath + ".health_interval_seconds",
                                         "models[].workers[].health_interval_seconds"));
      if (auto* n = member(wo, "breaker_failures"))
        worker.breaker_failures = static_cast<int>(
            row_integer(r, n, wpath + ".breaker_failures", "models[].workers[].breaker_failures"));
      if (auto* n = member(wo, "breaker_open_seconds"))
        worker.breaker_open_seconds = static_cast<int>(row_integer(
            r, n, wpath + ".breaker_open_seconds", "models[].workers[].breaker_open_seconds"));
      if (auto* n = member(wo, "deployment"))
        worker.deployment = r.string(n, wpath + ".deployment");
      if (auto* n = member(wo, "api_version"))
        worker.api_version = r.string(n, wpath + ".api_version");
      std::set<std::string> given;
      json_object_foreach_member(
          wo,
          [](JsonObject*, const gchar* name, JsonNode*, gpointer out) {
            static_cast<std::set<std::string>*>(out)->insert(name);
          },
          &given);
      std::vector<WorkerProblem> problems;
      dialect->check(worker, given, problems);
      if (!problems.empty()) r.fail(wpath + "." + problems[0].member, problems[0].message);
      if (auto* n = member(wo, "max_connections"))
        worker.max_connections = static_cast<int>(
            row_integer(r, n, wpath + ".max_connections", "models[].workers[].max_connections"));
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
        worker.max_calls = static_cast<int>(
            row_integer(r, n, wpath + ".max_calls", "models[].workers[].max_calls"));
      worker.name = member(wo, "name") ? r.string(member(wo, "name"), wpath + ".name")
                                       : model.name + "/" + std::to_string(model.workers.size());
      model.workers.push_back(std::move(worker));
    });
    if (model.workers.empty()) r.fail(path + ".workers", "needs at least one worker");
    models.push_back(std::move(model));
  });
}

void read_policy(const Reader&, JsonNode* node, const std::string&, Config& c) {
  // The members the gateway reads (max_event_bytes) are rows; the whole object goes to the
  // rtevents filter as text.
  c.policy_json = json::to_string(node);
}

void read_cluster(const Reader&, JsonNode*, const std::string&, Config& c) { enable_cluster(c); }

void enable_cluster(Config& c) { c.cluster.enabled = true; }

void read_telemetry_headers(const Reader& r, JsonNode* node, const std::string& path, Config& c) {
  JsonObject* obj = r.object(node, path);
  c.telemetry.headers.clear();
  JsonObjectIter iter;
  const char* name = nullptr;
  JsonNode* value = nullptr;
  json_object_iter_init(&iter, obj);
  while (json_object_iter_next(&iter, &name, &value)) {
    std::string member = path + "." + name;
    std::string text = r.secret(value, member);
    // libsoup refuses (and logs) a header that would split the request: refuse it here instead.
    if (!*name || std::string_view(name).find_first_of(" :\r\n") != std::string_view::npos ||
        text.find_first_of("\r\n") != std::string::npos)
      r.fail(member, "not a valid HTTP header name or value");
    c.telemetry.headers.emplace_back(name, std::move(text));
  }
}

}  // namespace rtgw::config
