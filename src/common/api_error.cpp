// SPDX-License-Identifier: MIT
#include "common/api_error.h"

#include <glib.h>

#include "common/json.h"
#include "common/ref.h"

namespace rtgw {
namespace {

// Text from a URL (a path, a query value) may be any bytes: JSON strings must be UTF-8.
std::string valid_utf8(const std::string& s) {
  if (g_utf8_validate_len(s.data(), s.size(), nullptr)) return s;
  UniqueStr fixed(g_utf8_make_valid(s.data(), static_cast<gssize>(s.size())));
  return fixed.get();
}

}  // namespace

std::string ApiError::body() const {
  if (raw_body_) return *raw_body_;
  json::ObjectBuilder err;
  err.set("type", valid_utf8(type_))
      .set("code", valid_utf8(code_))
      .set("message", valid_utf8(what()));
  json::ObjectBuilder root;
  root.set_object("error", std::move(err));
  return root.str();
}

namespace api_errors {
ApiError bad_request(const std::string& code, const std::string& message) {
  return ApiError(400, "invalid_request_error", code, message);
}
ApiError unauthorized(const std::string& code, const std::string& message) {
  return ApiError(401, "invalid_request_error", code, message);
}
ApiError forbidden(const std::string& code, const std::string& message) {
  return ApiError(403, "invalid_request_error", code, message);
}
ApiError not_found(const std::string& code, const std::string& message) {
  return ApiError(404, "invalid_request_error", code, message);
}
ApiError too_many(const std::string& code, const std::string& message) {
  return ApiError(429, "rate_limit_error", code, message);
}
ApiError insufficient_quota(const std::string& message) {
  return ApiError(429, "insufficient_quota", "insufficient_quota", message);
}
ApiError unavailable(const std::string& code, const std::string& message) {
  return ApiError(503, "server_error", code, message);
}
}  // namespace api_errors

}  // namespace rtgw
