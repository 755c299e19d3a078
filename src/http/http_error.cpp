// SPDX-License-Identifier: MIT
#include "http/http_error.h"

#include "common/json.h"

namespace rtgw::http {

std::string HttpError::body() const {
  if (raw_body_) return *raw_body_;
  json::ObjectBuilder err;
  err.set("type", type_).set("code", code_).set("message", std::string(what()));
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
HttpError unavailable(const std::string& code, const std::string& message) {
  return HttpError(503, "server_error", code, message);
}
}  // namespace errors

}  // namespace rtgw::http
