// SPDX-License-Identifier: MIT
// The route layer's side of admission (admission/admission.h): the ask of a request, holding a
// request while the answer waits (the cluster's counts), and a refusal's HTTP error. No rule
// lives here.
//
// Threads: main loop only.
#include <memory>
#include <optional>
#include <utility>

#include "http/client_watch.h"
#include "http/http_error.h"
#include "http/server.h"

namespace rtgw::http {
namespace {

// A request waiting for its admission.
struct Held {
  Ref<SoupServerMessage> msg;  // empty once answered or once the client left
  std::unique_ptr<ClientWatch> watch;
  admission::Pending pending;  // dropped (cancelled) when the client leaves
  // While admit() runs: an answer found at once is kept here and handled by the caller.
  bool in_admit = true;
  std::optional<admission::Answer> immediate;
};

void answer_error(SoupServerMessage* msg, bool upgrade, const HttpError& e) {
  if (upgrade)
    refuse_upgrade(msg, e);
  else
    respond_json(msg, e.status(), e.body());
  soup_server_message_unpause(msg);
}

}  // namespace

HttpError refusal_error(const admission::Refusal& refusal) {
  using admission::Reason;
  switch (refusal.reason) {
    case Reason::kShuttingDown:
      return errors::unavailable("shutting_down", refusal.detail);
    case Reason::kOverBudget:
      return errors::insufficient_quota(refusal.detail);
    case Reason::kKeyFull:
    case Reason::kKeySetupsFull:
      return errors::too_many("too_many_calls", refusal.detail);
    case Reason::kGlobalFull:
    case Reason::kSetupsFull:
    case Reason::kNoWorker:
      return errors::unavailable("no_capacity", refusal.detail);
  }
  return HttpError(500, "server_error", "internal_error", refusal.detail);
}

void Server::refuse_if(std::optional<admission::Refusal> refusal) {
  if (refusal) throw refusal_error(*refusal);
}

admission::Ask Server::ask_for(admission::Kind kind, const std::string& id,
                               const auth::Principal& principal, const std::string& model) {
  return admission::Ask{kind, id, principal.key_name, principal.max_concurrent_calls, model};
}

void Server::admit(SoupServerMessage* msg, admission::Ask ask, AdmittedFn then, bool upgrade) {
  auto held = std::make_shared<Held>();
  held->msg = Ref<SoupServerMessage>::retain(msg);
  // The answer's closure keeps `held` while the store answers; the Pending in it only watches
  // (dropping it drops the closure: no cycle). The client watch holds it weakly.
  held->pending = admission_->admit(std::move(ask), [h = held, then,
                                                     upgrade](admission::Answer answer) mutable {
    if (h->in_admit) {
      h->immediate = std::move(answer);
      return;
    }
    h->watch.reset();
    if (!h->msg) return;
    Ref<SoupServerMessage> m = std::move(h->msg);
    try {
      if (auto* refusal = std::get_if<admission::Refusal>(&answer)) throw refusal_error(*refusal);
      then(std::move(std::get<admission::Ticket>(answer)));
      if (upgrade) soup_server_message_unpause(m.get());  // libsoup completes the handshake
    } catch (const HttpError& e) {
      answer_error(m.get(), upgrade, e);
    } catch (const std::exception& e) {
      g_warning("internal error after admission: %s", e.what());
      answer_error(m.get(), upgrade, HttpError(500, "server_error", "internal_error", e.what()));
    }
  });
  held->in_admit = false;
  if (held->immediate) {
    // Answered at once (nothing shared to wait for): as any handler, errors are thrown to the
    // route layer's boundary.
    admission::Answer answer = std::move(*held->immediate);
    held->msg.reset();
    if (auto* refusal = std::get_if<admission::Refusal>(&answer)) throw refusal_error(*refusal);
    then(std::move(std::get<admission::Ticket>(answer)));
    return;
  }
  // The answer waits for the store: the request is held, and watched.
  soup_server_message_pause(msg);
  std::weak_ptr<Held> weak = held;
  held->watch = std::make_unique<ClientWatch>(msg, connections_->socket_of(msg), [weak] {
    auto h = weak.lock();
    if (!h || !h->msg) return;
    Ref<SoupServerMessage> m = std::move(h->msg);
    // No worker is picked; the slot the store gives is given back. (The watch may go with
    // `held` now: ClientWatch allows that from its callback.)
    h->pending.cancel();
    respond_json(m.get(), 499,
                 HttpError(499, "invalid_request_error", "client_closed_request",
                           "the client went away before the answer")
                     .body());
    soup_server_message_unpause(m.get());
  });
}

}  // namespace rtgw::http
