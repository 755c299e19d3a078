// SPDX-License-Identifier: MIT
// Fuzz target `call_request`: http::parse_call_request with any Content-Type (the first line of
// the input; the rest is the body), then what POST /v1/realtime/calls does with the accepted
// session: apply_initial_session_policy under a fixed policy (as is, and after the beta route's
// session_json_to_ga) for two keys, then session_for_upstream; session_for_upstream also runs on
// the raw body. Only HttpError may be thrown: 400 by parse_call_request, 403 policy_violation by
// the policy (500 only when the policy cannot be read, and the fixed one can).
// session_for_upstream never throws and, given a JSON object, returns a JSON object whose `model`
// is the upstream's. The session the policy lets through is a JSON object, and running it through
// the policy again changes nothing (what goes upstream has nothing left to filter).
#include "common/json.h"
#include "events/beta_dialect.h"
#include "fuzz_util.h"
#include "http/call_request.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/session_shape.h"

using namespace rtgw;

namespace {

void check_session(const std::string& session_json) {
  const std::string upstream = http::session_for_upstream(session_json, "gpt-realtime-upstream");
  auto in = json::parse(session_json);
  if (!in || JSON_NODE_TYPE(in.get()) != JSON_NODE_OBJECT) return;  // returned as it came
  try {
    http::session_shape(json_node_get_object(in.get()));
  } catch (const http::HttpError&) {  // an unknown session.type: refused on the way in
    if (upstream != session_json)
      fuzz::fail("session_for_upstream changed a session of unknown type", upstream);
    return;
  }
  auto out = json::parse(upstream);
  if (!out || JSON_NODE_TYPE(out.get()) != JSON_NODE_OBJECT)
    fuzz::fail("session_for_upstream: not a JSON object", upstream);
  // The model sits where the session's type keeps it (transcription: audio.input.transcription).
  if (http::session_shape(json_node_get_object(out.get())).model != "gpt-realtime-upstream")
    fuzz::fail("session_for_upstream: model not replaced", upstream);
}

// The tier rules of plugins/rtevents/examples/policy.json (filtered or blocked by key and model),
// session.update denied to team-c (the example denies conversation.item.create, which an
// initial session never is), and reasoning efforts capped (ops: above high refused; else lowered
// to low).
constexpr const char* kPolicy =
    R"({"service_tier":[{"tier":"priority","action":"pass","models":["gpt-realtime-mini"],)"
    R"("fallback":"block"},{"tier":"flex","action":"filter","keys":["team-*"]}],)"
    R"("deny_client_events":[{"type":"session.update","keys":["team-c"]}],)"
    R"("reasoning_effort":[{"max":"high","action":"block","keys":["ops"]},)"
    R"({"max":"low","action":"lower"}],)"
    R"("max_event_bytes":1024})";

void check_policy(const std::string& session_json, const std::string& key,
                  const std::string& model) {
  std::string out;
  try {
    out = http::apply_initial_session_policy(kPolicy, key, model, session_json);
  } catch (const http::HttpError& e) {
    if (e.status() != 403) fuzz::fail("apply_initial_session_policy: not a 403", e.what());
    return;
  }
  auto node = json::parse(out);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
    fuzz::fail("apply_initial_session_policy: not a JSON object", out);
  // What goes upstream is what json-glib reads of it (session_for_upstream): the policy, run on
  // that, has nothing left to filter or block.
  const std::string read = json::to_string(node.get());
  std::string again;
  try {
    again = http::apply_initial_session_policy(kPolicy, key, model, read);
  } catch (const http::HttpError& e) {
    fuzz::fail("apply_initial_session_policy: let through a session it refuses", read);
  }
  if (again != read)
    fuzz::fail("apply_initial_session_policy: let through a session it filters", read);
  check_session(out);
}

void check_initial_session(const std::string& session_json) {
  check_policy(session_json, "team-a", "gpt-realtime");
  check_policy(session_json, "ops", "gpt-realtime-mini");
  // The beta route translates first (POST /v1/realtime, or a token minted by a beta route).
  check_policy(events::beta::session_json_to_ga(session_json), "team-b", "gpt-realtime");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  std::size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string content_type(in.substr(0, nl));
  // A header value never holds NUL, CR or LF.
  if (content_type.find_first_of(std::string_view("\0\r", 2)) != std::string::npos) return 0;
  const std::string body(in.substr(nl + 1));
  // "-" stands for a request without a Content-Type header.
  const char* header = content_type == "-" ? nullptr : content_type.c_str();
  try {
    http::CallRequest request = http::parse_call_request(header, body);
    if (request.session_json) {
      check_session(*request.session_json);
      check_initial_session(*request.session_json);
    }
  } catch (const http::HttpError& e) {
    if (e.status() != 400) fuzz::fail("parse_call_request: not a 400", e.what());
  }
  check_session(body);
  return 0;
}
