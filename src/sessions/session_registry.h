// SPDX-License-Identifier: MIT
// All WebSocket sessions and sideband sockets of this process.
//
// Owns: the live `WebSocketSession`s (by id, each holding its worker lease) and `Sideband`s,
// capacity counts per key, ending everything at shutdown, and telling the gateway when the last
// session is gone (drain). Sidebands live and die with their calls; they never hold a drain open.
//
// Threads: main loop only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "admission/local_counts.h"
#include "calls/call.h"
#include "sessions/sideband.h"
#include "sessions/websocket_session.h"

namespace rtgw::relay {

// What the rest of the gateway (usage, metrics) hears about sessions. All no-ops by default.
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void OnSessionEnded(const WebSocketSession& session) {}
};

class SessionRegistry : public SessionListener, public admission::LocalCounts {
 public:
  SessionRegistry() = default;
  ~SessionRegistry() override;

  static std::string new_session_id();

  // Creates and starts a session on an upgraded client socket; the worker lease is held until
  // the session is dropped. A session that cannot start is closed with 1011.
  WebSocketSession& start_session(SessionIdentity identity, SessionSettings settings,
                                  workers::WorkerLease lease, SoupWebsocketConnection* client,
                                  std::uint64_t max_client_message_bytes);
  void attach_sideband(calls::Call& call, SoupWebsocketConnection* connection,
                       std::uint64_t max_message_bytes);

  int live_sessions() const { return static_cast<int>(sessions_.size()); }
  int live_sessions_for_key(const std::string& key_name) const;
  // admission::LocalCounts: a session has no set-up phase of its own to cap.
  int live_count() const override { return live_sessions(); }
  int live_count_for_key(const std::string& key_name) const override {
    return live_sessions_for_key(key_name);
  }
  int live_sidebands() const { return static_cast<int>(sidebands_.size()); }
  // Sideband sockets attached to one call (limits.max_sidebands_per_call bounds them).
  int sidebands_for_call(const std::string& call_id) const;

  // Ends every session (the clients get `code`).
  void end_all(int code, const std::string& reason);
  // Ends every live session of `key_name` with WebSocketSession::end_key_revoked; returns how
  // many. The sessions leave the registry later, as each closes.
  int end_key(const std::string& key_name, const std::string& code, const std::string& message);
  void set_on_empty(std::function<void()> fn) { on_empty_ = std::move(fn); }
  void set_observer(SessionObserver* observer) { observer_ = observer; }
  // Every session started from now on reports its turns and decisions there (SessionSettings).
  void set_relay_observer(events::RelayObserver* observer) { relay_observer_ = observer; }
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [id, session] : sessions_) fn(*session);
  }

  // SessionListener
  void OnSessionEnded(WebSocketSession& session) override;

 private:
  std::map<std::string, std::unique_ptr<WebSocketSession>> sessions_;
  std::map<std::string, std::unique_ptr<Sideband>> sidebands_;
  std::function<void()> on_empty_;
  SessionObserver* observer_ = nullptr;
  events::RelayObserver* relay_observer_ = nullptr;
};

}  // namespace rtgw::relay
