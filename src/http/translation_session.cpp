// SPDX-License-Identifier: MIT
#include "http/translation_session.h"

#include "common/json.h"
#include "common/ref.h"
#include "http/http_error.h"

namespace rtgw::http {
namespace {

constexpr const char* kTranslation = "translation";

// Client event families a translation session does not have (see the header).
constexpr const char* kNotTranslationEvents[] = {"response.*", "conversation.*",
                                                 "input_audio_buffer.*", "output_audio_buffer.*"};

bool token_is_translation(const auth::Principal& principal) {
  return principal.token_session_json && is_translation_session(*principal.token_session_json);
}

}  // namespace

std::optional<std::string> translation_session_model(JsonObject* session) {
  if (!session) return std::nullopt;
  if (json_object_has_member(session, "type")) {
    auto type = json::get_string(session, "type");
    if (!type || *type != kTranslation)
      throw errors::bad_request("invalid_session",
                                "a translation route takes a session of type \"translation\"");
  }
  if (!json_object_has_member(session, "model")) return std::nullopt;
  auto model = json::get_string(session, "model");
  if (!model) throw errors::bad_request("invalid_session", "session.model must be a string");
  if (model->empty()) return std::nullopt;
  return model;
}

std::optional<std::string> translation_session_model(const std::string& session_json) {
  std::string error;
  auto node = json::parse(session_json, &error);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
    throw errors::bad_request(
        "invalid_json", "the session must be a JSON object" + (error.empty() ? "" : ": " + error));
  return translation_session_model(json_node_get_object(node.get()));
}

bool is_translation_session(const std::string& session_json) {
  auto node = json::parse(session_json);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return false;
  return json::get_string(json_node_get_object(node.get()), "type").value_or("") == kTranslation;
}

void check_token_route(const auth::Principal& principal, bool translation_route) {
  if (!principal.token_model) return;  // a gateway key
  const bool translation_token = token_is_translation(principal);
  if (translation_token && !translation_route)
    throw errors::unauthorized("invalid_api_key",
                               "this token was minted for a translation session: use it on "
                               "/v1/realtime/translations/calls or /v1/realtime/translations");
  if (!translation_token && translation_route)
    throw errors::unauthorized("invalid_api_key",
                               "this token was minted for a realtime or transcription session, "
                               "not for translation: mint one with "
                               "POST /v1/realtime/translations/client_secrets");
}

std::string translation_session_for_upstream(const std::optional<std::string>& session_json,
                                             const std::string& upstream_model) {
  auto node = session_json ? json::parse(*session_json) : Ref<JsonNode>();
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) node = json::parse("{}");
  JsonObject* session = json_node_get_object(node.get());
  json_object_set_string_member(session, "type", kTranslation);
  json_object_set_string_member(session, "model", upstream_model.c_str());
  return json::to_string(node.get());
}

std::string translation_policy_json(const std::string& policy_json) {
  auto node = policy_json.empty() ? json::parse("{}") : json::parse(policy_json);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return policy_json;
  JsonObject* policy = json_node_get_object(node.get());
  JsonNode* existing = json_object_get_member(policy, "deny_client_events");
  JsonArray* rules = existing && JSON_NODE_TYPE(existing) == JSON_NODE_ARRAY
                         ? json_node_get_array(existing)
                         : nullptr;
  if (!rules) {
    if (existing) return policy_json;  // not an array: the filter reports it
    rules = json_array_new();
    json_object_set_array_member(policy, "deny_client_events", rules);  // takes the reference
  }
  for (const char* type : kNotTranslationEvents) {
    json::ObjectBuilder rule;
    rule.set("type", type);
    auto keys = json::parse(R"(["*"])");
    rule.set_node("keys", keys);
    json_array_add_element(rules, rule.node().release());
  }
  return json::to_string(node.get());
}

}  // namespace rtgw::http
