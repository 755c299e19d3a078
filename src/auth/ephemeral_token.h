// SPDX-License-Identifier: MIT
// Ephemeral tokens (`ek_…`) minted by POST /v1/realtime/client_secrets.
//
// Owns: the token format — `ek_` + base64url(claims JSON) + `.` + base64url(HMAC-SHA256 of the
// claims with the token secret) — minting, and verifying (signature compared in constant time,
// expiry). Tokens are self-contained: any instance holding the same secret redeems them. The
// claims bind the key name, the model, the session config (GA form) and, for tokens of the
// legacy mint routes, the beta dialect (`"d": "beta"`).
//
// Threads: any (mint and verify are const: the secret is set once at construction); called from
// the HTTP handlers on the main loop.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace rtgw::auth {

struct TokenClaims {
  std::string key_name;
  std::string model;
  std::string session_json;  // the session object as given at mint time
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;  // unix seconds
  // Minted by a legacy (beta) route: calls made with it speak the beta dialect to the client.
  bool beta = false;
};

class EphemeralTokens {
 public:
  // An empty secret means a random one for this process (tokens die with it).
  explicit EphemeralTokens(const std::string& secret);

  std::string mint(const TokenClaims& claims) const;

  enum class Failure { kMalformed, kBadSignature, kExpired };
  struct VerifyError : std::runtime_error {
    Failure failure;
    VerifyError(Failure f, const std::string& what) : std::runtime_error(what), failure(f) {}
  };
  // Throws VerifyError. `now` in unix seconds.
  TokenClaims verify(const std::string& token, std::int64_t now) const;

  static bool looks_like_token(const std::string& bearer) { return bearer.rfind("ek_", 0) == 0; }

 private:
  std::string sign(const std::string& payload) const;
  std::string secret_;
};

}  // namespace rtgw::auth
