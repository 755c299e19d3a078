// SPDX-License-Identifier: MIT
// One upstream worker reached over HTTP.
//
// Owns: the worker's own SoupSession (connection pool, timeouts), the SDP exchange with its
// `POST /v1/realtime/calls` (application/sdp, or multipart with the session), the upstream
// hang-up, and the worker's live-call count. A slow worker only slows its own session.
#pragma once

#include <libsoup/soup.h>

#include <string>

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
  const std::string& name() const override { return config_.name; }

  const config::WorkerConfig& config() const { return config_; }
  int live_calls() const { return live_calls_; }
  void call_started() override { live_calls_++; }
  void call_ended() override { live_calls_--; }

 private:
  std::string calls_url(const std::string& model) const;

  config::WorkerConfig config_;
  Ref<SoupSession> session_;
  int live_calls_ = 0;
};

}  // namespace rtgw::workers
