// SPDX-License-Identifier: MIT
// The signalling interface between a call's upstream leg and whatever answers it.
//
// Owns: nothing but the contract. Media code (calls/) hands an offer to a signaller and gets an
// answer or a failure back on the main loop; it never sees HTTP. The WebSocket relay (relay/)
// asks the same signaller for an `UpstreamSocket`. `workers::Worker` implements it
// over HTTP; the built-in echo worker implements it in process.
//
// Admission (load count, breaker probe slot, set-up outcome) is not called by users of a
// signaller: a `WorkerLease` (workers/worker_lease.h) is its only caller.
//
// Threads: main loop only.
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

  // A translation call: its session is of type "translation" (SPEC "Translation sessions"); it
  // goes to the provider's translation calls URL.
  bool translation() const;
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
  std::string upstream_model;  // the worker always speaks GA: no `OpenAI-Beta` ever goes to it
  bool transcription = false;  // a transcription session: `?intent=transcription`, no model
  bool translation = false;    // a translation session: the provider's translation socket URL
};

using SocketResult = std::variant<std::unique_ptr<UpstreamSocket>, UpstreamFailure>;

// How a call's set-up ended, as the worker's circuit breaker counts it.
enum class SetupOutcome {
  kSuccess,        // the worker answered: closes its breaker
  kWorkerFailure,  // is_worker_failure(): counts against it (re-opens a half-open breaker)
  kNeutral,        // the request's fault (client-side 4xx), or cancelled: no count changes
};

class WorkerLease;

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
  // Healthy and not cut off by its breaker: a lease could be taken now (max_calls aside). A pure
  // query: it claims nothing.
  virtual bool available() const { return true; }
  // Leases held now: calls and sessions from set-up to their end.
  int live_calls() const { return live_calls_; }

 protected:
  friend class WorkerLease;
  // The lease's side; WorkerLease is the only caller. The defaults count the load and admit
  // every call (the built-in echo worker); `Worker` adds max_calls and its breaker.
  //
  // Admits one more call: takes a load slot and, when the breaker is half-open, the probe slot
  // (`*probe` = true). False: nothing taken.
  virtual bool try_admit(bool* probe) {
    *probe = false;
    live_calls_++;
    return true;
  }
  // The set-up's outcome, once per admitted call (`probe`: it held the probe slot, which
  // goes back now whatever the outcome).
  virtual void settle(SetupOutcome /*outcome*/, bool /*probe*/) {}
  // Gives the load slot back (the call or session is over).
  virtual void release() { live_calls_--; }

 private:
  int live_calls_ = 0;
};

// The worker refused the gateway's own credentials (401/403): the gateway's misconfiguration,
// never the client's. It counts against the worker but is not tried on the next one (the
// client gets a 502 at once; the breaker takes the worker out). Its body is not shown to the
// client: it may quote the worker key.
inline bool is_auth_failure(const UpstreamFailure& f) {
  return f.kind == UpstreamFailure::Kind::kStatus && (f.status == 401 || f.status == 403);
}

// A set-up failure that should be tried on the next worker (and counts against this one). An auth
// failure counts against the worker too but is not tried elsewhere (see is_auth_failure).
inline bool is_worker_failure(const UpstreamFailure& f) {
  return f.kind != UpstreamFailure::Kind::kStatus || f.status >= 500 || f.status == 429;
}

}  // namespace rtgw::workers
