// SPDX-License-Identifier: MIT
// A call's set-up: from the client's offer to the answer it gets back.
//
// Owns: the set-up phase of one call: the client leg's offer/answer, the upstream leg's offer, the
// exchange with the worker (its `UpstreamSignaller`, behind the call's `WorkerLease`), failover
// to the model's next worker after a worker failure, the lease's settlement for the set-up
// (success; a worker failure; neutral for a client-side 4xx, a cancel or an end during set-up),
// the worker's answer applied to the upstream leg (payload types mapped), and hanging the
// upstream call up when set-up fails after the worker answered. The legs run concurrently: the
// upstream leg's offer is made and gathered while webrtcbin takes the client's offer and gathers
// the client's answer; it goes to a worker once both are ready (a refused offer never reaches a
// worker).
//
// It reports its outcome once, through one callback: `CallAnswer` (the client's answer, the
// upstream call's id and answer time; from the step that completed it), or a `SetupFailure`,
// always later from the main loop, never inside the call that caused it (so the owner may drop
// everything from the callback, and the HTTP layer needs no re-entrancy guard).
//
// The webrtcbin steps are behind `SetupMedia`: `WebRtcSetupMedia` drives the call's two
// `WebRtcLeg`s; unit tests give a fake.
//
// Threads: main loop only. Media steps and the worker's answer arrive on the main loop; one that
// arrives after the set-up finished, or after it was destroyed, is dropped.
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/main_thread.h"
#include "common/ref.h"
#include "config/config.h"
#include "sdp/session_description.h"
#include "webrtc/webrtc_leg.h"
#include "workers/upstream_signaller.h"
#include "workers/worker_lease.h"

namespace rtgw::calls {

// A call's legs are the webrtc module's (echo worker legs are too).
using webrtc::WebRtcLeg;

struct SetupFailure {
  enum class Kind {
    kUpstreamStatus,
    kUpstreamTimeout,
    kUpstreamUnreachable,
    kNoCapacity,    // e.g. the UDP port range is exhausted
    kInvalidOffer,  // webrtcbin refused the client's offer (the client's 400 invalid_sdp)
    kCancelled,     // the client went away before its answer
    kInternal
  };
  Kind kind = Kind::kInternal;
  int status = 0;    // upstream HTTP status (kUpstreamStatus)
  std::string body;  // upstream body (kUpstreamStatus)
  std::string message;
};

// What a finished set-up hands the call.
// When each set-up step finished (g_get_monotonic_time(), 0: not reached): where the set-up's
// time goes, for the log and describe().
struct SetupSteps {
  gint64 started_us = 0;
  gint64 client_offer_accepted_us = 0;  // webrtcbin took the client's offer
  gint64 upstream_offer_us = 0;         // the upstream offer was gathered and went to the worker
  gint64 worker_answered_us = 0;        // the worker's answer arrived
  gint64 upstream_ready_us = 0;         // the worker's answer was applied to the upstream leg
  gint64 client_answer_us = 0;          // the client's answer was gathered
};

struct CallAnswer {
  std::string answer_sdp;        // for the client
  std::string upstream_call_id;  // the worker's call (hung up when the call ends), may be empty
  double upstream_answer_ms = -1;
  SetupSteps steps;
};

using SetupResult = std::variant<CallAnswer, SetupFailure>;

// The webrtcbin steps of a set-up. Every `done` runs once, on the main loop (a step may also fail
// at once, inside the call).
class SetupMedia {
 public:
  using Step = std::function<void(std::optional<SetupFailure> failure)>;
  using Described = std::function<void(std::optional<SetupFailure> failure, std::string sdp)>;
  virtual ~SetupMedia() = default;
  // The client's offer on the client leg, and the audio back to the client linked.
  virtual void accept_client_offer(sdp::CheckedOffer offer, Step done) = 0;
  // The client's answer with its gathered candidates, as the client may see them.
  virtual void create_client_answer(Described done) = 0;
  // The upstream leg's offer (audio, the events channel) with its candidates.
  virtual void create_upstream_offer(Described done) = 0;
  // The worker's answer on the upstream leg, whose Opus payload type is `opus_pt`.
  virtual void accept_upstream_answer(sdp::SdpMessagePtr answer, int opus_pt, Step done) = 0;
};

// SetupMedia over a call's pipeline: its two legs and the pay elements feeding them.
class WebRtcSetupMedia : public SetupMedia {
 public:
  struct Parts {
    WebRtcLeg* client_leg = nullptr;
    WebRtcLeg* upstream_leg = nullptr;
    Ref<GstElement> client_audio_out;    // pays the audio going to the client
    Ref<GstElement> upstream_audio_out;  // pays the audio going to the upstream
    // The upstream leg's events data channel, created before its offer: the call wires it.
    std::function<void(Ref<GstWebRTCDataChannel>)> on_upstream_channel;
  };
  // Sets the pay elements' payload type (the client's Opus PT, `client_opus_pt`) and SSRCs:
  // call it before the pipeline plays.
  WebRtcSetupMedia(Parts parts, const config::WebRtcConfig& webrtc, int client_opus_pt);

  void accept_client_offer(sdp::CheckedOffer offer, Step done) override;
  void create_client_answer(Described done) override;
  void create_upstream_offer(Described done) override;
  void accept_upstream_answer(sdp::SdpMessagePtr answer, int opus_pt, Step done) override;

 private:
  // A leg that could not produce its description: with a port range set and no candidate, the
  // range is exhausted (503), else an internal error.
  SetupFailure local_description_failure(const char* leg, const std::string& error) const;

  Parts parts_;
  config::WebRtcConfig webrtc_;
  int client_opus_pt_;
  guint client_ssrc_;    // what the gateway sends to the client (declared in the answer)
  guint upstream_ssrc_;  // what it sends to the upstream (declared in the offer)
  Lifetime lifetime_;
};

class CallSetup {
 public:
  using Done = std::function<void(SetupResult result)>;

  // `lease`: the call's lease, which the set-up settles and moves on failover (the call holds it
  // until it ends). `log_id`: the call's id, for the log.
  CallSetup(std::string log_id, std::unique_ptr<SetupMedia> media, workers::WorkerLease& lease,
            workers::FailoverFn failover, std::string upstream_model, Done done);
  ~CallSetup();
  CallSetup(const CallSetup&) = delete;
  CallSetup& operator=(const CallSetup&) = delete;

  // Starts both legs. `session_json` goes to the worker with the offer.
  void start(sdp::CheckedOffer offer, std::optional<std::string> session_json);
  // Ends an unfinished set-up with `failure` (a cancel, the call ending): the worker's exchange is
  // cancelled, the lease settled neutral if it was not yet (a held probe slot goes back), the
  // upstream call hung up if the worker already answered; `failure` is reported later. No-op
  // once finished.
  void fail(SetupFailure failure);
  bool finished() const { return finished_; }
  // The workers given up on so far (failover), oldest first.
  const std::vector<std::string>& tried_workers() const { return tried_workers_; }

 private:
  void start_upstream();
  // Sends the upstream offer once it is gathered and the client's offer was accepted.
  void maybe_send_offer();
  void send_offer_upstream();
  void on_upstream_result(workers::UpstreamResult result);
  void maybe_finish();

  std::string log_id_;
  std::unique_ptr<SetupMedia> media_;
  workers::WorkerLease& lease_;
  workers::FailoverFn failover_;
  std::string upstream_model_;
  Done done_;

  std::optional<std::string> session_json_;  // until the upstream offer is made
  workers::OfferRequest offer_request_;      // kept for failover to the next worker
  std::vector<std::string> tried_workers_;
  Ref<GCancellable> cancellable_;
  std::string client_answer_;
  bool client_offer_accepted_ = false;
  bool upstream_offer_ready_ = false;
  bool offer_sent_ = false;
  bool upstream_ready_ = false;
  CallAnswer answer_;
  bool finished_ = false;
  Lifetime lifetime_;  // last: checked by every step, expires first
};

}  // namespace rtgw::calls
