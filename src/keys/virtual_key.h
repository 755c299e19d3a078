// SPDX-License-Identifier: MIT
// A virtual key: one row of the key table, as the gateway holds it.
//
// Owns: the row's fields (never the secret: its SHA-256 only), the key's public JSON view (what
// /key/info, /key/list and the audit show: no secret, no hash), its materialisation as a
// `config::KeyConfig` (the same struct as a config-file key, so limits, budgets, usage and
// ownership treat both alike), and the budget period's text form ("30d").
//
// Policy overrides: of the row's `policy` object, the member that maps onto a per-key setting of
// today's gateway is applied (`end_calls_over_budget`); the others are stored and shown, not
// enforced (docs/api.md "Virtual keys and the admin API").
//
// Threads: any (value types and pure functions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace rtgw::keys {

struct VirtualKey {
  std::string hash;  // SHA-256 of the secret, hex (keys/key_secret.h)
  std::string alias;
  std::vector<std::string> models = {"*"};
  std::optional<int> max_concurrent_calls;  // none: limits.max_calls_per_key
  std::optional<double> budget_usd;
  std::optional<std::int64_t> budget_tokens;
  std::optional<std::string> budget_duration;  // "30d": the spend counted resets each period
  std::optional<std::int64_t> expires_at;      // unix seconds
  std::optional<std::string> policy_json;      // an object's text
  std::optional<std::string> metadata_json;    // an object's text
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  std::optional<std::int64_t> revoked_at;
  std::optional<std::int64_t> deleted_at;
  std::int64_t seq = 0;  // the table's change sequence

  bool expired(std::int64_t now) const { return expires_at && *expires_at <= now; }
  // Authenticates: not revoked, deleted or expired.
  bool usable(std::int64_t now) const { return !revoked_at && !deleted_at && !expired(now); }
};

// The public view: key_alias, models, limits, budgets, expiry, policy, metadata, times, state.
// No secret and no hash.
std::string to_json(const VirtualKey& key);
// As a KeyConfig named by its alias (no secret, never admin). `default_max_calls`: the resolved
// limits.max_calls_per_key, for a key without its own max_concurrent_calls.
config::KeyConfig to_key_config(const VirtualKey& key, int default_max_calls);

}  // namespace rtgw::keys
