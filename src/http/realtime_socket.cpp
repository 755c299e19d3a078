// SPDX-License-Identifier: MIT
// `GET /v1/realtime`: the WebSocket route of the HTTP layer.
//
// Every check that can fail (auth, model, capacity, the call of a sideband) runs before the
// upgrade and fails as the SPEC's HTTP JSON error; what is decided is kept on the message and
// picked up by the WebSocket callback once libsoup has completed the handshake.
#include <cstring>
#include <memory>

#include "http/call_request.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/server.h"
#include "http/translation_session.h"

namespace rtgw::http {
namespace {

constexpr const char* kUpgradeKey = "rtgw-realtime-upgrade";
constexpr const char* kApiKeyProtocol = "openai-insecure-api-key.";
constexpr const char* kBetaProtocol = "openai-beta.realtime-v1";
constexpr const char* kRealtimeProtocol = "realtime";

// What handle_realtime_socket() decided, for on_websocket().
struct Upgrade {
  std::string call_id;  // a sideband; else a session:
  relay::SessionIdentity identity;
  relay::SessionSettings settings;
  workers::WorkerLease lease;  // given back if the upgrade never completes
  // Cluster mode: the sideband of a call held by another instance, relayed to this socket.
  Ref<SoupWebsocketConnection> relay_to;
  telemetry::RequestTrace trace;  // a session's, off without telemetry
};

struct OfferedProtocols {
  bool realtime = false;
  bool beta = false;
  std::string api_key;  // from openai-insecure-api-key.<key>
};

OfferedProtocols parse_protocols(const char* header) {
  OfferedProtocols out;
  if (!header) return out;
  UniqueStrv items(g_strsplit(header, ",", -1));
  for (gchar** p = items.get(); *p; p++) {
    std::string item = g_strstrip(*p);
    if (item == kRealtimeProtocol)
      out.realtime = true;
    else if (item == kBetaProtocol)
      out.beta = true;
    else if (item.rfind(kApiKeyProtocol, 0) == 0)
      out.api_key = item.substr(strlen(kApiKeyProtocol));
  }
  return out;
}

// The parts of RFC 6455's opening handshake libsoup would refuse, checked before anything is
// reserved for the request.
bool is_websocket_handshake(SoupServerMessage* msg) {
  SoupMessageHeaders* h = soup_server_message_get_request_headers(msg);
  return soup_message_headers_header_equals(h, "Upgrade", "websocket") &&
         soup_message_headers_header_contains(h, "Connection", "upgrade") &&
         soup_message_headers_header_equals(h, "Sec-WebSocket-Version", "13") &&
         soup_message_headers_get_one(h, "Sec-WebSocket-Key");
}

std::string query_value(GHashTable* query, const char* name) {
  if (!query) return {};
  auto* v = static_cast<const char*>(g_hash_table_lookup(query, name));
  return v ? v : "";
}

}  // namespace

void Server::handle_realtime_socket(SoupServerMessage* msg, GHashTable* query,
                                    bool translation_route) {
  const auto& config = services_.config.current();
  if (!is_websocket_handshake(msg))
    throw HttpError(426, "invalid_request_error", "websocket_required",
                    std::string("GET ") + (translation_route ? kTranslationsPath : kRealtimePath) +
                        " is a WebSocket endpoint: open it with a WebSocket client "
                        "(Upgrade: websocket, version 13)");
  refuse_if(admission_->shutting_down_gate());
  telemetry::RequestTrace trace = start_trace(msg);
  SoupMessageHeaders* headers = soup_server_message_get_request_headers(msg);
  OfferedProtocols offered =
      parse_protocols(soup_message_headers_get_one(headers, "Sec-WebSocket-Protocol"));
  // Browsers cannot set headers on a WebSocket: they carry the key in a subprotocol.
  std::string authorization;
  if (const char* h = soup_message_headers_get_one(headers, "Authorization"))
    authorization = h;
  else if (!offered.api_key.empty())
    authorization = "Bearer " + offered.api_key;

  // A client that offers subprotocols must get one of them back, or browsers fail the socket
  // (set once every check before the upgrade passed).
  const char* protocol =
      offered.realtime ? kRealtimeProtocol : (offered.beta ? kBetaProtocol : nullptr);
  auto answer_protocol = [msg, protocol] {
    if (protocol)
      soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                   "Sec-WebSocket-Protocol", protocol);
  };
  auto keep = [msg](std::unique_ptr<Upgrade> upgrade) {
    g_object_set_data_full(G_OBJECT(msg), kUpgradeKey, upgrade.release(),
                           &UserData<Upgrade>::destroy);
  };
  std::string call_id = translation_route ? "" : query_value(query, "call_id");
  if (!call_id.empty()) {
    // Sideband: a server-side control channel, so gateway keys only (never a browser's token).
    auth::Principal principal = services_.auth.authenticate(authorization.c_str(), false);
    const bool from_peer = internal_request(msg);
    calls::Call* call = services_.calls.find(call_id);
    if (!call && services_.cluster && !from_peer) {
      answer_protocol();
      relay_sideband(msg, call_id, authorization);  // held by another instance, perhaps
      return;
    }
    if (!call || call->state() == calls::Call::State::kEnded ||
        !principal.may_access(call->identity().key_name))
      throw errors::not_found("call_not_found", "no live call " + call_id + " for this key");
    if (int cap = config.limits.max_sidebands_per_call;
        cap > 0 && services_.sessions.sidebands_for_call(call_id) >= cap)
      throw errors::too_many("too_many_sidebands",
                             "the call already has " + std::to_string(cap) +
                                 " sideband sockets (limits.max_sidebands_per_call)");
    auto upgrade = std::make_unique<Upgrade>();
    upgrade->call_id = call_id;
    answer_protocol();
    keep(std::move(upgrade));
    return;  // status left unset: libsoup completes the handshake and calls on_websocket()
  }
  auth::Principal principal = services_.auth.authenticate(authorization.c_str(), true);
  check_token_route(principal, translation_route);
  trace.lap("rtgw.auth");
  std::string model = query_value(query, "model");
  // A transcription session: `?intent=transcription` (with ?model= or a token) or a token
  // minted for one; its model is the transcription model (SPEC "Transcription sessions").
  bool transcription = !translation_route && query_value(query, "intent") == "transcription";
  if (principal.token_session_json && !translation_route) {
    bool token_transcription = session_shape(*principal.token_session_json).transcription();
    if (transcription && !token_transcription)
      throw errors::bad_request("invalid_session",
                                "?intent=transcription with a token minted for a realtime session");
    transcription = token_transcription;
  }
  // A translation session: ?model=, else the token's, else the default translation model.
  if (translation_route && model.empty() && !principal.token_model)
    model = kDefaultTranslationModel;
  const config::ModelConfig& model_config = resolve_model(principal, model);
  model = model_config.name;
  refuse_if(admission_->budget_gate(principal.key_name));
  // A token's session is refused here, before the upgrade, if the policy would block it.
  std::optional<std::string> session;
  if (principal.token_session_json)
    session = apply_initial_session_policy(config.policy_json, principal.key_name, model,
                                           *principal.token_session_json, &principal.models);
  // A beta client (header, subprotocol, or a token of a legacy mint route) gets the beta
  // dialect; the worker never sees the header.
  const bool beta_client =
      offered.beta || soup_message_headers_header_contains(headers, "OpenAI-Beta", "realtime=v1") ||
      principal.token_beta;
  std::string session_id = relay::SessionRegistry::new_session_id();
  // Admission: the cluster's counts (cluster mode: msg waits, the handshake prepared), then this
  // instance's and a worker. Without cluster this runs before the handler returns.
  admit(
      msg,
      ask_for(translation_route ? admission::Kind::kTranslationSession : admission::Kind::kSession,
              session_id, principal, model),
      // `snapshot` keeps `model_config` alive while the admission waits (a reload meanwhile).
      [this, snapshot = services_.config.snapshot(), principal, model, &model_config, session,
       beta_client, transcription, session_id, keep, answer_protocol, translation_route,
       trace](admission::Ticket ticket) {
        const auto& config = *snapshot;  // the request's snapshot, as model_config
        auto upgrade = std::make_unique<Upgrade>();
        upgrade->trace = trace;
        upgrade->trace.lap("rtgw.admission");
        upgrade->lease = std::move(ticket.lease);
        upgrade->identity = {session_id, principal.key_name, model, model_config.upstream_model,
                             upgrade->lease->name()};
        relay::SessionSettings& s = upgrade->settings;
        s.pipeline_description = services_.session_pipeline_description;
        s.policy_json =
            translation_route ? translation_policy_json(config.policy_json) : config.policy_json;
        s.max_event_bytes = static_cast<std::size_t>(config.max_event_bytes);
        s.budget_exceeded = ticket.over_budget;
        s.response_gate = response_gate_;
        s.allowed_models = allowed_models(principal.models, model_config.upstream_model);
        s.idle_timeout_seconds = config.websocket.idle_timeout_seconds;
        s.max_pending_bytes = config.limits.max_pending_event_bytes;
        s.max_outgoing_bytes = static_cast<std::uint64_t>(config.limits.max_outgoing_buffer_bytes);
        s.pricing = std::move(ticket.pricing);
        s.beta_client = beta_client;
        s.transcription = transcription;
        s.translation = translation_route;
        if (translation_route)  // the worker's first session.update names the translation
          s.session_json = translation_session_for_upstream(session, model_config.upstream_model);
        else if (session)
          s.session_json = session_for_upstream(*session, model_config.upstream_model);
        else if (transcription)  // the worker learns the transcription model from the first event
          s.session_json = transcription_session_json(model_config.upstream_model);
        // transcripts: the gateway's own session.update passes the filter, which must allow the
        // transcription model it names.
        if (!translation_route && !transcription &&
            transcribe_input(principal, model, model_config.upstream_model, s.session_json) &&
            !s.allowed_models.empty())
          s.allowed_models.push_back(transcripts_->config().input_transcription_model);
        s.transcript = transcript_capture(session_id, principal, model);
        s.failover = std::move(ticket.failover);
        if (tracer_) s.response_content = tracer_->content_hook(session_id);
        s.config_snapshot = snapshot;
        answer_protocol();
        keep(std::move(upgrade));
      },
      /*upgrade=*/true);
  // Status left unset: libsoup completes the handshake (once admitted) and calls on_websocket().
}

void Server::relay_sideband(SoupServerMessage* msg, const std::string& call_id,
                            const std::string& authorization) {
  auto held = Ref<SoupServerMessage>::retain(msg);
  soup_server_message_pause(msg);
  auto* peers = peers_.get();
  auto* metrics = &services_.metrics;
  services_.cluster->find_owner(call_id, [held, peers, metrics, call_id,
                                          authorization](std::optional<cluster::Owner> owner) {
    auto not_found =
        errors::not_found("call_not_found", "no live call " + call_id + " for this key");
    if (!owner || owner->self) {
      refuse_upgrade(held.get(), not_found);
      soup_server_message_unpause(held.get());
      return;
    }
    UniqueStr escaped(g_uri_escape_string(call_id.c_str(), nullptr, FALSE));
    std::string url = owner->url + "/v1/realtime?call_id=" + escaped.get();
    if (url.rfind("https://", 0) == 0)
      url.replace(0, 5, "wss");
    else if (url.rfind("http://", 0) == 0)
      url.replace(0, 4, "ws");
    metrics->add(metrics::kClusterForwardedTotal, {"sideband"});
    peers->open_socket(
        url, authorization,
        [held, not_found, owner = *owner](Ref<SoupWebsocketConnection> connection,
                                          const cluster::PeerResponse& r) {
          if (!connection) {
            if (r.status == 429) {  // the owner's cap (too_many_sidebands)
              refuse_upgrade(held.get(),
                             errors::too_many("too_many_sidebands",
                                              "the call has all the sideband sockets it may "
                                              "have (limits.max_sidebands_per_call)"));
            } else if (r.status == 404 || r.status == 401 || r.status == 403) {
              refuse_upgrade(held.get(),
                             r.status == 404
                                 ? not_found
                                 : HttpError(r.status, "invalid_request_error", "invalid_api_key",
                                             "refused by the owner"));
            } else {
              g_warning("cluster: sideband to instance %s (%s) failed: %s",
                        owner.instance_id.c_str(), owner.url.c_str(), r.error.c_str());
              refuse_upgrade(held.get(), HttpError(502, "server_error", "cluster_peer_unreachable",
                                                   "the instance holding this call (" +
                                                       owner.instance_id + ") cannot be reached"));
            }
            soup_server_message_unpause(held.get());
            return;
          }
          auto upgrade = std::make_unique<Upgrade>();
          upgrade->call_id = "";
          upgrade->relay_to = std::move(connection);
          g_object_set_data_full(G_OBJECT(held.get()), kUpgradeKey, upgrade.release(),
                                 &UserData<Upgrade>::destroy);
          soup_server_message_unpause(held.get());  // libsoup completes the handshake
        });
  });
}

void Server::on_websocket(SoupServer*, SoupServerMessage* msg, const char*,
                          SoupWebsocketConnection* connection, gpointer data) {
  auto* self = static_cast<Server*>(data);
  auto* upgrade = static_cast<Upgrade*>(g_object_steal_data(G_OBJECT(msg), kUpgradeKey));
  std::unique_ptr<Upgrade> owned(upgrade);
  self->connections_->websocket_upgraded(msg, connection);
  auto max_bytes =
      static_cast<std::uint64_t>(self->services_.config.current().websocket.max_message_bytes);
  if (!owned) {
    soup_websocket_connection_close(connection, close_code::kInternalError, "not prepared");
    return;
  }
  if (owned->relay_to) {
    if (soup_websocket_connection_get_state(owned->relay_to.get()) != SOUP_WEBSOCKET_STATE_OPEN) {
      soup_websocket_connection_close(connection, close_code::kNormal, "call ended");
      return;
    }
    self->peers_->relay(connection, owned->relay_to.get());
    return;
  }
  if (!owned->call_id.empty()) {
    calls::Call* call = self->services_.calls.find(owned->call_id);
    if (!call || call->state() == calls::Call::State::kEnded) {
      soup_websocket_connection_close(connection, close_code::kNormal, "call ended");
      return;
    }
    // Handshakes that passed the check together: the ones past the cap go at once.
    if (int cap = self->services_.config.current().limits.max_sidebands_per_call;
        cap > 0 && self->services_.sessions.sidebands_for_call(owned->call_id) >= cap) {
      soup_websocket_connection_close(connection, close_code::kPolicyViolation,
                                      "too many sideband sockets on this call");
      return;
    }
    self->services_.sessions.attach_sideband(*call, connection, max_bytes);
    return;
  }
  if (self->tracer_) {
    owned->trace.lap("rtgw.websocket_upgrade");  // the handshake, once admitted
    self->tracer_->begin(owned->identity.session_id, std::move(owned->trace));
  }
  self->services_.sessions.start_session(std::move(owned->identity), std::move(owned->settings),
                                         std::move(owned->lease), connection, max_bytes);
}

}  // namespace rtgw::http
