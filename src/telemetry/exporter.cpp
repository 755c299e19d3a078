// SPDX-License-Identifier: MIT
#include "telemetry/exporter.h"

#include "metrics/catalogue.h"

namespace rtgw::telemetry {

Exporter::Exporter(Options options, metrics::Registry& metrics)
    : options_(std::move(options)), url_(options_.endpoint + "/v1/traces"), metrics_(metrics) {
  // Its own pool: a slow collector never holds a connection a worker's exchange needs. "timeout"
  // bounds socket I/O; the whole request has its own deadline (send_batch).
  session_ = Ref<SoupSession>::adopt(soup_session_new_with_options(
      "timeout", options_.timeout_seconds, "idle-timeout", 30u, "max-conns", 2, "user-agent",
      "realtime-gateway-otlp", nullptr));
  timer_ = run_every_ms(options_.interval_ms, [this] {
    if (!queue_.empty() && !in_flight_) send_batch();
    return true;
  });
  g_message("telemetry: spans go to %s (batches of up to %zu, every %u ms)", url_.c_str(),
            options_.max_batch, options_.interval_ms);
}

Exporter::~Exporter() {
  if (cancellable_) g_cancellable_cancel(cancellable_.get());
}

void Exporter::enqueue(Span span) {
  if (queue_.size() >= options_.max_queue) {
    metrics_.add(metrics::kTelemetryDroppedTotal, {"queue_full"});
    return;
  }
  queue_.push_back(std::move(span));
  if (queue_.size() >= options_.max_batch && !in_flight_) send_batch();
}

void Exporter::send_batch() {
  std::size_t n = std::min(queue_.size(), options_.max_batch);
  if (n == 0) return;
  std::vector<Span> batch;
  batch.reserve(n);
  for (std::size_t i = 0; i < n; i++) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  std::string body = otlp_json(batch, options_.service_name);
  auto msg = Ref<SoupMessage>::adopt(soup_message_new("POST", url_.c_str()));
  if (!msg) {  // the endpoint was checked at start-up; a URL libsoup still refuses drops spans
    on_batch_done(n, 0, "invalid URL " + url_);
    return;
  }
  SoupMessageHeaders* headers = soup_message_get_request_headers(msg.get());
  for (const auto& [name, value] : options_.headers)
    soup_message_headers_replace(headers, name.c_str(), value.c_str());
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(body.data(), body.size()));
  soup_message_set_request_body_from_bytes(msg.get(), "application/json", bytes.get());
  in_flight_ = true;
  cancellable_ = Ref<GCancellable>::adopt(g_cancellable_new());
  deadline_ = run_after_ms(options_.timeout_seconds * 1000,
                           [c = cancellable_] { g_cancellable_cancel(c.get()); });
  auto ready =
      async_ready([alive = lifetime_.watch(), this, msg, n](GObject* source, GAsyncResult* result) {
        UniqueError err;
        auto reply = Ref<GBytes>::adopt(
            soup_session_send_and_read_finish(SOUP_SESSION(source), result, ErrorOut(err)));
        if (!alive.alive()) return;
        guint status = reply ? soup_message_get_status(msg.get()) : 0;
        on_batch_done(n, status, err ? err->message : "");
      });
  soup_session_send_and_read_async(session_.get(), msg.get(), G_PRIORITY_DEFAULT,
                                   cancellable_.get(), ready.callback, ready.user_data);
}

void Exporter::on_batch_done(std::size_t spans, guint status, const std::string& error) {
  in_flight_ = false;
  deadline_.cancel();
  cancellable_.reset();
  if (status >= 200 && status < 300) {
    metrics_.add(metrics::kTelemetryExportedTotal, {}, static_cast<double>(spans));
    if (failing_) g_message("telemetry: the collector at %s takes spans again", url_.c_str());
    failing_ = false;
  } else {
    metrics_.add(metrics::kTelemetryDroppedTotal, {"export_failed"}, static_cast<double>(spans));
    if (!failing_)
      g_warning(
          "telemetry: %zu span(s) dropped: %s %s (further failures are only counted in "
          "rtgw_telemetry_dropped_total until it recovers)",
          spans, url_.c_str(),
          error.empty() ? ("answered " + std::to_string(status)).c_str() : error.c_str());
    failing_ = true;
  }
  // A full batch waiting goes at once; a partial one waits for the timer.
  if (queue_.size() >= options_.max_batch) send_batch();
}

}  // namespace rtgw::telemetry
