// SPDX-License-Identifier: MIT
// `POST /v1/realtime/translations/client_secrets`: tokens for translation sessions.
//
// The two other translation routes are the realtime ones parametrised by route: the WebRTC call
// is handle_create_call(CallRoute::kTranslation) (server.cpp) and the WebSocket is
// handle_realtime_socket(translation_route) (realtime_socket.cpp), so admission, capacity,
// budgets, worker pick and failover are the same code. What is particular to translation (its
// session, its token rule, its policy) is in http/translation_session.h.
#include "common/json.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/server.h"
#include "http/translation_session.h"

namespace rtgw::http {
namespace {

std::string request_body(SoupServerMessage* msg) {
  SoupMessageBody* body = soup_server_message_get_request_body(msg);
  if (!body || !body->data) return {};
  return std::string(body->data, static_cast<size_t>(body->length));
}

}  // namespace

void Server::handle_translation_client_secrets(SoupServerMessage* msg) {
  auth::Principal principal = services_.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  MintRequest request = parse_mint_request(request_body(msg));
  JsonObject* body = request.body;
  Ref<JsonNode> session_node = request.session;
  JsonObject* s = json_node_get_object(session_node.get());
  std::string model = translation_session_model(s).value_or(kDefaultTranslationModel);
  json_object_set_string_member(s, "type", "translation");
  json_object_set_string_member(s, "model", model.c_str());
  mintable_model(principal, model);
  check_transcription_models(principal.models, json::to_string(session_node.get()));

  std::int64_t ttl = token_ttl(json::get_object(body, "expires_after"));
  auth::MintedToken token = mint_token(principal, model, session_node.get(), ttl, /*beta=*/false);

  if (!json_object_has_member(s, "id"))
    json_object_set_string_member(s, "id", auth::new_session_object_id().c_str());
  json_object_set_int_member(s, "expires_at", token.expires_at);
  json::ObjectBuilder out;
  out.set("value", token.value)
      .set("expires_at", static_cast<gint64>(token.expires_at))
      .set_node("session", session_node);
  respond_json(msg, 200, out.str());
}

}  // namespace rtgw::http
