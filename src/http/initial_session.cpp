// SPDX-License-Identifier: MIT
#include "http/initial_session.h"

#include "common/json.h"
#include "http/http_error.h"
#include "rtevents/json.h"
#include "rtevents/policy.h"

namespace rtgw::http {

std::string apply_initial_session_policy(const std::string& policy_json,
                                         const std::string& key_name, const std::string& model,
                                         const std::string& session_json,
                                         const std::vector<std::string>* key_models) {
  std::string error;
  auto parsed = rtevents::Policy::parse(policy_json, &error);
  if (!parsed)
    throw HttpError(500, "server_error", "internal_error", "the gateway's policy: " + error);
  rtevents::Policy policy = *parsed;
  policy.max_event_bytes = 0;  // HTTP bodies have their own limit

  // The policy judges the session as json-glib reads it, which is what goes upstream
  // (session_for_upstream): json-glib takes the first of several top-level values (`{...}{}`),
  // and that text wrapped as is would be a malformed event, which the policy passes.
  auto session_node = json::parse(session_json);
  if (!session_node || JSON_NODE_TYPE(session_node.get()) != JSON_NODE_OBJECT)
    throw errors::bad_request("invalid_json", "the session must be a JSON object");
  const std::string session = json::to_string(session_node.get());

  const std::string event = R"({"type":"session.update","session":)" + session + "}";
  rtevents::EventContext context{key_name, model, false, key_models};
  rtevents::FilterOutcome outcome = rtevents::apply_policy(policy, context, event);
  switch (outcome.kind) {
    case rtevents::FilterOutcome::Kind::kUntouched:
      return session;
    case rtevents::FilterOutcome::Kind::kDropped:
      if (outcome.decision && outcome.decision->reason == rtevents::Reason::kModelNotAllowed)
        throw errors::forbidden("model_not_allowed", outcome.decision->message);
      throw errors::forbidden("policy_violation", "the initial session is not allowed: " +
                                                      (outcome.decision ? outcome.decision->message
                                                                        : std::string("policy")));
    case rtevents::FilterOutcome::Kind::kModified:
      break;
  }
  auto node = json::parse(outcome.modified);
  JsonObject* rewritten = node && JSON_NODE_TYPE(node.get()) == JSON_NODE_OBJECT
                              ? json::get_object(json_node_get_object(node.get()), "session")
                              : nullptr;
  if (!rewritten)
    throw HttpError(500, "server_error", "internal_error",
                    "the policy's rewritten session could not be read");
  return json::to_string(rewritten);
}

void check_transcription_models(const std::vector<std::string>& key_models,
                                const std::string& session_json) {
  const rtevents::json::ParseResult parsed = rtevents::json::parse(session_json);
  if (!parsed.root || !parsed.root->is_object()) return;  // the caller refuses a non-object
  for (const auto& m : rtevents::transcription_models(*parsed.root)) {
    bool allowed = false;
    for (const auto& pattern : key_models) allowed = allowed || rtevents::glob_match(pattern, m);
    if (!allowed)
      throw errors::forbidden("model_not_allowed",
                              "this key may not use the transcription model '" + m + "'");
  }
}

std::vector<std::string> allowed_models(const std::vector<std::string>& key_models,
                                        const std::string& upstream_model) {
  std::vector<std::string> out = key_models;
  // Patterns are globs: a literal name with '*' in it would widen the list; such a name only
  // matches itself more loosely, and it is the operator's own upstream name.
  if (!upstream_model.empty()) out.push_back(upstream_model);
  return out;
}

}  // namespace rtgw::http
