// SPDX-License-Identifier: MIT
// Cluster mode in the route layer: admission through the cluster's counts, requests for calls
// held by another instance (forwarded to it, or their sideband relayed), and refusing
// instance-to-instance requests without the internal secret (SPEC "Scale-out").
#include <algorithm>
#include <memory>

#include "http/client_watch.h"
#include "http/http_error.h"
#include "http/server.h"

namespace rtgw::http {
namespace {

// A request held open while Redis answers.
struct Held {
  Ref<SoupServerMessage> msg;  // empty once answered or once the client left
  std::unique_ptr<ClientWatch> watch;
};

void answer_error(SoupServerMessage* msg, bool upgrade, const HttpError& e) {
  if (upgrade)
    refuse_upgrade(msg, e);
  else
    respond_json(msg, e.status(), e.body());
  soup_server_message_unpause(msg);
}

}  // namespace

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

void Server::admit(SoupServerMessage* msg, const auth::Principal& principal, const std::string& id,
                   bool call, AdmittedFn then, bool upgrade) {
  if (!services_.cluster) {
    then(nullptr);
    return;
  }
  auto held = std::make_shared<Held>();
  held->msg = Ref<SoupServerMessage>::retain(msg);
  soup_server_message_pause(msg);
  std::weak_ptr<Held> weak = held;
  held->watch = std::make_unique<ClientWatch>(msg, connections_->socket_of(msg), [weak] {
    auto h = weak.lock();
    if (!h || !h->msg) return;
    Ref<SoupServerMessage> m = std::move(h->msg);
    respond_json(m.get(), 499,
                 HttpError(499, "invalid_request_error", "client_closed_request",
                           "the client went away before the answer")
                     .body());
    soup_server_message_unpause(m.get());
  });
  // A max_calls sized from this instance's open-file limit is this instance's own (checked
  // locally after the admission), not the cluster's: only a configured one counts cluster-wide.
  const auto& limits = services_.config.limits;
  const bool sized =
      std::find(limits.sized.begin(), limits.sized.end(), "max_calls") != limits.sized.end();
  cluster::AdmissionRequest request{id, principal.key_name, principal.max_concurrent_calls,
                                    sized ? 0 : limits.max_calls, call};
  int key_limit = principal.max_concurrent_calls;
  services_.cluster->admit(request, [held, then = std::move(then), upgrade, key_limit](
                                        cluster::Verdict verdict,
                                        std::unique_ptr<cluster::Lease> lease) {
    held->watch.reset();
    if (!held->msg) return;  // the client left: `lease` goes, and the slot with it
    Ref<SoupServerMessage> m = std::move(held->msg);
    try {
      switch (verdict) {
        case cluster::Verdict::kKeyFull:
          throw errors::too_many(
              "too_many_calls",
              "this key already has " + std::to_string(key_limit) + " live calls and sessions");
        case cluster::Verdict::kGlobalFull:
          throw errors::unavailable("no_capacity", "the gateway is at its call capacity");
        case cluster::Verdict::kAdmitted:
        case cluster::Verdict::kLocal:
          break;
      }
      then(std::move(lease));
      if (upgrade) soup_server_message_unpause(m.get());  // libsoup completes the handshake
    } catch (const HttpError& e) {
      answer_error(m.get(), upgrade, e);
    } catch (const std::exception& e) {
      g_warning("internal error after admission: %s", e.what());
      answer_error(m.get(), upgrade, HttpError(500, "server_error", "internal_error", e.what()));
    }
  });
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
