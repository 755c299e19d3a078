// SPDX-License-Identifier: MIT
#include "http/http_error.h"

#include <glib.h>

#include "common/json.h"
#include "common/ref.h"

namespace rtgw::http {
namespace {

// Text from a URL (a path, a query value) may be any bytes: JSON strings must be UTF-8.
std::string valid_utf8(const std::string& s) {
  if (g_utf8_validate_len(s.data(), s.size(), nullptr)) return s;
  UniqueStr fixed(g_utf8_make_valid(s.data(), static_cast<gssize>(s.size())));
  return fixed.get();
}

}  // namespace

std::string HttpError::body() const {
  if (raw_body_) return *raw_body_;
  json::ObjectBuilder err;
  err.set("type", valid_utf8(type_))
      .set("code", valid_utf8(code_))
      .set("message", valid_utf8(what()));
  json::ObjectBuilder root;
  root.set_object("error", std::move(err));
  return root.str();
}

namespace errors {
HttpError bad_request(const std::string& code, const std::string& message) {
  return HttpError(400, "invalid_request_error", code, message);
}
HttpError unauthorized(const std::string& code, const std::string& message) {
  return HttpError(401, "invalid_request_error", code, message);
}
HttpError forbidden(const std::string& code, const std::string& message) {
  return HttpError(403, "invalid_request_error", code, message);
}
HttpError not_found(const std::string& code, const std::string& message) {
  return HttpError(404, "invalid_request_error", code, message);
}
HttpError too_many(const std::string& code, const std::string& message) {
  return HttpError(429, "rate_limit_error", code, message);
}
HttpError insufficient_quota(const std::string& message) {
  return HttpError(429, "insufficient_quota", "insufficient_quota", message);
}
HttpError unavailable(const std::string& code, const std::string& message) {
  return HttpError(503, "server_error", code, message);
}
}  // namespace errors

}  // namespace rtgw::http
