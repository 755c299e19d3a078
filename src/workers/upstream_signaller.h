// SPDX-License-Identifier: MIT
// The signalling interface between a call's upstream leg and whatever answers it.
//
// Owns: nothing but the contract. Media code (calls/) hands an offer to a signaller and gets an
// answer or a failure back on the main loop; it never sees HTTP. The WebSocket relay (relay/)
// asks the same signaller for an `UpstreamSocket`. `workers::Worker` implements it
// over HTTP; the built-in echo worker implements it in process.
#pragma once

#include <gio/gio.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace rtgw::workers {

struct UpstreamAnswer {
  std::string sdp;
  std::string upstream_call_id;  // from the answer's Location, if any
  double answer_ms = 0;          // the upstream's own answer time
};

struct UpstreamFailure {
  enum class Kind { kConnect, kTimeout, kStatus, kProtocol };
  Kind kind = Kind::kConnect;
  int status = 0;    // HTTP status for kStatus
  std::string body;  // the upstream's body for kStatus (JSON passed through)
  std::string message;
};

using UpstreamResult = std::variant<UpstreamAnswer, UpstreamFailure>;

struct OfferRequest {
  std::string offer_sdp;
  std::string upstream_model;
  std::optional<std::string> session_json;  // sent as multipart `session` when present
};

// A realtime session with a worker over WebSocket (`GET /v1/realtime`).
class UpstreamSocket {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnUpstreamText(std::string text) = 0;
    // The worker closed (or the connection broke: code 1006). Called once.
    virtual void OnUpstreamClosed(int code, const std::string& reason) = 0;
  };
  virtual ~UpstreamSocket() = default;
  virtual bool send_text(const std::string& text) = 0;
  virtual void close(int code, const std::string& reason) = 0;
  // Bound on what may wait towards a worker that does not read (no-op without a socket). Past
  // it the socket closes and the listener hears OnUpstreamClosed(1013, ...).
  virtual void limit_outgoing(std::uint64_t /*bytes*/) {}
};

struct SocketRequest {
  std::string upstream_model;
  bool beta_protocol = false;  // the client speaks the beta dialect: send `OpenAI-Beta`
};

using SocketResult = std::variant<std::unique_ptr<UpstreamSocket>, UpstreamFailure>;

class UpstreamSignaller {
 public:
  virtual ~UpstreamSignaller() = default;
  // Exchanges the offer for an answer; `done` runs once on the main loop unless `cancellable`
  // was cancelled first.
  virtual void exchange(const OfferRequest& request, GCancellable* cancellable,
                        std::function<void(UpstreamResult)> done) = 0;
  // Ends the upstream side of a call (best effort, bounded, fire and forget).
  virtual void hangup(const std::string& upstream_call_id) = 0;
  // Opens a WebSocket session; `done` runs once on the main loop unless `cancellable` was
  // cancelled first. The socket reports to `listener` from then on.
  virtual void open_socket(const SocketRequest& request, UpstreamSocket::Listener* listener,
                           GCancellable* cancellable, std::function<void(SocketResult)> done) = 0;
  virtual const std::string& name() const = 0;
  // Load accounting: a call holds its worker from set-up to its end.
  virtual void call_started() {}
  virtual void call_ended() {}
  // Set-up outcome as the circuit breaker counts it (worker failures only, never client errors).
  virtual void report_setup(bool ok) {}
  // Healthy and not cut off by its breaker: may take a new call now.
  virtual bool available() const { return true; }
};

// A set-up failure that should be tried on the next worker (and counts against this one).
inline bool is_worker_failure(const UpstreamFailure& f) {
  return f.kind != UpstreamFailure::Kind::kStatus || f.status >= 500 || f.status == 429;
}

// The next worker of the model that has not been tried (nullptr: none left).
using FailoverFn =
    std::function<std::shared_ptr<UpstreamSignaller>(const std::vector<std::string>& tried)>;

// After `failure` of `current` during set-up (a call's offer or a session's socket): when it is
// the worker's own failure it counts against the worker, and the next worker is returned with
// the load moved to it; nullptr when the failure stands (the request's fault, or none left).
std::shared_ptr<UpstreamSignaller> fail_over(const UpstreamFailure& failure,
                                             UpstreamSignaller& current,
                                             std::vector<std::string>& tried,
                                             const FailoverFn& next_worker,
                                             const std::string& log_id);

}  // namespace rtgw::workers
