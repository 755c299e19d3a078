// SPDX-License-Identifier: MIT
#include "http/initial_session.h"

#include "common/json.h"
#include "http/http_error.h"
#include "rtevents/policy.h"

namespace rtgw::http {

std::string apply_initial_session_policy(const std::string& policy_json,
                                         const std::string& key_name, const std::string& model,
                                         const std::string& session_json) {
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
  rtevents::EventContext context{key_name, model, false};
  rtevents::FilterOutcome outcome = rtevents::apply_policy(policy, context, event);
  switch (outcome.kind) {
    case rtevents::FilterOutcome::Kind::kUntouched:
      return session;
    case rtevents::FilterOutcome::Kind::kDropped:
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

}  // namespace rtgw::http
