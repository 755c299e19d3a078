// SPDX-License-Identifier: MIT
// One upstream worker reached over HTTP.
//
// Owns: the worker's own SoupSession (connection pool, timeouts, TLS, proxy), the SDP exchange
// (`POST` of the offer, application/sdp or multipart with the session), the upstream hang-up,
// its realtime WebSocket, the translation routes' counterparts, its health checks and its circuit
// breaker, and the admission rules a `WorkerLease` applies (max_calls, one half-open probe). A slow
// worker only slows its own session. What is sent where, with which key, and how the answer reads,
// is its provider's dialect (workers/providers/); this class only does the I/O.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <string>

#include "common/main_thread.h"
#include "common/ref.h"
#include "config/config.h"
#include "workers/providers/provider.h"
#include "workers/upstream_signaller.h"

namespace rtgw::workers {

class Worker : public UpstreamSignaller {
 public:
  explicit Worker(const config::WorkerConfig& config);

  void exchange(const OfferRequest& request, GCancellable* cancellable,
                std::function<void(UpstreamResult)> done) override;
  void hangup(const std::string& upstream_call_id) override;
  void open_socket(const SocketRequest& request, UpstreamSocket::Listener* listener,
                   GCancellable* cancellable, std::function<void(SocketResult)> done) override;
  const std::string& name() const override { return config_.name; }

  const config::WorkerConfig& config() const { return config_; }
  // Its dialect (URLs, auth, offer and answer encoding), e.g. for the translation URLs.
  const providers::Provider& provider() const { return provider_; }
  bool available() const override;
  // Under max_calls: one more lease fits.
  bool has_capacity() const;

  // Health as the last check saw it (optimistic until the first check answers).
  bool healthy() const { return healthy_; }
  // Open: failed breaker_failures set-ups in a row and either still within breaker_open_seconds
  // or its probe call is in flight.
  bool breaker_open() const;
  // A lease holds the half-open probe slot.
  bool probing() const { return probing_; }
  int consecutive_failures() const { return consecutive_failures_; }
  // Starts periodic GET <health_path> checks on the main loop.
  void start_health_checks();
  // Removed from the pool by a reload: no more health checks (one in flight is not rescheduled).
  void retire();
  bool retired() const { return retired_; }
  // The first health check has answered (or none is configured): readiness waits for it.
  bool health_answered() const { return health_answered_; }

 protected:
  bool try_admit(bool* probe) override;
  void settle(SetupOutcome outcome, bool probe) override;

 private:
  // The dialect's auth headers and the TLS client settings on one request.
  void prepare(SoupMessage* msg) const;
  void check_health();
  void schedule_health_check(int seconds);

  config::WorkerConfig config_;
  const providers::Provider& provider_;
  Ref<SoupSession> session_;
  Ref<GTlsCertificate> client_certificate_;
  // Health and breaker (main loop only).
  bool healthy_ = true;
  bool health_answered_ = false;
  int health_backoff_seconds_ = 0;
  SourceGuard health_timer_;
  int consecutive_failures_ = 0;
  gint64 open_until_us_ = 0;  // breaker open until then
  bool probing_ = false;      // half-open: one lease holds the probe slot
  bool retired_ = false;      // removed by a reload (retire())
  Lifetime lifetime_;
};

}  // namespace rtgw::workers
