// SPDX-License-Identifier: MIT
// Cluster mode in the route layer: requests for calls held by another instance (forwarded to it,
// or their sideband relayed), and refusing instance-to-instance requests without the internal
// secret (SPEC "Scale-out"). Admission through the cluster's counts is admission's
// (admission/cluster_store.h).
#include <memory>

#include "http/http_error.h"
#include "http/server.h"

namespace rtgw::http {

void refuse_upgrade(SoupServerMessage* msg, const HttpError& error) {
  // libsoup prepared a 101 when the handler returned: undo it.
  SoupMessageHeaders* h = soup_server_message_get_response_headers(msg);
  for (const char* name :
       {"Upgrade", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"})
    soup_message_headers_remove(h, name);
  soup_message_headers_replace(h, "Connection", "close");
  respond_json(msg, error.status(), error.body());
}

bool Server::internal_request(SoupServerMessage* msg) const {
  if (!services_.cluster) return false;
  const char* header = soup_message_headers_get_one(soup_server_message_get_request_headers(msg),
                                                    cluster::kInternalHeader);
  if (!header) return false;
  if (!services_.cluster->internal_secret_matches(header))
    throw errors::forbidden("invalid_internal_secret",
                            "this instance-to-instance request does not carry the cluster's "
                            "internal secret");
  return true;
}

void Server::forward_to_owner(SoupServerMessage* msg, const std::string& call_id,
                              const std::string& method, const std::string& path) {
  auto held = Ref<SoupServerMessage>::retain(msg);
  soup_server_message_pause(msg);
  const char* auth =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
  std::string authorization = auth ? auth : "";
  auto* peers = peers_.get();
  auto* metrics = &services_.metrics;
  services_.cluster->find_owner(call_id, [held, peers, metrics, call_id, method, path,
                                          authorization](std::optional<cluster::Owner> owner) {
    if (!owner || owner->self) {
      respond_json(
          held.get(), 404,
          errors::not_found("call_not_found", "no call " + call_id + " for this key").body());
      soup_server_message_unpause(held.get());
      return;
    }
    metrics->add(metrics::kClusterForwardedTotal, {"http"});
    peers->forward(method, owner->url + path, authorization,
                   [held, owner = *owner](const cluster::PeerResponse& r) {
                     if (r.status == 0) {
                       g_warning("cluster: instance %s (%s) unreachable: %s",
                                 owner.instance_id.c_str(), owner.url.c_str(), r.error.c_str());
                       respond_json(held.get(), 502,
                                    HttpError(502, "server_error", "cluster_peer_unreachable",
                                              "the instance holding this call (" +
                                                  owner.instance_id + ") cannot be reached")
                                        .body());
                     } else {
                       respond(held.get(), r.status, r.content_type.c_str(), r.body);
                     }
                     soup_server_message_unpause(held.get());
                   });
  });
}

}  // namespace rtgw::http
