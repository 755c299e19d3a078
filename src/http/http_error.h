// SPDX-License-Identifier: MIT
// The one error type that crosses into the HTTP layer.
//
// Owns: the SPEC's error vocabulary (status, type, code, message). Handlers throw HttpError;
// the route layer (http/server.cpp) turns it into `{"error": {...}}` exactly once.
//
// Threads: main loop (thrown and caught inside the HTTP handlers).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace rtgw::http {

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string type, std::string code, const std::string& message)
      : std::runtime_error(message),
        status_(status),
        type_(std::move(type)),
        code_(std::move(code)) {}

  // An upstream's own JSON error body, passed through with its status.
  static HttpError passthrough(int status, std::string body, const std::string& message) {
    HttpError e(status, "upstream_error", "upstream_error", message);
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
namespace errors {
HttpError bad_request(const std::string& code, const std::string& message);
HttpError unauthorized(const std::string& code, const std::string& message);
HttpError forbidden(const std::string& code, const std::string& message);
HttpError not_found(const std::string& code, const std::string& message);
HttpError too_many(const std::string& code, const std::string& message);
// 429 for a key over a budget (no new call, session or token): type and code both
// `insufficient_quota`, as OpenAI's own (SPEC "Errors agents act on"; agents stop retrying on it).
// The reason `budget_exceeded` is the caller's to log.
HttpError insufficient_quota(const std::string& message);
HttpError unavailable(const std::string& code, const std::string& message);
}  // namespace errors

}  // namespace rtgw::http
