// SPDX-License-Identifier: MIT
// Cross-origin access for browser clients.
//
// Owns: deciding whether a request's Origin may use the gateway (same origin, or listed in
// `cors_origins`, `"*"` allowed), answering preflights, and the CORS headers of every answer:
// an allowed origin may send every request header it asks for, `Location` is exposed.
//
// Threads: main loop (the route layer); the origin checks are pure.
#pragma once

#include <libsoup/soup.h>

#include <optional>
#include <string>
#include <vector>

namespace rtgw::http {

class CorsPolicy {
 public:
  explicit CorsPolicy(std::vector<std::string> allowed_origins)
      : allowed_(std::move(allowed_origins)) {}

  enum class Verdict { kNoOrigin, kAllowed, kRefused };
  // Checks the request's Origin and, when allowed, adds the CORS headers to the response.
  Verdict apply(SoupServerMessage* msg) const;
  // Answers an OPTIONS preflight (any verdict). Returns true when it answered.
  bool answer_preflight(SoupServerMessage* msg, Verdict verdict) const;

  // The `Access-Control-Allow-Headers` value for a preflight's `Access-Control-Request-Headers`:
  // every requested header (lower-cased, ", "-separated), or nullopt when the list is not a
  // comma-separated list of RFC 9110 tokens.
  static std::optional<std::string> allowed_headers(const std::string& requested);
  static bool is_token(const std::string& name);

 private:
  bool origin_allowed(const std::string& origin, const char* host) const;
  std::vector<std::string> allowed_;
};

}  // namespace rtgw::http
