// SPDX-License-Identifier: MIT
#include "sessions/session_registry.h"

#include "common/random.h"

namespace rtgw::relay {

SessionRegistry::~SessionRegistry() {
  // Sessions report their end through post_to_main; at destruction nobody listens any more.
  for (auto& [id, session] : sessions_) session->end(close_code::kGoingAway, "gateway stopped");
  for (auto& [id, sideband] : sidebands_) sideband->end(close_code::kGoingAway, "gateway stopped");
}

std::string SessionRegistry::new_session_id() { return random_id("ws_", 32); }

WebSocketSession& SessionRegistry::start_session(SessionIdentity identity, SessionSettings settings,
                                                 workers::WorkerLease lease,
                                                 SoupWebsocketConnection* client,
                                                 std::uint64_t max_client_message_bytes) {
  std::string id = identity.session_id;
  settings.relay_observer = relay_observer_;
  auto session =
      std::make_unique<WebSocketSession>(std::move(identity), std::move(settings), std::move(lease),
                                         client, max_client_message_bytes, this);
  WebSocketSession& ref = *session;
  sessions_[id] = std::move(session);
  try {
    ref.start();
  } catch (const std::exception& e) {
    // The client's upgrade is done: it learns through the close code (and the log says why).
    g_warning("[%s] cannot start: %s", id.c_str(), e.what());
    ref.end(close_code::kInternalError, "internal error");
  }
  return ref;
}

void SessionRegistry::attach_sideband(calls::Call& call, SoupWebsocketConnection* connection,
                                      std::uint64_t max_message_bytes) {
  std::string id = "sb_" + new_session_id().substr(3);
  sidebands_[id] =
      std::make_unique<Sideband>(id, call, connection, max_message_bytes,
                                 [this](Sideband& ended) { sidebands_.erase(ended.id()); });
}

int SessionRegistry::sidebands_for_call(const std::string& call_id) const {
  int n = 0;
  for (const auto& [id, sideband] : sidebands_) n += sideband->call_id() == call_id;
  return n;
}

int SessionRegistry::live_sessions_for_key(const std::string& key_name) const {
  int n = 0;
  for (const auto& [id, session] : sessions_) n += session->identity().key_name == key_name;
  return n;
}

void SessionRegistry::end_all(int code, const std::string& reason) {
  std::vector<WebSocketSession*> live;
  for (auto& [id, session] : sessions_) live.push_back(session.get());
  for (WebSocketSession* s : live) s->end(code, reason);
}

int SessionRegistry::end_key(const std::string& key_name, const std::string& code,
                             const std::string& message) {
  std::vector<WebSocketSession*> of_key;
  for (auto& [id, session] : sessions_)
    if (session->identity().key_name == key_name) of_key.push_back(session.get());
  for (WebSocketSession* s : of_key) s->end_key_revoked(code, message);
  return static_cast<int>(of_key.size());
}

void SessionRegistry::OnSessionEnded(WebSocketSession& session) {
  auto it = sessions_.find(session.id());
  if (it == sessions_.end()) return;
  std::unique_ptr<WebSocketSession> ended = std::move(it->second);
  sessions_.erase(it);
  if (observer_) observer_->OnSessionEnded(*ended);
  ended.reset();
  if (sessions_.empty() && on_empty_) on_empty_();
}

}  // namespace rtgw::relay
