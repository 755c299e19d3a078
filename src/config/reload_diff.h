// SPDX-License-Identifier: MIT
// What a reload changes: the running config against the re-read one.
//
// Owns: which config keys a reload applies and which need a restart (kReloadable below; every
// other scalar key, including one added later without a thought for reload, needs a restart),
// the next snapshot (the re-read config with each restart-only key left at its running value),
// and the list of what changed, by key path, key name, model name and worker URL (never a value,
// so never a secret).
//
// Threads: pure functions (the main loop runs them at a reload; unit tests).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace rtgw::config {

struct ReloadPlan {
  Config next;  // the snapshot to apply
  // What the reload applies: "cors_origins", "auth.keys[team-b]: added",
  // "models[gpt-realtime]: pricing changed", "models[gpt-realtime].workers: removed http://...".
  std::vector<std::string> changed;
  // Keys whose new value needs a restart (left at their running value): "listen", "cluster".
  std::vector<std::string> restart_required;
};

// Scalar keys (schema paths) a reload applies; the rest of the scalar keys need a restart.
// auth.keys, models and policy (arrays and the policy object) are applied whole.
const std::vector<std::string>& reloadable_keys();

// `running`: the config in use; `next`: the file re-read and checked (sized caps applied).
ReloadPlan plan_reload(const Config& running, Config next);

}  // namespace rtgw::config
