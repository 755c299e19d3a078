// SPDX-License-Identifier: MIT
// Reaching the instance that holds a call (cluster mode): forwarded HTTP requests and relayed
// sideband sockets.
//
// Owns: the libsoup session used towards other instances (every request carries the internal
// secret in `X-RTGW-Internal` and the caller's own Authorization, which the owner checks as
// usual), and the live socket relays (client socket <-> owner's socket, messages copied both
// ways, a close on either side closes the other). A relay bounds what it holds (RelayLimits):
// a message above `max_message_bytes` closes its sender with 1009 (the client's fragments are
// bounded before libsoup assembles them, http/websocket_frame_limit.h); what waits towards a
// side that does not read is bounded by `max_outgoing_bytes` (past it: an error event and 1008
// to that side, 1000 to the other); no message either way for `idle_timeout_seconds` closes both
// with 1000.
//
// Threads: main loop only; every callback runs on the main loop.
#pragma once

#include <libsoup/soup.h>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>

#include "common/main_thread.h"
#include "common/ref.h"

namespace rtgw::cluster {

inline constexpr const char* kInternalHeader = "X-RTGW-Internal";

struct PeerResponse {
  int status = 0;  // 0: the owner could not be reached
  std::string content_type;
  std::string body;
  std::string error;  // when status is 0
};

struct RelayLimits {
  std::uint64_t max_message_bytes = 4 << 20;   // websocket.max_message_bytes
  std::uint64_t max_outgoing_bytes = 4 << 20;  // limits.max_outgoing_buffer_bytes
  int idle_timeout_seconds = 300;              // websocket.idle_timeout_seconds (0 = never)
};

class PeerClient {
 public:
  explicit PeerClient(std::string internal_secret, RelayLimits relay_limits = {});
  ~PeerClient();

  // `method` `url` (the owner's advertise_url + path) with the caller's Authorization.
  void forward(const std::string& method, const std::string& url, const std::string& authorization,
               std::function<void(const PeerResponse&)> done);
  // Opens the owner's sideband socket. `done(connection, response)`: a connection, or null and
  // what the owner answered instead.
  void open_socket(const std::string& url, const std::string& authorization,
                   std::function<void(Ref<SoupWebsocketConnection>, const PeerResponse&)> done);
  // Relays `client` <-> `owner` until either closes.
  void relay(SoupWebsocketConnection* client, SoupWebsocketConnection* owner);
  std::size_t live_relays() const { return relays_.size(); }

 private:
  // A request to another instance: the internal secret and the caller's own Authorization set;
  // null when `url` is not a URL.
  Ref<SoupMessage> new_message(const char* method, const std::string& url,
                               const std::string& authorization) const;
  struct Relay;
  void finished(Relay* relay);

  std::string secret_;
  RelayLimits relay_limits_;
  Ref<SoupSession> session_;
  std::list<std::unique_ptr<Relay>> relays_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rtgw::cluster
