// SPDX-License-Identifier: MIT
#include "events/beta_dialect.h"

#include <array>
#include <utility>

#include "common/json.h"

namespace rtgw::events::beta {
namespace {

struct Rename {
  std::string_view ga;
  std::string_view beta;
};

constexpr std::array<Rename, 7> kServerEventNames{{
    {"response.output_audio.delta", "response.audio.delta"},
    {"response.output_audio.done", "response.audio.done"},
    {"response.output_audio_transcript.delta", "response.audio_transcript.delta"},
    {"response.output_audio_transcript.done", "response.audio_transcript.done"},
    {"response.output_text.delta", "response.text.delta"},
    {"response.output_text.done", "response.text.done"},
    {"conversation.item.added", "conversation.item.created"},
}};

// Content part types of assistant output.
constexpr std::array<Rename, 2> kContentTypes{{
    {"output_audio", "audio"},
    {"output_text", "text"},
}};

struct Format {
  std::string_view beta;
  std::string_view ga_type;
};
constexpr std::array<Format, 3> kFormats{{
    {"pcm16", "audio/pcm"},
    {"g711_ulaw", "audio/pcmu"},
    {"g711_alaw", "audio/pcma"},
}};

// Beta member of a realtime session -> {GA container path, GA member}.
struct SessionField {
  const char* beta;
  const char* container;  // "" (top level), "input" or "output" (under `audio`)
  const char* ga;
};
constexpr std::array<SessionField, 9> kSessionFields{{
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

bool is_format(const char* member) { return std::string_view(member) == "format"; }

bool is_string(JsonNode* node) {
  return node && JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING;
}

// The child object `name` of `parent`, created when missing or null; nullptr when the member
// holds something else (then nothing is moved into it).
JsonObject* child_object(JsonObject* parent, const char* name) {
  JsonNode* node = json_object_get_member(parent, name);
  if (node && JSON_NODE_HOLDS_OBJECT(node)) return json_node_get_object(node);
  if (node && !JSON_NODE_HOLDS_NULL(node)) return nullptr;
  JsonObject* child = json_object_new();
  json_object_set_object_member(parent, name, child);  // takes the reference
  return child;
}

// An existing child object, or nullptr.
JsonObject* existing_object(JsonObject* parent, const char* name) {
  return parent ? json::get_object(parent, name) : nullptr;
}

void remove_if_empty(JsonObject* parent, const char* name) {
  JsonObject* child = existing_object(parent, name);
  if (child && json_object_get_size(child) == 0) json_object_remove_member(parent, name);
}

Ref<JsonNode> copy_member(JsonObject* object, const char* name) {
  return Ref<JsonNode>::adopt(json_node_copy(json_object_get_member(object, name)));
}

void set_member(JsonObject* object, const char* name, Ref<JsonNode> node) {
  json_object_set_member(object, name, node.release());
}

Ref<JsonNode> string_node(std::string_view value) {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_VALUE));
  json_node_set_string(node.get(), std::string(value).c_str());
  return node;
}

Ref<JsonNode> string_array(std::initializer_list<const char*> items) {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  JsonArray* array = json_array_new();
  for (const char* item : items) json_array_add_string_element(array, item);
  json_node_take_array(node.get(), array);
  return node;
}

bool array_has_string(JsonNode* node, std::string_view value) {
  if (!node || !JSON_NODE_HOLDS_ARRAY(node)) return false;
  JsonArray* array = json_node_get_array(node);
  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonNode* item = json_array_get_element(array, i);
    if (is_string(item) && value == json_node_get_string(item)) return true;
  }
  return false;
}

// Beta `modalities` (["text","audio"], ["text"], ["audio"]) -> GA `output_modalities`: GA
// answers with either audio (which carries its transcript) or text, never both.
Ref<JsonNode> modalities_to_ga(JsonNode* beta) {
  if (!beta || !JSON_NODE_HOLDS_ARRAY(beta)) return Ref<JsonNode>::adopt(json_node_copy(beta));
  return array_has_string(beta, "audio") ? string_array({"audio"}) : string_array({"text"});
}

// GA `output_modalities` -> beta `modalities`: audio comes with its transcript (text) in beta.
Ref<JsonNode> modalities_to_beta(JsonNode* ga) {
  if (!ga || !JSON_NODE_HOLDS_ARRAY(ga)) return Ref<JsonNode>::adopt(json_node_copy(ga));
  return array_has_string(ga, "audio") ? string_array({"text", "audio"}) : string_array({"text"});
}

Ref<JsonNode> value_to_ga(const char* ga_member, JsonNode* beta_value) {
  if (is_format(ga_member) && is_string(beta_value))
    if (auto f = format_to_ga(json_node_get_string(beta_value))) return f;
  if (std::string_view(ga_member) == "output_modalities") return modalities_to_ga(beta_value);
  return Ref<JsonNode>::adopt(json_node_copy(beta_value));
}

Ref<JsonNode> value_to_beta(const char* ga_member, JsonNode* ga_value) {
  if (is_format(ga_member))
    if (auto s = format_to_beta(ga_value)) return string_node(*s);
  if (std::string_view(ga_member) == "output_modalities") return modalities_to_beta(ga_value);
  return Ref<JsonNode>::adopt(json_node_copy(ga_value));
}

// Moves each beta field of `fields` found in `object` to its GA place (a GA value already there
// wins); `audio_fields` says whether `input`/`output` live under `audio` (sessions, responses).
template <std::size_t N>
void fields_to_ga(JsonObject* object, const std::array<SessionField, N>& fields) {
  for (const SessionField& f : fields) {
    if (!json_object_has_member(object, f.beta)) continue;
    Ref<JsonNode> value = copy_member(object, f.beta);
    json_object_remove_member(object, f.beta);
    JsonObject* target = object;
    if (*f.container) {
      JsonObject* audio = child_object(object, "audio");
      target = audio ? child_object(audio, f.container) : nullptr;
    }
    if (!target || json_object_has_member(target, f.ga)) continue;
    set_member(target, f.ga, value_to_ga(f.ga, value.get()));
  }
}

template <std::size_t N>
bool fields_to_beta(JsonObject* object, const std::array<SessionField, N>& fields) {
  bool changed = false;
  JsonObject* audio = existing_object(object, "audio");
  for (const SessionField& f : fields) {
    JsonObject* source = *f.container ? existing_object(audio, f.container) : object;
    if (!source || !json_object_has_member(source, f.ga)) continue;
    Ref<JsonNode> value = copy_member(source, f.ga);
    json_object_remove_member(source, f.ga);
    set_member(object, f.beta, value_to_beta(f.ga, value.get()));
    changed = true;
  }
  remove_if_empty(audio, "input");
  remove_if_empty(audio, "output");
  remove_if_empty(object, "audio");
  return changed;
}

// The response object of response.create (client) and response.created/done (server).
constexpr std::array<SessionField, 5> kResponseFields{{
    {"modalities", "", "output_modalities"},
    {"voice", "output", "voice"},
    {"output_audio_format", "output", "format"},
    {"max_response_output_tokens", "", "max_output_tokens"},
    {"speed", "output", "speed"},
}};

// Beta transcription session fields -> GA, under audio.input.
constexpr std::array<SessionField, 4> kTranscriptionFields{{
    {"input_audio_format", "input", "format"},
    {"input_audio_transcription", "input", "transcription"},
    {"turn_detection", "input", "turn_detection"},
    {"input_audio_noise_reduction", "input", "noise_reduction"},
}};

std::string_view rename(std::string_view name, bool to_beta, const auto& table) {
  for (const Rename& r : table) {
    if (to_beta && name == r.ga) return r.beta;
    if (!to_beta && name == r.beta) return r.ga;
  }
  return name;
}

// Content part types of one item or part object: "output_audio" <-> "audio", "output_text" <->
// "text". Returns true when something changed.
bool part_type(JsonObject* part, bool to_beta) {
  auto type = json::get_string(part, "type");
  if (!type) return false;
  std::string_view renamed = rename(*type, to_beta, kContentTypes);
  if (renamed == *type) return false;
  json_object_set_string_member(part, "type", std::string(renamed).c_str());
  return true;
}

bool item_content(JsonObject* item, bool to_beta) {
  if (!item) return false;
  JsonNode* content = json_object_get_member(item, "content");
  if (!content || !JSON_NODE_HOLDS_ARRAY(content)) return false;
  bool changed = false;
  JsonArray* parts = json_node_get_array(content);
  for (guint i = 0; i < json_array_get_length(parts); i++) {
    JsonNode* part = json_array_get_element(parts, i);
    if (part && JSON_NODE_HOLDS_OBJECT(part))
      changed |= part_type(json_node_get_object(part), to_beta);
  }
  return changed;
}

bool response_to_beta(JsonObject* response) {
  if (!response) return false;
  bool changed = fields_to_beta(response, kResponseFields);
  JsonNode* output = json_object_get_member(response, "output");
  if (!output || !JSON_NODE_HOLDS_ARRAY(output)) return changed;
  JsonArray* items = json_node_get_array(output);
  for (guint i = 0; i < json_array_get_length(items); i++) {
    JsonNode* item = json_array_get_element(items, i);
    if (item && JSON_NODE_HOLDS_OBJECT(item))
      changed |= item_content(json_node_get_object(item), true);
  }
  return changed;
}

bool contains_any(std::string_view text, std::initializer_list<std::string_view> needles) {
  for (auto n : needles)
    if (text.find(n) != std::string_view::npos) return true;
  return false;
}

bool session_is_transcription(JsonObject* session) {
  return json::get_string(session, "type").value_or("") == "transcription";
}

}  // namespace

Ref<JsonNode> format_to_ga(std::string_view beta_format) {
  for (const Format& f : kFormats) {
    if (beta_format != f.beta) continue;
    json::ObjectBuilder out;
    out.set("type", f.ga_type);
    if (f.beta == "pcm16") out.set("rate", gint64{24000});
    return out.node();
  }
  return {};
}

std::optional<std::string> format_to_beta(JsonNode* ga_format) {
  if (!ga_format || !JSON_NODE_HOLDS_OBJECT(ga_format)) return std::nullopt;
  auto type = json::get_string(json_node_get_object(ga_format), "type");
  if (!type) return std::nullopt;
  for (const Format& f : kFormats)
    if (*type == f.ga_type) return std::string(f.beta);
  return std::nullopt;
}

void session_to_ga(JsonObject* session) {
  if (!session) return;
  if (session_is_transcription(session)) {
    fields_to_ga(session, kTranscriptionFields);
    return;
  }
  fields_to_ga(session, kSessionFields);
  json_object_remove_member(session, "temperature");  // GA sessions have no temperature
  if (!json_object_has_member(session, "type"))
    json_object_set_string_member(session, "type", "realtime");
}

std::string session_json_to_ga(const std::string& session_json) {
  auto root = json::parse(session_json);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root.get())) return session_json;
  session_to_ga(json_node_get_object(root.get()));
  return json::to_string(root.get());
}

void session_to_beta(JsonObject* session) {
  if (!session) return;
  if (session_is_transcription(session)) {
    transcription_session_to_beta(session);
    return;
  }
  fields_to_beta(session, kSessionFields);
  if (json::get_string(session, "type").value_or("") == "realtime")
    json_object_remove_member(session, "type");
}

Ref<JsonNode> transcription_session_to_ga(JsonObject* beta_session) {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT));
  JsonObject* out = json_object_new();
  json_node_take_object(node.get(), out);
  json_object_set_string_member(out, "type", "transcription");
  if (!beta_session) return node;
  // Everything else (include, client_secret settings the route consumed, ...) keeps its name.
  JsonObjectIter iter;
  const gchar* name = nullptr;
  JsonNode* value = nullptr;
  json_object_iter_init_ordered(&iter, beta_session);
  while (json_object_iter_next_ordered(&iter, &name, &value)) {
    std::string_view n = name;
    // `modalities` was informational in a beta transcription session; `type` is ours.
    if (n == "type" || n == "modalities") continue;
    json_object_set_member(out, name, json_node_copy(value));
  }
  fields_to_ga(out, kTranscriptionFields);
  return node;
}

void transcription_session_to_beta(JsonObject* session) {
  if (!session) return;
  fields_to_beta(session, kTranscriptionFields);
  json_object_remove_member(session, "type");
  json_object_set_string_member(session, "object", "realtime.transcription_session");
}

std::string_view server_event_name_to_beta(std::string_view type) {
  return rename(type, true, kServerEventNames);
}

std::optional<std::string> client_event_to_ga(std::string_view text) {
  // Most client traffic (audio appends) needs nothing: skip the parse.
  if (!contains_any(text, {"session.update", "response.create", "conversation.item.create"}))
    return std::nullopt;
  auto root = json::parse(text);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root.get())) return std::nullopt;
  JsonObject* event = json_node_get_object(root.get());
  std::string type = json::get_string(event, "type").value_or("");
  if (type == "session.update") {
    JsonObject* session = json::get_object(event, "session");
    if (!session) return std::nullopt;
    session_to_ga(session);
  } else if (type == "transcription_session.update") {
    // GA has one session.update for both kinds.
    JsonObject* session = json::get_object(event, "session");
    Ref<JsonNode> ga = transcription_session_to_ga(session);
    json_object_set_string_member(event, "type", "session.update");
    set_member(event, "session", ga);
  } else if (type == "response.create") {
    JsonObject* response = json::get_object(event, "response");
    if (!response) return std::nullopt;
    fields_to_ga(response, kResponseFields);
    json_object_remove_member(response, "temperature");
  } else if (type == "conversation.item.create") {
    if (!item_content(json::get_object(event, "item"), false)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  return json::to_string(root.get());
}

std::optional<std::string> server_event_to_beta(std::string_view text) {
  if (!contains_any(text, {"response.output_", "conversation.item", "session.", "response.c",
                           "response.done", "response.content_part"}))
    return std::nullopt;
  auto root = json::parse(text);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root.get())) return std::nullopt;
  JsonObject* event = json_node_get_object(root.get());
  std::string type = json::get_string(event, "type").value_or("");
  bool changed = false;
  std::string_view renamed = server_event_name_to_beta(type);
  if (renamed != type) {
    json_object_set_string_member(event, "type", std::string(renamed).c_str());
    changed = true;
  }
  if (type == "session.created" || type == "session.updated") {
    JsonObject* session = json::get_object(event, "session");
    // The beta answered a transcription_session.update with transcription_session.updated.
    if (session && session_is_transcription(session) && type == "session.updated")
      json_object_set_string_member(event, "type", "transcription_session.updated");
    session_to_beta(session);
    changed = session != nullptr;
  } else if (type == "response.created" || type == "response.done") {
    changed |= response_to_beta(json::get_object(event, "response"));
  } else if (type.rfind("conversation.item.", 0) == 0 ||
             type.rfind("response.output_item.", 0) == 0) {
    changed |= item_content(json::get_object(event, "item"), true);
  } else if (type.rfind("response.content_part.", 0) == 0) {
    if (JsonObject* part = json::get_object(event, "part")) changed |= part_type(part, true);
  }
  if (!changed) return std::nullopt;
  return json::to_string(root.get());
}

}  // namespace rtgw::events::beta
