// SPDX-License-Identifier: MIT
// Reaching the instance that holds a call (cluster mode): forwarded HTTP requests and relayed
// sideband sockets.
//
// Owns: the libsoup session used towards other instances (every request carries the internal
// secret in `X-RTGW-Internal` and the caller's own Authorization, which the owner checks as
// usual), and the live socket relays (client socket <-> owner's socket, messages copied both
// ways, a close on either side closes the other).
//
// Threads: main loop only; every callback runs on the main loop.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <list>
#include <memory>
#include <string>

#include "common/ref.h"

namespace rtgw::cluster {

inline constexpr const char* kInternalHeader = "X-RTGW-Internal";

struct PeerResponse {
  int status = 0;  // 0: the owner could not be reached
  std::string content_type;
  std::string body;
  std::string error;  // when status is 0
};

class PeerClient {
 public:
  explicit PeerClient(std::string internal_secret);
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
  Ref<SoupSession> session_;
  std::list<std::unique_ptr<Relay>> relays_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rtgw::cluster
