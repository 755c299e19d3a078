// SPDX-License-Identifier: MIT
// The initial session of a call or WebSocket session under the event policy.
//
// Owns: running the session a call starts with (the multipart `session` field, or the one bound
// in an ephemeral token) through the same policy code as rteventfilter, as the
// `{"type":"session.update","session":...}` it amounts to, before any worker is contacted. The
// policy's rewritten session (filtered fields removed, tiers normalized) is what goes upstream;
// a blocked or denied one refuses the request with 403 `policy_violation`.
//
// Threads: main loop (any thread: it holds no state).
#pragma once

#include <string>
#include <vector>

namespace rtgw::http {

// Returns the session to forward for key `key_name` and gateway model `model`, under the
// `policy` object of the config (`policy_json`, "" = none). Throws HttpError 403
// policy_violation when the policy blocks or denies it; 500 when the policy cannot be read; 400
// invalid_json when `session_json` is no JSON object (callers pass checked sessions). What it
// returns is the session as json::parse reads it, serialized again.
// The per-event size limit does not apply (the session does not travel as an event here).
// `key_models` (the key's model patterns; null: any) also covers the session's transcription
// model: one the key may not use is 403 model_not_allowed.
std::string apply_initial_session_policy(const std::string& policy_json,
                                         const std::string& key_name, const std::string& model,
                                         const std::string& session_json,
                                         const std::vector<std::string>* key_models = nullptr);

// Throws HttpError 403 model_not_allowed when `session_json` (a session object, GA or beta) names
// a transcription model (`audio.input.transcription.model`, `input_audio_transcription.model`)
// that no pattern of `key_models` matches. For the mint routes, which run no policy.
void check_transcription_models(const std::vector<std::string>& key_models,
                                const std::string& session_json);

// What a call's or session's rteventfilter allows a session.update to name as its transcription
// model: the key's patterns, plus the upstream name of the model it was admitted for (the
// gateway's own first session.update of a transcription session carries that name).
std::vector<std::string> allowed_models(const std::vector<std::string>& key_models,
                                        const std::string& upstream_model);

}  // namespace rtgw::http
