// SPDX-License-Identifier: MIT
// The OTLP/HTTP JSON exporter: finished spans to `POST {endpoint}/v1/traces`, batched.
//
// Owns: its own SoupSession (never a worker's), a bounded queue of finished spans, the batch
// timer and the one request in flight. Spans are queued (a full queue drops the newest: counted
// in rtgw_telemetry_dropped_total{reason="queue_full"}); a batch of up to `max_batch` spans goes
// out when that many wait or every `interval_ms`, never two at once. A batch the collector does
// not take with a 2xx within `timeout_seconds` (down, slow, refusing) is dropped and counted
// ({reason="export_failed"}); nothing is retried, so a down collector costs spans, never memory,
// and never a call's time: sending is asynchronous and the main loop only serialises a batch.
//
// Threads: main loop only (enqueue, the timer, libsoup's completion).
#pragma once

#include <libsoup/soup.h>

#include <cstddef>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "common/main_thread.h"
#include "common/ref.h"
#include "metrics/metrics.h"
#include "telemetry/span.h"

namespace rtgw::telemetry {

class Exporter {
 public:
  struct Options {
    std::string endpoint;  // base URL, no trailing '/'
    std::string service_name = "realtime-gateway";
    std::vector<std::pair<std::string, std::string>> headers;
    std::size_t max_queue = 2048;
    std::size_t max_batch = 512;
    guint interval_ms = 1000;
    guint timeout_seconds = 5;
  };

  Exporter(Options options, metrics::Registry& metrics);
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Queues a finished span (or drops it, counted, when the queue is full).
  void enqueue(Span span);
  // Sends what is queued now, without waiting for the timer (unless a request is in flight):
  // the gateway's finish, before its last short wait.
  void flush() {
    if (!queue_.empty() && !in_flight_) send_batch();
  }
  std::size_t queued() const { return queue_.size(); }
  bool in_flight() const { return in_flight_; }

 private:
  void send_batch();
  void on_batch_done(std::size_t spans, guint status, const std::string& error);

  Options options_;
  std::string url_;
  metrics::Registry& metrics_;
  Ref<SoupSession> session_;
  std::deque<Span> queue_;
  bool in_flight_ = false;
  bool failing_ = false;           // logged once per outage
  Ref<GCancellable> cancellable_;  // the request in flight
  SourceGuard deadline_;           // cancels it after timeout_seconds
  SourceGuard timer_;
  Lifetime lifetime_;  // last: completions after destruction are dropped
};

}  // namespace rtgw::telemetry
