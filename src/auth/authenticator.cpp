// SPDX-License-Identifier: MIT
#include "auth/authenticator.h"

#include <glib.h>

#include "http/http_error.h"

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

Authenticator::Authenticator(const config::Config& config)
    : keys_(config.auth.keys), loopback_(config.listens_on_loopback()) {}

Principal Authenticator::authenticate(const char* header) const {
  if (keys_.empty()) {
    if (!loopback_)
      throw http::errors::unauthorized(
          "invalid_api_key", "no gateway keys are configured and the gateway is not on loopback");
    Principal anon;
    anon.key_name = "anonymous";
    anon.models = {"*"};
    anon.admin = true;
    return anon;
  }
  if (!header || !*header)
    throw http::errors::unauthorized("missing_api_key",
                                     "missing Authorization header (expected 'Bearer <key>')");
  std::string value = header;
  if (value.size() < 7 || g_ascii_strncasecmp(value.c_str(), "Bearer ", 7) != 0)
    throw http::errors::unauthorized("missing_api_key",
                                     "the Authorization header must be 'Bearer <key>'");
  std::string bearer = value.substr(7);
  while (!bearer.empty() && bearer.front() == ' ') bearer.erase(0, 1);
  while (!bearer.empty() && bearer.back() == ' ') bearer.pop_back();
  if (bearer.empty()) throw http::errors::unauthorized("missing_api_key", "empty bearer token");
  return authenticate_bearer(bearer);
}

Principal Authenticator::authenticate_bearer(const std::string& bearer) const {
  const config::KeyConfig* found = nullptr;
  // Check every key (no early exit) so timing does not tell which key was close.
  for (const auto& key : keys_)
    if (constant_time_equal(key.key, bearer)) found = &key;
  if (!found) throw http::errors::unauthorized("invalid_api_key", "the API key is not valid");
  Principal p;
  p.key_name = found->name;
  p.models = found->models;
  p.admin = found->admin;
  p.max_concurrent_calls = found->max_concurrent_calls;
  p.budget_tokens = found->budget_tokens;
  return p;
}

}  // namespace rtgw::auth
