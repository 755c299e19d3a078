// SPDX-License-Identifier: MIT
// The SPEC's API error: the one error type that crosses into the HTTP layer.
//
// Owns: the SPEC's error vocabulary (status, type, code, message). It lives below every room
// (auth throws it without knowing HTTP, which ends the auth <-> http include cycle); the HTTP
// layer names it `http::HttpError` (http/http_error.h), and its route layer (http/server.cpp)
// turns it into `{"error": {...}}` exactly once.
//
// Threads: any (a value type); thrown and caught on the main loop.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace rtgw {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string code, const std::string& message)
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        code_(std::move(code)) {}

  // An upstream's own JSON error body, passed through with its status.
  static ApiError passthrough(int status, std::string body, const std::string& message) {
    ApiError e(status, "upstream_error", "upstream_error", message);
    e.raw_body_ = std::move(body);
    return e;
  }

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }
  const std::optional<std::string>& raw_body() const { return raw_body_; }

  // The SPEC's JSON body.
  std::string body() const;

 private:
  int status_;
  std::string type_;
  std::string code_;
  std::optional<std::string> raw_body_;
};

// Shorthands for the SPEC's error table.
namespace api_errors {
ApiError bad_request(const std::string& code, const std::string& message);
ApiError unauthorized(const std::string& code, const std::string& message);
ApiError forbidden(const std::string& code, const std::string& message);
ApiError not_found(const std::string& code, const std::string& message);
ApiError too_many(const std::string& code, const std::string& message);
// 429 for a key over a budget (no new call, session or token): type and code both
// `insufficient_quota`, as OpenAI's own (SPEC "Errors agents act on"; agents stop retrying on it).
// The reason `budget_exceeded` is the caller's to log.
ApiError insufficient_quota(const std::string& message);
ApiError unavailable(const std::string& code, const std::string& message);
}  // namespace api_errors

}  // namespace rtgw
