// SPDX-License-Identifier: MIT
// Fuzz target `token`: ephemeral tokens with a fixed secret.
// - The input as a bearer token through EphemeralTokens::verify (what every request with an
//   `ek_` bearer reaches): only VerifyError may be thrown.
// - The input as the `session` of POST /v1/realtime/client_secrets: parsed and re-serialized the
//   way the route does, minted, and redeemed: the claims must come back unchanged.
#include "auth/ephemeral_token.h"
#include "common/json.h"
#include "fuzz_util.h"

using namespace rtgw;

namespace {

constexpr std::int64_t kNow = 1780000000;

const auth::EphemeralTokens& tokens() {
  static const auth::EphemeralTokens t("fuzz-token-secret-0123456789abcdef");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::as_view(data, size));
  try {
    (void)tokens().verify(text, kNow);
  } catch (const auth::EphemeralTokens::VerifyError&) {
  }
  // The same with the prefix, so mutations reach the payload and signature checks.
  try {
    (void)tokens().verify("ek_" + text, kNow);
  } catch (const auth::EphemeralTokens::VerifyError&) {
  }

  auto node = json::parse(text);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return 0;
  auth::TokenClaims claims{"team-a", "gpt-realtime", json::to_string(node.get()), kNow - 5,
                           kNow + 600};
  const std::string token = tokens().mint(claims);
  try {
    auth::TokenClaims back = tokens().verify(token, kNow);
    if (back.key_name != claims.key_name || back.model != claims.model ||
        back.session_json != claims.session_json || back.issued_at != claims.issued_at ||
        back.expires_at != claims.expires_at)
      fuzz::fail("a minted token redeems to other claims", claims.session_json);
  } catch (const auth::EphemeralTokens::VerifyError& e) {
    fuzz::fail("a freshly minted token does not verify", e.what());
  }
  return 0;
}
