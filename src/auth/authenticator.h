// SPDX-License-Identifier: MIT
// Who is calling, and what may they use.
//
// Owns: turning an `Authorization: Bearer ...` header into a `Principal` (a configured gateway
// key), constant-time key comparison, the model allow-list check, and the loopback-only
// unauthenticated mode of a config without keys (an "anonymous" caller without admin rights; the
// HTTP layer answers it only for a loopback Host, see http/host_check.h).
//
// Virtual keys (keys/key_directory.h, with `auth.key_store`): a bearer that is no config key is
// looked up by its SHA-256 in the key directory; a revoked, deleted or expired one is refused
// like an unknown one (401 invalid_api_key), and so is an ephemeral token whose minting key is
// no longer usable.
//
// Threads: main loop (the HTTP handlers). Keys come from the current config snapshot at each
// authentication (a reload applies to the next request); the token secret is the start-up one.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "auth/ephemeral_token.h"
#include "config/config.h"
#include "config/snapshots.h"

namespace rtgw::keys {
class KeyDirectory;
}

namespace rtgw::auth {

struct Principal {
  std::string key_name;             // "anonymous" in the keyless loopback mode
  std::vector<std::string> models;  // allowed model patterns
  bool admin = false;
  int max_concurrent_calls = 0;
  std::optional<std::int64_t> budget_tokens;
  // Set when the caller presented an ephemeral token: the model and session it binds.
  std::optional<std::string> token_model;
  std::optional<std::string> token_session_json;
  bool token_beta = false;  // the token came from a legacy (beta) mint route

  bool may_use(const std::string& model) const;
  // May this principal see or end a call created by `owner_key_name`?
  bool may_access(const std::string& owner_key_name) const {
    return admin || owner_key_name == key_name;
  }
};

class Authenticator {
 public:
  explicit Authenticator(config::ConfigView config);

  // Throws ApiError (common/api_error.h: 401 missing_api_key / invalid_api_key / token_expired).
  // Ephemeral tokens are accepted only where `accept_tokens` (the realtime endpoints).
  Principal authenticate(const char* authorization_header, bool accept_tokens = false) const;
  // Authenticates a bare bearer value (also used by the WebSocket subprotocol form).
  Principal authenticate_bearer(const std::string& bearer, bool accept_tokens = false) const;

  const EphemeralTokens& tokens() const { return tokens_; }
  // Virtual keys (null: none). Set once by the composition root before the server runs.
  void set_key_directory(const keys::KeyDirectory* directory) { directory_ = directory; }

 private:
  Principal principal_for(const config::KeyConfig& key) const;
  Principal anonymous() const;
  Principal redeem(const std::string& token) const;
  // No config keys and no key store: the loopback-only anonymous mode.
  bool keyless() const { return keys().empty() && !directory_; }
  // The usable virtual key with this alias / secret, or null.
  const config::KeyConfig* virtual_by_alias(const std::string& alias) const;
  const config::KeyConfig* virtual_by_secret(const std::string& bearer) const;

  // The config keys: the one place they are read (the current snapshot's).
  const std::vector<config::KeyConfig>& keys() const;

  config::ConfigView config_;  // keyless mode: limits.max_calls_per_key (0: none)
  bool loopback_;
  EphemeralTokens tokens_;
  const keys::KeyDirectory* directory_ = nullptr;
};

// Compares two secrets in time independent of where they differ.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace rtgw::auth
