// SPDX-License-Identifier: MIT
// The body of `POST /v1/realtime/calls`.
//
// Owns: decoding the two body forms the SPEC allows — `application/sdp` (the offer) and
// `multipart/form-data` with `sdp` and `session` (JSON; its model per session_shape.h) — into
// one `CallRequest`, with the SPEC's 400 codes on bad input.
//
// Threads: any (pure); called by the calls route on the main loop.
#pragma once

#include <optional>
#include <string>

#include "http/session_shape.h"

namespace rtgw::http {

struct CallRequest {
  std::string sdp;
  std::optional<std::string> session_json;   // the client's `session` object, verbatim JSON
  std::optional<std::string> session_model;  // the session's model (see session_shape.h)
  SessionShape shape;                        // realtime or transcription, and its model
};

// `content_type` is the raw header (may be null). Throws HttpError. `realtime_session` false (the
// translation route, http/translation_session.h): the `session` field is kept as a JSON object
// without reading its realtime/transcription shape.
CallRequest parse_call_request(const char* content_type, const std::string& body,
                               bool realtime_session = true);

// Returns `session_json` with its model (`model`, or `audio.input.transcription.model` for a
// transcription session) replaced by `upstream_model` (the worker's name for it).
std::string session_for_upstream(const std::string& session_json,
                                 const std::string& upstream_model);

}  // namespace rtgw::http
