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

namespace rtgw::http {

// Returns the session to forward for key `key_name` and gateway model `model`, under the
// `policy` object of the config (`policy_json`, "" = none). Throws HttpError 403
// policy_violation when the policy blocks or denies it; 500 when the policy cannot be read; 400
// invalid_json when `session_json` is no JSON object (callers pass checked sessions). What it
// returns is the session as json::parse reads it, serialized again.
// The per-event size limit does not apply (the session does not travel as an event here).
std::string apply_initial_session_policy(const std::string& policy_json,
                                         const std::string& key_name, const std::string& model,
                                         const std::string& session_json);

}  // namespace rtgw::http
