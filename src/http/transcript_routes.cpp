// SPDX-License-Identifier: MIT
// `GET /v1/realtime/calls/{id}/transcript`, and where calls and sessions meet the transcripts
// store (transcripts/transcript_store.h) at set-up: their capture, and the session that switches
// input transcription on for the worker (`transcripts.enable_input_transcription`).
//
// Access: admins and the key that created the call (Principal::may_access); anyone else, an
// unknown call, or a call that was not transcribed: 404 call_not_found (a call's existence is not
// revealed). Cluster mode with the JSONL store: a call this instance did not transcribe is asked
// of its owner (forward_to_owner) while it is live; a finished call of another instance is 404
// here. With the PostgreSQL ledger every instance reads the one table.
//
// Threads: main loop.
#include "common/json.h"
#include "common/ref.h"
#include "http/http_error.h"
#include "http/server.h"

namespace rtgw::http {

bool Server::handle_transcript_route(SoupServerMessage* msg, const std::string& rest) {
  const std::string suffix = "/transcript";
  if (rest.size() <= suffix.size() ||
      rest.compare(rest.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string id = rest.substr(0, rest.size() - suffix.size());
  if (id.find('/') != std::string::npos) return false;
  auth::Principal principal = services_.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  const bool from_peer = internal_request(msg);
  auto not_found = [&id] {
    return errors::not_found("call_not_found", "no transcript of call " + id + " for this key");
  };
  if (!transcripts_) throw not_found();
  if (services_.cluster && !from_peer && !transcripts_->shared() && !transcripts_->knows(id) &&
      !services_.calls.find(id) && !services_.calls.find_ended(id)) {
    forward_to_owner(msg, id, "GET", "/v1/realtime/calls/" + id + "/transcript");
    return true;
  }
  auto pending = Ref<SoupServerMessage>::retain(msg);
  soup_server_message_pause(msg);
  transcripts_->read(
      id, [principal](const std::string& owner) { return principal.may_access(owner); },
      [pending, id](transcripts::Transcript t) {
        if (!t.unavailable.empty()) {
          g_warning("GET transcript of %s: the transcript store is unavailable: %s", id.c_str(),
                    t.unavailable.c_str());
          HttpError e = errors::unavailable("transcript_store_unavailable",
                                            "the transcript store is unavailable (PostgreSQL down, "
                                            "or too many reads): retry in a moment");
          respond_json(pending.get(), e.status(), e.body());
        } else if (!t.found) {
          HttpError e =
              errors::not_found("call_not_found", "no transcript of call " + id + " for this key");
          respond_json(pending.get(), e.status(), e.body());
        } else {
          auto entries = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
          json_node_take_array(entries.get(), json_array_new());
          for (const auto& e : t.entries) {
            json::ObjectBuilder entry;
            entry.set("turn", static_cast<gint64>(e.turn)).set("role", e.role).set("text", e.text);
            if (e.item_id.empty())
              entry.set_null("item_id");
            else
              entry.set("item_id", e.item_id);
            if (e.response_id.empty())
              entry.set_null("response_id");
            else
              entry.set("response_id", e.response_id);
            entry.set("at", e.at);
            json_array_add_element(json_node_get_array(entries.get()), entry.node().release());
          }
          json::ObjectBuilder out;
          out.set("call_id", id).set("model", t.model).set_node("entries", entries);
          respond_json(pending.get(), 200, out.str());
        }
        soup_server_message_unpause(pending.get());
      });
  return true;
}

bool Server::transcribe_input(const auth::Principal& principal, const std::string& model,
                              const std::string& upstream_model,
                              std::optional<std::string>& session) const {
  if (!transcripts_ || !transcripts_->config().enable_input_transcription ||
      !transcripts_->wants(principal.key_name, model))
    return false;
  auto updated = transcripts::with_input_transcription(
      session, upstream_model, transcripts_->config().input_transcription_model);
  if (!updated) return false;
  session = std::move(updated);
  return true;
}

std::shared_ptr<transcripts::TranscriptCapture> Server::transcript_capture(
    const std::string& id, const auth::Principal& principal, const std::string& model) const {
  return transcripts_ ? transcripts_->capture_for(id, principal.key_name, model) : nullptr;
}

}  // namespace rtgw::http
