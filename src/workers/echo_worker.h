// SPDX-License-Identifier: MIT
// The built-in `echo` worker: an in-process upstream reached through the same WebRTC path as a
// remote worker.
//
// Owns: one `EchoSession` per upstream call — its own pipeline with a webrtcbin that answers the
// gateway's upstream-leg offer, loops the caller's Opus audio back, and speaks the echo protocol
// (workers/echo_protocol.h) on `oai-events`; and, for WebSocket sessions, an in-process socket
// speaking the same protocol. It is a demo and test upstream, not a model. Calls lease it like any
// worker (workers/worker_lease.h) with the signaller's default admission: counted, never refused,
// no breaker.
//
// Threads: main loop only; webrtcbin callbacks post to it.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/main_thread.h"
#include "config/config.h"
#include "workers/upstream_signaller.h"

namespace rtgw::workers {

class EchoSession;

class EchoWorker : public UpstreamSignaller {
 public:
  explicit EchoWorker(const config::WebRtcConfig& webrtc);
  ~EchoWorker() override;

  void exchange(const OfferRequest& request, GCancellable* cancellable,
                std::function<void(UpstreamResult)> done) override;
  void hangup(const std::string& upstream_call_id) override;
  // An in-process realtime session: the same protocol, no media.
  void open_socket(const SocketRequest& request, UpstreamSocket::Listener* listener,
                   GCancellable* cancellable, std::function<void(SocketResult)> done) override;
  const std::string& name() const override { return name_; }

 private:
  void end_later(const std::string& id);
  void end_session(const std::string& id);

  std::string name_ = "echo";
  config::WebRtcConfig webrtc_;
  std::map<std::string, std::unique_ptr<EchoSession>> sessions_;
  Lifetime lifetime_;
};

}  // namespace rtgw::workers
