// SPDX-License-Identifier: MIT
// The beta Realtime dialect (`OpenAI-Beta: realtime=v1`) translated to and from GA.
//
// Owns: pure functions, no state, callable from any thread. Session objects, response objects,
// item content and event names of the beta shape are rewritten to the GA shape for everything a
// beta client sends, and back to the beta shape for everything the worker says (after the meter:
// policy and metering always see GA). What has no counterpart passes unchanged.
//
// Session fields, beta -> GA: `modalities` -> `output_modalities`, `voice` -> `audio.output.voice`,
// `input_audio_format` -> `audio.input.format`, `output_audio_format` -> `audio.output.format`,
// `turn_detection` -> `audio.input.turn_detection`, `input_audio_transcription` ->
// `audio.input.transcription`, `input_audio_noise_reduction` -> `audio.input.noise_reduction`,
// `speed` -> `audio.output.speed`, `max_response_output_tokens` -> `max_output_tokens`,
// `type: "realtime"` added; `temperature` (no GA field) is dropped. Audio formats: "pcm16" <->
// {"type":"audio/pcm","rate":24000}, "g711_ulaw" <-> {"type":"audio/pcmu"}, "g711_alaw" <->
// {"type":"audio/pcma"}.
//
// Threads: any (pure functions): the client's events are translated on webrtcbin's data channel
// thread or the main loop, the worker's on the main loop.
#pragma once

#include <json-glib/json-glib.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/ref.h"

namespace rtgw::events::beta {

// A beta audio format string as a GA format object (nullptr for an unknown string).
Ref<JsonNode> format_to_ga(std::string_view beta_format);
// A GA format object as the beta string (nullopt when it has no beta name).
std::optional<std::string> format_to_beta(JsonNode* ga_format);

// In place. A GA session passes unchanged (GA fields win over beta ones).
void session_to_ga(JsonObject* session);
void session_to_beta(JsonObject* session);
// The same over JSON text (an initial session); text that is not an object comes back as it is.
std::string session_json_to_ga(const std::string& session_json);
// A beta transcription session (the body of POST /v1/realtime/transcription_sessions, or of a
// `transcription_session.update`) as a GA session of type "transcription".
Ref<JsonNode> transcription_session_to_ga(JsonObject* beta_session);
// A GA transcription session in the beta shape (`object: realtime.transcription_session`).
void transcription_session_to_beta(JsonObject* session);

// GA server event name -> the beta one (the name itself when unchanged).
std::string_view server_event_name_to_beta(std::string_view type);

// Whole events as JSON text; nullopt means "unchanged, relay the original bytes".
std::optional<std::string> client_event_to_ga(std::string_view text);
std::optional<std::string> server_event_to_beta(std::string_view text);

}  // namespace rtgw::events::beta
