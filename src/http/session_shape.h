// SPDX-License-Identifier: MIT
// The shape of a GA session object, as clients send it in `client_secrets`, a multipart call's
// `session` field, or a token.
//
// Owns: which kind of session an object describes (`type`: "realtime", the default, or
// "transcription") and where its model lives: `session.model` for a realtime session,
// `session.audio.input.transcription.model` for a transcription session (SPEC "Transcription
// sessions"). Every route that reads or rewrites a session's model goes through here.
//
// Threads: any (pure); called by the routes on the main loop.
#pragma once

#include <json-glib/json-glib.h>

#include <optional>
#include <string>

namespace rtgw::http {

enum class SessionType { kRealtime, kTranscription };

struct SessionShape {
  SessionType type = SessionType::kRealtime;
  std::optional<std::string> model;  // the session's model per its type, when it names one

  bool transcription() const { return type == SessionType::kTranscription; }
};

// Reads `session` (a session object; null reads as an empty realtime session). Throws HttpError
// 400 `invalid_session` when `type` is neither "realtime" nor "transcription".
SessionShape session_shape(JsonObject* session);
// The same for session JSON text; a text that is not a JSON object reads as an empty realtime
// session.
SessionShape session_shape(const std::string& session_json);

// Sets the session's model where its type keeps it (creating audio.input.transcription for a
// transcription session) and, when the object has no `type`, adds `"type": "realtime"`.
void set_session_model(JsonObject* session, const std::string& model);

// The model a request names: the session's own, else `?model=`. For a transcription session a
// `?model=` must agree with the session's model: else HttpError 400 `model_mismatch`. (A realtime
// session's `session.model` wins over `?model=`, as before transcription sessions existed.)
std::string choose_model(const SessionShape& session, const std::string& query_model);

// The minimal GA transcription session naming `model`:
// {"type":"transcription","audio":{"input":{"transcription":{"model":M}}}}
std::string transcription_session_json(const std::string& model);

}  // namespace rtgw::http
