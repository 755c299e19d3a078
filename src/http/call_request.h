// SPDX-License-Identifier: MIT
// The body of `POST /v1/realtime/calls`.
//
// Owns: decoding the two body forms the SPEC allows — `application/sdp` (the offer) and
// `multipart/form-data` with `sdp` and `session` (JSON, `session.model` names the model) — into
// one `CallRequest`, with the SPEC's 400 codes on bad input.
#pragma once

#include <optional>
#include <string>

namespace rtgw::http {

struct CallRequest {
  std::string sdp;
  std::optional<std::string> session_json;   // the client's `session` object, verbatim JSON
  std::optional<std::string> session_model;  // session.model, when present
};

// `content_type` is the raw header (may be null). Throws HttpError.
CallRequest parse_call_request(const char* content_type, const std::string& body);

// Returns `session_json` with `model` replaced by `upstream_model` (the worker's name for it).
std::string session_for_upstream(const std::string& session_json,
                                 const std::string& upstream_model);

}  // namespace rtgw::http
