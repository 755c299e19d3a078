// SPDX-License-Identifier: MIT
#include "config/reload_diff.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <variant>

#include "config/schema.h"

namespace rtgw::config {
namespace {

// Each of these is read from the current snapshot when something new is decided (a request, a
// call's admission and settings, a drain), or applied by the reload itself (CORS, TLS pair).
// The HTTP connection guard's limits, the WebSocket frame limit, webrtc (the ICE agent and the
// built-in echo worker are built at start-up), usage (the log and the ledger), cluster, listen,
// the pipelines, the tester page's folder, the log format and the token secret (tokens already
// minted must keep redeeming) are bound at start-up.
const std::vector<std::string> kReloadable = {
    "cors_origins",
    "auth.token_ttl_seconds",
    "auth.revoke_ends_calls",
    "policy.max_event_bytes",
    "limits.max_body_bytes",
    "limits.max_pending_event_bytes",
    "limits.max_outgoing_buffer_bytes",
    "limits.max_calls",
    "limits.max_calls_per_key",
    "limits.max_setups",
    "limits.max_setups_per_key",
    "limits.max_sidebands_per_call",
    "limits.drain_timeout_seconds",
    "limits.max_header_bytes",
    "websocket.idle_timeout_seconds",
    "tls.cert_file",
    "tls.key_file",
};

bool same_pricing(const std::optional<Pricing>& a, const std::optional<Pricing>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  auto fields = [](const Pricing& p) {
    return std::tie(p.text_input, p.text_cached_input, p.audio_input, p.audio_cached_input,
                    p.image_input, p.text_output, p.audio_output, p.transcription, p.audio,
                    p.fallback_per_million);
  };
  return fields(*a) == fields(*b);
}

// A worker as the log names it: its URL, or its name for an in-process one (echo).
std::string worker_label(const WorkerConfig& w) { return w.url.empty() ? w.name : w.url; }

void diff_keys(const Config& running, const Config& next, std::vector<std::string>& changed) {
  std::map<std::string, const KeyConfig*> before, after;
  for (const auto& k : running.auth.keys) before[k.name] = &k;
  for (const auto& k : next.auth.keys) after[k.name] = &k;
  for (const auto& [name, key] : after) {
    auto it = before.find(name);
    if (it == before.end())
      changed.push_back("auth.keys[" + name + "]: added");
    else if (!(*it->second == *key))
      changed.push_back("auth.keys[" + name + "]: changed");
  }
  for (const auto& [name, key] : before)
    if (!after.count(name)) changed.push_back("auth.keys[" + name + "]: removed");
}

void diff_workers(const ModelConfig& before, const ModelConfig& after,
                  std::vector<std::string>& changed) {
  const std::string at = "models[" + after.name + "].workers: ";
  for (const auto& w : after.workers) {
    auto same_name = std::find_if(before.workers.begin(), before.workers.end(),
                                  [&](const WorkerConfig& o) { return o.name == w.name; });
    if (same_name == before.workers.end())
      changed.push_back(at + "added " + worker_label(w));
    else if (!(*same_name == w))
      changed.push_back(at + "changed " + worker_label(w));
  }
  for (const auto& w : before.workers)
    if (std::none_of(after.workers.begin(), after.workers.end(),
                     [&](const WorkerConfig& o) { return o.name == w.name; }))
      changed.push_back(at + "removed " + worker_label(w));
}

void diff_models(const Config& running, const Config& next, std::vector<std::string>& changed) {
  for (const auto& model : next.models) {
    const ModelConfig* old = running.find_model(model.name);
    if (!old) {
      changed.push_back("models[" + model.name + "]: added");
      continue;
    }
    const std::string at = "models[" + model.name + "]: ";
    if (old->upstream_model != model.upstream_model)
      changed.push_back(at + "upstream_model changed");
    if (!same_pricing(old->pricing, model.pricing)) changed.push_back(at + "pricing changed");
    if (old->max_turn_tokens != model.max_turn_tokens)
      changed.push_back(at + "max_turn_tokens changed");
    diff_workers(*old, model, changed);
  }
  for (const auto& model : running.models)
    if (!next.find_model(model.name)) changed.push_back("models[" + model.name + "]: removed");
}

}  // namespace

const std::vector<std::string>& reloadable_keys() { return kReloadable; }

ReloadPlan plan_reload(const Config& running, Config next) {
  ReloadPlan plan;
  Config old = running;  // slots hand out mutable pointers
  const std::set<std::string> reloadable(kReloadable.begin(), kReloadable.end());
  for (const auto& row : rows()) {
    if (!row.slot || std::string(row.path).find("[]") != std::string::npos) continue;
    if (show_value(row, old, /*mask=*/false) == show_value(row, next, /*mask=*/false)) continue;
    if (reloadable.count(row.path)) {
      plan.changed.push_back(row.path);
      continue;
    }
    plan.restart_required.push_back(row.path);
    Slot to = row.slot(next);
    std::visit([&](auto* from) { *std::get<decltype(from)>(to) = *from; }, row.slot(old));
  }
  // Set by the presence of the `cluster` object rather than by a row of its own.
  if (old.cluster.enabled != next.cluster.enabled) plan.restart_required.push_back("cluster");
  // A listener serves HTTPS or HTTP from its start: turning TLS on or off needs a restart.
  if (old.tls.enabled() != next.tls.enabled()) {
    for (const char* path : {"tls.cert_file", "tls.key_file"}) {
      plan.changed.erase(std::remove(plan.changed.begin(), plan.changed.end(), path),
                         plan.changed.end());
      plan.restart_required.push_back(path);
    }
    next.tls.cert_file = old.tls.cert_file;
    next.tls.key_file = old.tls.key_file;
  }
  // Every webrtc and cluster key needs a restart: keep the values derived from them at start-up
  // too (the ICE interfaces' addresses, the parsed Redis URL).
  next.webrtc = old.webrtc;
  next.cluster = old.cluster;
  next.source = old.source;
  if (old.policy_json != next.policy_json) plan.changed.push_back("policy");
  diff_keys(old, next, plan.changed);
  diff_models(old, next, plan.changed);
  plan.next = std::move(next);
  return plan;
}

}  // namespace rtgw::config
