// SPDX-License-Identifier: MIT
// The session of a translation route (SPEC "Translation sessions").
//
// Owns: what the translation routes (`POST /v1/realtime/translations/calls`,
// `GET /v1/realtime/translations`, `POST /v1/realtime/translations/client_secrets`) read from a
// translation session object: its `type` ("translation", or none) and its model (`session.model`,
// default `gpt-realtime-translate`); the session the worker is given (type and model set); the
// token cross-use rule (a translation token redeems only on translation routes, a realtime or
// transcription token only on the others); and the policy a translation session runs under: the
// configured one plus deny rules for the client events translation has not (`response.*`,
// `conversation.*`, `input_audio_buffer.*`, `output_audio_buffer.*`: a translation streams from
// the audio itself and has no response lifecycle).
//
// Threads: any (pure); called by the routes on the main loop.
#pragma once

#include <json-glib/json-glib.h>

#include <optional>
#include <string>

#include "auth/authenticator.h"

namespace rtgw::http {

inline constexpr const char* kDefaultTranslationModel = "gpt-realtime-translate";

// The model a translation session object names (`model`), if any. Throws HttpError 400
// `invalid_session` when `type` is present and not "translation", or `model` is not a string.
std::optional<std::string> translation_session_model(JsonObject* session);
// The same for JSON text (a multipart `session` field or a token's session); text that is not a
// JSON object: 400 invalid_json.
std::optional<std::string> translation_session_model(const std::string& session_json);

// True when `session_json` is a session object of type "translation".
bool is_translation_session(const std::string& session_json);

// Throws HttpError 401 `invalid_api_key` when the principal is an ephemeral token minted for the
// other kind of route: a translation token on a realtime route (`translation_route` false), a
// realtime or transcription token on a translation route. A gateway key passes both.
void check_token_route(const auth::Principal& principal, bool translation_route);

// The session the worker is given: `session_json` (none: an empty one) with `type` set to
// "translation" and `model` to `upstream_model`.
std::string translation_session_for_upstream(const std::optional<std::string>& session_json,
                                             const std::string& upstream_model);

// The rteventfilter policy of a translation session: `policy_json` (the config's `policy`
// object; "" = none) with deny rules appended for every key (the configured rules keep their
// indices) for the client event families translation has not. Unreadable policy: returned as is
// (the filter reports it as it would without translation).
std::string translation_policy_json(const std::string& policy_json);

}  // namespace rtgw::http
