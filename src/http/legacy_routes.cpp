// SPDX-License-Identifier: MIT
// The legacy (beta) routes of the Realtime API, kept for clients written before the GA:
//
// - `POST /v1/realtime/sessions` (body: a beta session with `model`) and
//   `POST /v1/realtime/transcription_sessions` (a beta transcription session): mint the same
//   signed `ek_` tokens as /v1/realtime/client_secrets, with the session stored in GA form and
//   the beta flag, and answer the beta shape (the session plus `client_secret: {value,
//   expires_at}`).
// - `POST /v1/realtime?model=M` (`application/sdp`): a WebRTC call like /v1/realtime/calls whose
//   client speaks the beta dialect.
//
// Threads: main loop only.
#include <libsoup/soup.h>

#include "common/json.h"
#include "events/beta_dialect.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/server.h"

namespace rtgw::http {
namespace {

// The request body as a JSON object (400 invalid_json otherwise).
Ref<JsonNode> body_object(SoupServerMessage* msg) {
  SoupMessageBody* body = soup_server_message_get_request_body(msg);
  std::string text = body && body->data ? std::string(body->data, body->length) : "";
  std::string error;
  auto root = text.empty() ? json::parse("{}") : json::parse(text, &error);
  if (!root || JSON_NODE_TYPE(root.get()) != JSON_NODE_OBJECT)
    throw errors::bad_request(
        "invalid_json", "the body must be a JSON object" + (error.empty() ? "" : ": " + error));
  return root;
}

// A deep copy (json_node_copy shares the objects and arrays of the node it copies).
Ref<JsonNode> deep_copy(JsonNode* node) { return json::parse(json::to_string(node)); }

// The beta body's `client_secret.expires_after`, if any.
JsonObject* expires_after(JsonObject* body) {
  return json::get_object(json::get_object(body, "client_secret"), "expires_after");
}

// The beta answer: the session as the client gave it (without the request's client_secret
// settings), its id and object, and the token.
std::string beta_answer(JsonObject* body, const char* object, const std::string& token,
                        std::int64_t expires_at, const std::string& id) {
  auto answer = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT));
  json_node_set_object(answer.get(), body);
  JsonObject* out = json_node_get_object(answer.get());
  json_object_remove_member(out, "client_secret");
  if (!json_object_has_member(out, "id")) json_object_set_string_member(out, "id", id.c_str());
  json_object_set_string_member(out, "object", object);
  json::ObjectBuilder secret;
  secret.set("value", token).set("expires_at", static_cast<gint64>(expires_at));
  json_object_set_member(out, "client_secret", secret.node().release());
  return json::to_string(answer.get());
}

}  // namespace

void Server::handle_legacy_sessions(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  auto root = body_object(msg);
  JsonObject* body = json_node_get_object(root.get());
  std::string model = json::get_string(body, "model").value_or("");
  if (model.empty()) throw errors::bad_request("missing_model", "name the model in `model`");
  mintable_model(principal, model);
  std::int64_t ttl = token_ttl(expires_after(body));

  auto ga = deep_copy(root.get());
  JsonObject* session = json_node_get_object(ga.get());
  json_object_remove_member(session, "client_secret");
  json_object_remove_member(session, "object");
  json_object_remove_member(session, "id");
  events::beta::session_to_ga(session);
  check_transcription_models(principal.models, json::to_string(ga.get()));
  auth::MintedToken token = mint_token(principal, model, ga.get(), ttl, /*beta=*/true);
  respond_json(msg, 200,
               beta_answer(body, "realtime.session", token.value, token.expires_at,
                           auth::new_session_object_id()));
}

void Server::handle_legacy_transcription_sessions(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  auto root = body_object(msg);
  JsonObject* body = json_node_get_object(root.get());

  auto request = deep_copy(root.get());
  JsonObject* beta_session = json_node_get_object(request.get());
  json_object_remove_member(beta_session, "client_secret");
  json_object_remove_member(beta_session, "object");
  json_object_remove_member(beta_session, "id");
  Ref<JsonNode> ga = events::beta::transcription_session_to_ga(beta_session);
  // A transcription session's model is its transcription model.
  JsonObject* input =
      json::get_object(json::get_object(json_node_get_object(ga.get()), "audio"), "input");
  std::string model =
      json::get_string(json::get_object(input, "transcription"), "model").value_or("");
  if (model.empty())
    throw errors::bad_request("missing_model",
                              "name the model in `input_audio_transcription.model`");
  mintable_model(principal, model);
  std::int64_t ttl = token_ttl(expires_after(body));
  auth::MintedToken token = mint_token(principal, model, ga.get(), ttl, /*beta=*/true);
  respond_json(msg, 200,
               beta_answer(body, "realtime.transcription_session", token.value, token.expires_at,
                           auth::new_session_object_id()));
}

void Server::handle_legacy_call(SoupServerMessage* msg, GHashTable* query) {
  handle_create_call(msg, query, CallRoute::kBeta);
  // "/v1/realtime" also has the WebSocket handler, which libsoup runs on any request its regular
  // handler leaves without a status (and refuses with 400 when it is no handshake). A call held
  // open for its answer is such a request: a provisional status keeps libsoup out of it; the
  // answer (or the error) replaces it before the paused response is written.
  if (soup_server_message_get_status(msg) == 0)
    soup_server_message_set_status(msg, SOUP_STATUS_ACCEPTED, nullptr);
}

}  // namespace rtgw::http
