// SPDX-License-Identifier: MIT
// Fuzz target `beta`: the beta Realtime dialect (src/events/beta_dialect.h). The whole input is
// one text, fed to every public function:
// - client_event_to_ga, server_event_to_beta (events as the relays translate them);
// - session_json_to_ga (the initial session of a beta call);
// - session_to_beta then session_to_ga, and transcription_session_to_beta then
//   transcription_session_to_ga, on the text as a GA session (the round trip);
// - what the legacy routes (src/http/legacy_routes.cpp) do with a POST /v1/realtime/sessions or
//   /v1/realtime/transcription_sessions body, minus the server: drop client_secret/object/id,
//   translate, read the transcription model, serialize the session the token stores;
// - format_to_ga / format_to_beta and server_event_name_to_beta on the text itself.
//
// Invariants checked (what the header promises): a translated event or session is a JSON object
// whenever its input was one; client_event_to_ga is idempotent (a GA event passes unchanged);
// server_event_to_beta renames the event as server_event_name_to_beta says; session_json_to_ga
// returns text that is not an object as it came; a GA session without beta members keeps each
// GA field through GA -> beta -> GA wherever the mapping is bijective (see `bijective`), and its
// other top-level members untouched; format_to_beta(format_to_ga(f)) == f. Nothing may throw.
#include <array>
#include <optional>
#include <string>

#include "common/json.h"
#include "events/beta_dialect.h"
#include "fuzz_util.h"

using namespace rtgw;
namespace beta = rtgw::events::beta;

namespace {

struct Field {
  const char* beta;
  const char* container;  // "" (top level), "input" or "output" (under `audio`)
  const char* ga;
};
// The mapping as src/events/beta_dialect.h states it.
constexpr std::array<Field, 9> kSessionFields{{
    {"voice", "output", "voice"},
    {"output_audio_format", "output", "format"},
    {"speed", "output", "speed"},
    {"input_audio_format", "input", "format"},
    {"turn_detection", "input", "turn_detection"},
    {"input_audio_transcription", "input", "transcription"},
    {"input_audio_noise_reduction", "input", "noise_reduction"},
    {"max_response_output_tokens", "", "max_output_tokens"},
    {"modalities", "", "output_modalities"},
}};
constexpr std::array<Field, 4> kTranscriptionFields{{
    {"input_audio_format", "input", "format"},
    {"input_audio_transcription", "input", "transcription"},
    {"turn_detection", "input", "turn_detection"},
    {"input_audio_noise_reduction", "input", "noise_reduction"},
}};

Ref<JsonNode> parse_object(std::string_view text) {
  auto node = json::parse(text);
  if (!node || !JSON_NODE_HOLDS_OBJECT(node.get())) return {};
  return node;
}

void expect_object(std::string_view text, const char* what) {
  if (!parse_object(text)) fuzz::fail(what, text);
}

JsonObject* object_of(JsonNode* node) {
  return node && JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : nullptr;
}

// The GA place of a field, or nullptr.
JsonNode* ga_member(JsonObject* session, const Field& f) {
  JsonObject* holder = session;
  if (*f.container) {
    JsonObject* audio = object_of(json_object_get_member(session, "audio"));
    holder = audio ? object_of(json_object_get_member(audio, f.container)) : nullptr;
  }
  return holder ? json_object_get_member(holder, f.ga) : nullptr;
}

bool is_string(JsonNode* node) {
  return node && JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING;
}

bool is_single_string_array(JsonNode* node, const char* value) {
  if (!node || !JSON_NODE_HOLDS_ARRAY(node)) return false;
  JsonArray* array = json_node_get_array(node);
  return json_array_get_length(array) == 1 && is_string(json_array_get_element(array, 0)) &&
         std::string_view(json_node_get_string(json_array_get_element(array, 0))) == value;
}

// Whether GA -> beta -> GA keeps this value: a format that has a beta name comes back in its
// canonical form (so only the canonical form survives), a string naming a beta format comes back
// as the format object, and output_modalities arrays come back as ["audio"] or ["text"].
bool bijective(const Field& f, JsonNode* ga) {
  if (std::string_view(f.ga) == "format") {
    if (is_string(ga)) return !beta::format_to_ga(json_node_get_string(ga));
    auto name = beta::format_to_beta(ga);
    if (!name) return true;
    auto canonical = beta::format_to_ga(*name);
    return canonical && json_node_equal(canonical.get(), ga);
  }
  if (std::string_view(f.ga) == "output_modalities" && ga && JSON_NODE_HOLDS_ARRAY(ga))
    return is_single_string_array(ga, "audio") || is_single_string_array(ga, "text");
  return true;
}

template <std::size_t N>
bool has_beta_member(JsonObject* session, const std::array<Field, N>& fields) {
  for (const Field& f : fields)
    if (json_object_has_member(session, f.beta)) return true;
  return false;
}

template <std::size_t N>
bool is_mapped_top_level(std::string_view name, const std::array<Field, N>& fields) {
  for (const Field& f : fields)
    if (!*f.container && name == f.ga) return true;
  return false;
}

// Compares the round-tripped `after` with the GA session `before`.
template <std::size_t N>
void check_round_trip(JsonObject* before, JsonObject* after, const std::array<Field, N>& fields,
                      std::initializer_list<std::string_view> may_change, const char* what) {
  for (const Field& f : fields) {
    JsonNode* was = ga_member(before, f);
    JsonNode* now = ga_member(after, f);
    if (!was) {
      if (now) fuzz::fail(what, std::string("a GA field appeared: ") + f.ga);
      continue;
    }
    if (!bijective(f, was)) continue;
    if (!now || !json_node_equal(was, now))
      fuzz::fail(what, std::string("a GA field changed: ") + f.container + "." + f.ga);
  }
  // Every other top-level member is untouched.
  JsonObjectIter iter;
  const gchar* name = nullptr;
  JsonNode* value = nullptr;
  json_object_iter_init(&iter, before);
  while (json_object_iter_next(&iter, &name, &value)) {
    std::string_view n = name;
    if (n == "audio" || is_mapped_top_level(n, fields)) continue;
    bool skip = false;
    for (auto m : may_change) skip |= n == m;
    if (skip) continue;
    JsonNode* now = json_object_get_member(after, name);
    if (!now || !json_node_equal(value, now))
      fuzz::fail(what, std::string("a member changed: ") + name);
  }
}

void check_client_event(std::string_view text) {
  auto out = beta::client_event_to_ga(text);
  if (!out) return;
  expect_object(*out, "client_event_to_ga: not a JSON object");
  auto again = beta::client_event_to_ga(*out);
  if (again && *again != *out) fuzz::fail("client_event_to_ga: a GA event changed again", *again);
}

void check_server_event(std::string_view text) {
  auto out = beta::server_event_to_beta(text);
  if (!out) return;
  auto in = parse_object(text);
  auto parsed = parse_object(*out);
  if (!in) fuzz::fail("server_event_to_beta: translated what is not a JSON object", text);
  if (!parsed) fuzz::fail("server_event_to_beta: not a JSON object", *out);
  JsonObject* event = json_node_get_object(in.get());
  const std::string type = json::get_string(event, "type").value_or("");
  std::string expected(beta::server_event_name_to_beta(type));
  JsonObject* session = json::get_object(event, "session");
  if (type == "session.updated" && session &&
      json::get_string(session, "type").value_or("") == "transcription")
    expected = "transcription_session.updated";
  const auto now = json::get_string(json_node_get_object(parsed.get()), "type");
  if (expected != type || now)  // an event without a string type keeps it
    if (now.value_or("") != expected) fuzz::fail("server_event_to_beta: wrong event name", *out);
}

void check_session_text(const std::string& text, bool is_object) {
  const std::string out = beta::session_json_to_ga(text);
  if (!is_object) {
    if (out != text) fuzz::fail("session_json_to_ga: changed text that is not an object", out);
    return;
  }
  auto parsed = parse_object(out);
  if (!parsed) fuzz::fail("session_json_to_ga: not a JSON object", out);
  // Translated once, it is a GA session: it passes unchanged.
  if (beta::session_json_to_ga(out) != out)
    fuzz::fail("session_json_to_ga: a GA session changed", out);
}

void check_realtime_round_trip(const std::string& text) {
  auto before = parse_object(text);
  JsonObject* b = json_node_get_object(before.get());
  if (has_beta_member(b, kSessionFields) || json_object_has_member(b, "temperature")) return;
  if (json::get_string(b, "type").value_or("") == "transcription") return;
  auto work = parse_object(text);
  JsonObject* w = json_node_get_object(work.get());
  beta::session_to_beta(w);
  expect_object(json::to_string(work.get()), "session_to_beta: not a JSON object");
  beta::session_to_ga(w);
  expect_object(json::to_string(work.get()), "session_to_ga: not a JSON object");
  check_round_trip(b, w, kSessionFields, {"type"}, "session GA -> beta -> GA");
  // `type: "realtime"` is dropped for beta and added back; any other type stays.
  auto type_before = json::get_string(b, "type");
  auto type_after = json::get_string(w, "type");
  if (!type_before || *type_before == "realtime") {
    if (json_object_has_member(b, "type") && !type_before) {
      if (!json_node_equal(json_object_get_member(b, "type"), json_object_get_member(w, "type")))
        fuzz::fail("session GA -> beta -> GA: a non-string type changed");
    } else if (type_after.value_or("") != "realtime") {
      fuzz::fail("session GA -> beta -> GA: type is not realtime", type_after.value_or(""));
    }
  } else if (type_after != type_before) {
    fuzz::fail("session GA -> beta -> GA: type changed", type_after.value_or(""));
  }
}

void check_transcription_round_trip(const std::string& text) {
  auto before = parse_object(text);
  JsonObject* b = json_node_get_object(before.get());
  if (has_beta_member(b, kTranscriptionFields)) return;
  if (json::get_string(b, "type").value_or("") != "transcription") return;
  auto work = parse_object(text);
  JsonObject* w = json_node_get_object(work.get());
  beta::transcription_session_to_beta(w);
  if (json::get_string(w, "object").value_or("") != "realtime.transcription_session")
    fuzz::fail("transcription_session_to_beta: no object");
  Ref<JsonNode> ga = beta::transcription_session_to_ga(w);
  JsonObject* g = object_of(ga.get());
  if (!g) fuzz::fail("transcription_session_to_ga: not an object");
  expect_object(json::to_string(ga.get()), "transcription_session_to_ga: not a JSON object");
  if (json::get_string(g, "type").value_or("") != "transcription")
    fuzz::fail("transcription GA -> beta -> GA: type is not transcription");
  // `modalities` is informational in beta and dropped; `object` is the beta answer's.
  check_round_trip(b, g, kTranscriptionFields, {"type", "object", "modalities"},
                   "transcription GA -> beta -> GA");
}

// POST /v1/realtime/sessions and /v1/realtime/transcription_sessions, as legacy_routes.cpp reads
// the body (an object), minus authentication and minting.
void check_legacy_bodies(const std::string& text) {
  {
    auto root = parse_object(text);
    JsonObject* session = json_node_get_object(root.get());
    json_object_remove_member(session, "client_secret");
    json_object_remove_member(session, "object");
    json_object_remove_member(session, "id");
    beta::session_to_ga(session);
    expect_object(json::to_string(root.get()), "legacy sessions: stored session not an object");
  }
  {
    auto root = parse_object(text);
    JsonObject* session = json_node_get_object(root.get());
    json_object_remove_member(session, "client_secret");
    json_object_remove_member(session, "object");
    json_object_remove_member(session, "id");
    Ref<JsonNode> ga = beta::transcription_session_to_ga(session);
    JsonObject* g = object_of(ga.get());
    if (!g) fuzz::fail("transcription_session_to_ga: not an object");
    JsonObject* input = json::get_object(json::get_object(g, "audio"), "input");
    (void)json::get_string(json::get_object(input, "transcription"), "model");
    expect_object(json::to_string(ga.get()), "legacy transcription: stored session not an object");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::as_view(data, size));

  check_client_event(text);
  check_server_event(text);
  const bool is_object = static_cast<bool>(parse_object(text));
  check_session_text(text, is_object);
  if (is_object) {
    check_realtime_round_trip(text);
    check_transcription_round_trip(text);
    check_legacy_bodies(text);
    // Null sessions are accepted.
    beta::session_to_ga(nullptr);
    beta::session_to_beta(nullptr);
    beta::transcription_session_to_beta(nullptr);
    (void)beta::transcription_session_to_ga(nullptr);
  }

  // Formats and names on the text itself.
  if (auto ga = beta::format_to_ga(text)) {
    if (beta::format_to_beta(ga.get()) != text) fuzz::fail("format_to_beta(format_to_ga(f)) != f");
  }
  if (auto node = json::parse(text)) (void)beta::format_to_beta(node.get());
  (void)beta::format_to_beta(nullptr);
  (void)beta::server_event_name_to_beta(text);
  return 0;
}
