// SPDX-License-Identifier: MIT
// Minting an ephemeral token for a key: the claims it binds (key, model, session in GA form,
// the beta flag of the legacy routes), its lifetime (an `expires_after` object, bounded as
// OpenAI bounds it) and the session object's id. The routes that mint (client_secrets, the
// legacy sessions routes) parse their body and check the model and budget; the token is made
// here.
//
// Threads: main loop (called from the HTTP handlers); pure apart from the clock and the id's
// randomness.
#pragma once

#include <json-glib/json-glib.h>

#include <cstdint>
#include <string>

#include "auth/authenticator.h"
#include "auth/ephemeral_token.h"

namespace rtgw::auth {

struct MintedToken {
  std::string value;
  std::int64_t expires_at = 0;  // unix seconds
};

// Signs a token binding the key, the model and `ga_session_json`, valid `ttl_seconds` from now.
MintedToken mint_token(const EphemeralTokens& tokens, const Principal& principal,
                       const std::string& model, const std::string& ga_session_json,
                       std::int64_t ttl_seconds, bool beta);

// The lifetime asked by an `expires_after` object (null: `default_seconds`), clamped to
// 10-7200 s. Throws ApiError 400 invalid_expires_after.
std::int64_t token_ttl(JsonObject* expires_after, std::int64_t default_seconds);

// A minted session object's id: sess_<24 hex>.
std::string new_session_object_id();

}  // namespace rtgw::auth
