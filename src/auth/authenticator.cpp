// SPDX-License-Identifier: MIT
#include "auth/authenticator.h"

#include <glib.h>

#include <algorithm>

#include "common/api_error.h"
#include "keys/key_directory.h"
#include "keys/key_secret.h"

namespace rtgw::auth {

bool Principal::may_use(const std::string& model) const {
  for (const auto& pattern : models)
    if (config::glob_match(pattern, model)) return true;
  return false;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Compare over the longer length so the time does not reveal the prefix that matches.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

Authenticator::Authenticator(config::ConfigView config)
    : config_(config),
      loopback_(config.current().listens_on_loopback()),
      tokens_(config.current().auth.token_secret) {}

const std::vector<config::KeyConfig>& Authenticator::keys() const {
  return config_.current().auth.keys;
}

Principal Authenticator::anonymous() const {
  if (!loopback_)
    throw api_errors::unauthorized(
        "invalid_api_key", "no gateway keys are configured and the gateway is not on loopback");
  Principal anon;
  anon.key_name = "anonymous";
  anon.models = {"*"};
  anon.admin = false;  // a keyless gateway has no admin (the HTTP layer also checks Host)
  anon.max_concurrent_calls =
      std::max(config_.current().limits.max_calls_per_key, 0);  // like any key without its own
  return anon;
}

Principal Authenticator::principal_for(const config::KeyConfig& key) const {
  Principal p;
  p.key_name = key.name;
  p.models = key.models;
  p.admin = key.admin;
  p.max_concurrent_calls = key.max_concurrent_calls;
  p.budget_tokens = key.budget_tokens;
  return p;
}

const config::KeyConfig* Authenticator::virtual_by_alias(const std::string& alias) const {
  if (!directory_) return nullptr;
  const auto* entry = directory_->find_alias(alias);
  if (!entry || !entry->key.usable(g_get_real_time() / G_USEC_PER_SEC)) return nullptr;
  return &entry->config;
}

const config::KeyConfig* Authenticator::virtual_by_secret(const std::string& bearer) const {
  if (!directory_) return nullptr;
  // A lookup by SHA-256 needs no constant-time compare: the map is keyed by the digest, and how
  // long finding a digest takes tells nothing about a secret that would produce a near one
  // (preimages of SHA-256 are out of reach), unlike comparing the secrets themselves.
  const auto* entry = directory_->find_hash(keys::hash_key(bearer));
  if (!entry || !entry->key.usable(g_get_real_time() / G_USEC_PER_SEC)) return nullptr;
  return &entry->config;
}

Principal Authenticator::redeem(const std::string& token) const {
  TokenClaims claims;
  try {
    claims = tokens_.verify(token, g_get_real_time() / G_USEC_PER_SEC);
  } catch (const EphemeralTokens::VerifyError& e) {
    if (e.failure == EphemeralTokens::Failure::kExpired)
      throw api_errors::unauthorized("token_expired", "the ephemeral token has expired");
    throw api_errors::unauthorized("invalid_api_key", "the ephemeral token is not valid");
  }
  Principal p;
  if (keyless()) {
    p = anonymous();
  } else {
    const config::KeyConfig* key = nullptr;
    for (const auto& k : keys())
      if (k.name == claims.key_name) key = &k;
    // A virtual key revoked, deleted or expired since it minted the token: refused too.
    if (!key) key = virtual_by_alias(claims.key_name);
    if (!key)  // the key that minted it is gone from the config
      throw api_errors::unauthorized("invalid_api_key", "the ephemeral token is not valid");
    p = principal_for(*key);
  }
  p.admin = false;  // a token never carries admin rights
  p.token_model = claims.model;
  p.token_session_json = claims.session_json;
  p.token_beta = claims.beta;
  return p;
}

Principal Authenticator::authenticate(const char* header, bool accept_tokens) const {
  if (keyless() && (!header || !*header)) return anonymous();
  if (!header || !*header)
    throw api_errors::unauthorized("missing_api_key",
                                   "missing Authorization header (expected 'Bearer <key>')");
  std::string value = header;
  if (value.size() < 7 || g_ascii_strncasecmp(value.c_str(), "Bearer ", 7) != 0)
    throw api_errors::unauthorized("missing_api_key",
                                   "the Authorization header must be 'Bearer <key>'");
  std::string bearer = value.substr(7);
  while (!bearer.empty() && bearer.front() == ' ') bearer.erase(0, 1);
  while (!bearer.empty() && bearer.back() == ' ') bearer.pop_back();
  if (bearer.empty()) throw api_errors::unauthorized("missing_api_key", "empty bearer token");
  return authenticate_bearer(bearer, accept_tokens);
}

Principal Authenticator::authenticate_bearer(const std::string& bearer, bool accept_tokens) const {
  if (EphemeralTokens::looks_like_token(bearer)) {
    if (!accept_tokens)
      throw api_errors::unauthorized(
          "invalid_api_key", "ephemeral tokens are accepted only by the realtime endpoints");
    return redeem(bearer);
  }
  if (keyless()) return anonymous();
  const config::KeyConfig* found = nullptr;
  // Check every key (no early exit) so timing does not tell which key was close.
  for (const auto& key : keys())
    if (constant_time_equal(key.key, bearer)) found = &key;
  if (!found) found = virtual_by_secret(bearer);
  if (!found) throw api_errors::unauthorized("invalid_api_key", "the API key is not valid");
  return principal_for(*found);
}

}  // namespace rtgw::auth
