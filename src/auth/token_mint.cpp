// SPDX-License-Identifier: MIT
#include "auth/token_mint.h"

#include <glib.h>

#include <algorithm>

#include "common/api_error.h"
#include "common/json.h"
#include "common/random.h"

namespace rtgw::auth {

MintedToken mint_token(const EphemeralTokens& tokens, const Principal& principal,
                       const std::string& model, const std::string& ga_session_json,
                       std::int64_t ttl_seconds, bool beta) {
  std::int64_t now = g_get_real_time() / G_USEC_PER_SEC;
  TokenClaims claims{principal.key_name, model, ga_session_json, now, now + ttl_seconds, beta};
  return {tokens.mint(claims), now + ttl_seconds};
}

std::int64_t token_ttl(JsonObject* expires, std::int64_t default_seconds) {
  std::int64_t ttl = default_seconds;
  if (!expires) return ttl;
  if (auto anchor = json::get_string(expires, "anchor"); anchor && *anchor != "created_at")
    throw api_errors::bad_request("invalid_expires_after",
                                  "expires_after.anchor must be created_at");
  JsonNode* seconds = json_object_get_member(expires, "seconds");
  if (seconds) {
    if (JSON_NODE_TYPE(seconds) != JSON_NODE_VALUE ||
        json_node_get_value_type(seconds) != G_TYPE_INT64)
      throw api_errors::bad_request("invalid_expires_after",
                                    "expires_after.seconds must be an integer");
    ttl = std::clamp<std::int64_t>(json_node_get_int(seconds), 10, 7200);  // as OpenAI bounds it
  }
  return ttl;
}

std::string new_session_object_id() { return random_id("sess_", 24); }

}  // namespace rtgw::auth
