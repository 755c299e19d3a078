// SPDX-License-Identifier: MIT
#include "auth/ephemeral_token.h"

#include <glib.h>

#include "auth/authenticator.h"
#include "common/base64url.h"
#include "common/json.h"
#include "common/random.h"
#include "common/ref.h"

namespace rtgw::auth {
namespace {

// 32 bytes from the kernel: a token secret nobody configured is still unguessable.
std::string random_secret() { return random_bytes(32); }

}  // namespace

EphemeralTokens::EphemeralTokens(const std::string& secret)
    : secret_(secret.empty() ? random_secret() : secret) {}

std::string EphemeralTokens::sign(const std::string& payload) const {
  UniqueStr hex(g_compute_hmac_for_data(
      G_CHECKSUM_SHA256, reinterpret_cast<const guchar*>(secret_.data()), secret_.size(),
      reinterpret_cast<const guchar*>(payload.data()), payload.size()));
  // Hex to raw bytes, then base64url: 43 characters.
  std::string raw;
  for (size_t i = 0; hex.get()[i] && hex.get()[i + 1]; i += 2)
    raw += static_cast<char>(g_ascii_xdigit_value(hex.get()[i]) * 16 +
                             g_ascii_xdigit_value(hex.get()[i + 1]));
  return base64url(raw);
}

std::string EphemeralTokens::mint(const TokenClaims& claims) const {
  json::ObjectBuilder body;
  body.set("k", claims.key_name)
      .set("m", claims.model)
      .set("s", claims.session_json)
      .set("iat", static_cast<gint64>(claims.issued_at))
      .set("exp", static_cast<gint64>(claims.expires_at));
  if (claims.beta) body.set("d", "beta");
  std::string payload = base64url(body.str());
  return "ek_" + payload + "." + sign(payload);
}

TokenClaims EphemeralTokens::verify(const std::string& token, std::int64_t now) const {
  if (!looks_like_token(token)) throw VerifyError(Failure::kMalformed, "not an ek_ token");
  std::string rest = token.substr(3);
  auto dot = rest.find('.');
  if (dot == std::string::npos) throw VerifyError(Failure::kMalformed, "malformed token");
  std::string payload = rest.substr(0, dot);
  if (!constant_time_equal(sign(payload), rest.substr(dot + 1)))
    throw VerifyError(Failure::kBadSignature, "the token's signature is not valid");
  auto decoded = unbase64url(payload);
  auto node = decoded ? json::parse(*decoded) : Ref<JsonNode>();
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
    throw VerifyError(Failure::kMalformed, "malformed token");
  JsonObject* o = json_node_get_object(node.get());
  TokenClaims c;
  c.key_name = json::get_string(o, "k").value_or("");
  c.model = json::get_string(o, "m").value_or("");
  c.session_json = json::get_string(o, "s").value_or("{}");
  c.issued_at = json_object_get_int_member_with_default(o, "iat", 0);
  c.expires_at = json_object_get_int_member_with_default(o, "exp", 0);
  c.beta = json::get_string(o, "d").value_or("") == "beta";
  if (c.key_name.empty() || c.model.empty())
    throw VerifyError(Failure::kMalformed, "malformed token");
  if (now >= c.expires_at) throw VerifyError(Failure::kExpired, "the token has expired");
  return c;
}

}  // namespace rtgw::auth
