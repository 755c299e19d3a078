// SPDX-License-Identifier: MIT
#include "http/session_shape.h"

#include "common/json.h"
#include "common/ref.h"
#include "http/http_error.h"

namespace rtgw::http {
namespace {

constexpr const char* kTranscription = "transcription";

// session.audio.input.transcription, created on the way when `create`.
JsonObject* transcription_object(JsonObject* session, bool create) {
  JsonObject* node = session;
  for (const char* name : {"audio", "input", "transcription"}) {
    JsonObject* child = json::get_object(node, name);
    if (!child) {
      if (!create) return nullptr;
      child = json_object_new();
      json_object_set_object_member(node, name, child);  // takes the reference
    }
    node = child;
  }
  return node;
}

}  // namespace

SessionShape session_shape(JsonObject* session) {
  SessionShape shape;
  if (!session) return shape;
  if (json_object_has_member(session, "type")) {
    auto type = json::get_string(session, "type");
    if (!type || (*type != "realtime" && *type != kTranscription))
      throw errors::bad_request("invalid_session",
                                "session.type must be \"realtime\" or \"transcription\"");
    if (*type == kTranscription) shape.type = SessionType::kTranscription;
  }
  if (shape.transcription()) {
    if (JsonObject* t = transcription_object(session, false))
      shape.model = json::get_string(t, "model");
  } else {
    shape.model = json::get_string(session, "model");
  }
  if (shape.model && shape.model->empty()) shape.model.reset();
  return shape;
}

SessionShape session_shape(const std::string& session_json) {
  auto node = json::parse(session_json);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return {};
  return session_shape(json_node_get_object(node.get()));
}

void set_session_model(JsonObject* session, const std::string& model) {
  if (!json_object_has_member(session, "type"))
    json_object_set_string_member(session, "type", "realtime");
  if (session_shape(session).transcription())
    json_object_set_string_member(transcription_object(session, true), "model", model.c_str());
  else
    json_object_set_string_member(session, "model", model.c_str());
}

std::string choose_model(const SessionShape& session, const std::string& query_model) {
  if (!session.model) return query_model;
  if (session.transcription() && !query_model.empty() && query_model != *session.model)
    throw errors::bad_request("model_mismatch",
                              "?model=" + query_model +
                                  " disagrees with the transcription session's model " +
                                  *session.model + " (session.audio.input.transcription.model)");
  return *session.model;
}

std::string transcription_session_json(const std::string& model) {
  auto node = json::parse(R"({"type":"transcription"})");
  set_session_model(json_node_get_object(node.get()), model);
  return json::to_string(node.get());
}

}  // namespace rtgw::http
