// SPDX-License-Identifier: MIT
// One upstream worker reached over HTTP.
//
// Owns: the worker's own SoupSession (connection pool, timeouts, TLS, proxy), the SDP exchange
// with its `POST /v1/realtime/calls` (application/sdp, or multipart with the session), the
// upstream hang-up, its realtime WebSocket (`GET /v1/realtime`), the translation routes'
// counterparts (`POST /v1/realtime/translations/calls`, `GET /v1/realtime/translations`), its
// health checks and its circuit breaker, and the admission rules a `WorkerLease` applies
// (max_calls, one half-open probe). A slow worker only slows its own session.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <string>

#include "common/main_thread.h"
#include "common/ref.h"
#include "config/config.h"
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

 protected:
  bool try_admit(bool* probe) override;
  void settle(SetupOutcome outcome, bool probe) override;

 private:
  std::string calls_url(const std::string& model) const;
  std::string realtime_url(const std::string& model, bool transcription) const;
  std::string call_url(const std::string& upstream_call_id, const char* suffix) const;
  // Translation sessions (SPEC "Translation sessions"): the WebRTC calls URL takes no model (the
  // multipart session names it); the WebSocket URL takes ?model=.
  std::string translation_calls_url() const;
  std::string translation_socket_url(const std::string& model) const;
  // Worker key (Bearer, or `api-key` for azure) and TLS client settings on one request.
  void prepare(SoupMessage* msg) const;
  void check_health();
  void schedule_health_check(int seconds);

  config::WorkerConfig config_;
  Ref<SoupSession> session_;
  Ref<GTlsCertificate> client_certificate_;
  // Health and breaker (main loop only).
  bool healthy_ = true;
  int health_backoff_seconds_ = 0;
  SourceGuard health_timer_;
  int consecutive_failures_ = 0;
  gint64 open_until_us_ = 0;  // breaker open until then
  bool probing_ = false;      // half-open: one lease holds the probe slot
  Lifetime lifetime_;
};

}  // namespace rtgw::workers
