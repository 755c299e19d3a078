// SPDX-License-Identifier: MIT
#include "workers/worker.h"

#include "common/json.h"
#include "common/main_thread.h"
#include "common/websocket.h"
#include "rtgw_version.h"
#include "workers/providers/registry.h"

#include <glib.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

namespace rtgw::workers {

bool OfferRequest::translation() const {
  if (!session_json) return false;
  auto node = json::parse(*session_json);
  return node && JSON_NODE_TYPE(node.get()) == JSON_NODE_OBJECT &&
         json::get_string(json_node_get_object(node.get()), "type").value_or("") == "translation";
}

namespace {

// What every request to the worker carries while in flight: its message, our own cancellable
// (cancelled by the caller's or by our timeout) and the timeout.
struct PendingRequest {
  Ref<SoupMessage> message;
  Ref<GCancellable> cancellable = Ref<GCancellable>::adopt(g_cancellable_new());
  SignalConnection caller_cancelled;
  gint64 started_us = g_get_monotonic_time();
  bool timed_out = false;
  SourceGuard timeout;

  // Follows the caller's cancellable; false when it is already cancelled.
  bool follow(GCancellable* caller) {
    if (!caller) return true;
    gulong id = g_signal_connect(caller, "cancelled", G_CALLBACK(+[](GCancellable*, gpointer ours) {
                                   g_cancellable_cancel(G_CANCELLABLE(ours));
                                 }),
                                 cancellable.get());
    caller_cancelled = SignalConnection(caller, id);
    return !g_cancellable_is_cancelled(caller);
  }
  // Our own bound on the whole request (connect + answer), separate from socket timeouts.
  void arm_timeout(int seconds) {
    timeout = run_after_ms(static_cast<guint>(seconds * 1000), [this] {
      timed_out = true;
      g_cancellable_cancel(cancellable.get());
    });
  }
};

struct Exchange : PendingRequest {
  std::function<void(UpstreamResult)> done;
  Liveness worker_alive;
  Worker* worker = nullptr;
  const providers::Provider* provider = nullptr;
};

struct SocketConnect : PendingRequest {
  std::function<void(SocketResult)> done;
  UpstreamSocket::Listener* listener = nullptr;
};

// The worker's realtime WebSocket.
class WorkerSocket : public UpstreamSocket, public WebSocket::Listener {
 public:
  // What a worker may send in one message (audio deltas are large; this only bounds memory).
  static constexpr std::uint64_t kMaxMessageBytes = 16 << 20;

  WorkerSocket(SoupWebsocketConnection* connection, UpstreamSocket::Listener* listener)
      : socket_(connection, kMaxMessageBytes, this), listener_(listener) {}

  bool send_text(const std::string& text) override { return socket_.send_text(text); }
  void close(int code, const std::string& reason) override { socket_.close(code, reason); }
  void limit_outgoing(std::uint64_t bytes) override { socket_.limit_outgoing(bytes); }

  void OnSocketText(WebSocket&, std::string text) override {
    listener_->OnUpstreamText(std::move(text));
  }
  void OnSocketBinary(WebSocket&, std::size_t bytes) override {
    g_message(
        "worker sent a binary WebSocket message (%zu bytes): the realtime protocol has none, "
        "not relayed",
        bytes);
  }
  void OnSocketClosed(WebSocket&, int code, const std::string& reason) override {
    if (closed_reported_) return;
    closed_reported_ = true;
    listener_->OnUpstreamClosed(code, reason);
  }
  void OnSocketOverflow(WebSocket&, std::uint64_t backlog, std::uint64_t limit) override {
    // The worker does not read what the client sends: the session ends as if the worker had
    // closed with 1013 (try again later). Posted: this runs inside the listener's own send.
    std::string reason = "worker not reading: " + std::to_string(backlog) +
                         " bytes waiting (limit " + std::to_string(limit) + ")";
    post_if_alive(lifetime_.watch(), [this, reason] {
      if (closed_reported_) return;
      closed_reported_ = true;
      listener_->OnUpstreamClosed(close_code::kTryAgainLater, reason);
    });
  }

 private:
  WebSocket socket_;
  UpstreamSocket::Listener* listener_;
  bool closed_reported_ = false;
  Lifetime lifetime_;
};

}  // namespace

Worker::Worker(const config::WorkerConfig& config)
    : config_(config), provider_(providers::get(config.provider)) {
  // Each worker gets its own pool; `timeout` bounds socket I/O, the exchange has its own bound.
  session_ = Ref<SoupSession>::adopt(soup_session_new_with_options(
      "max-conns", config_.max_connections, "max-conns-per-host", config_.max_connections,
      "timeout", static_cast<guint>(config_.timeout_seconds + 1), "idle-timeout", 60, "user-agent",
      "realtime-gateway/" RTGW_VERSION, nullptr));
  UniqueError err;
  if (!config_.tls_ca_file.empty()) {
    auto db = Ref<GTlsDatabase>::adopt(
        g_tls_file_database_new(config_.tls_ca_file.c_str(), ErrorOut(err)));
    if (!db)
      throw std::runtime_error("worker " + config_.name +
                               ": tls_ca_file: " + (err ? err->message : "unreadable"));
    soup_session_set_tls_database(session_.get(), db.get());
  }
  if (!config_.tls_client_cert_file.empty()) {
    const std::string& key = config_.tls_client_key_file.empty() ? config_.tls_client_cert_file
                                                                 : config_.tls_client_key_file;
    client_certificate_ = Ref<GTlsCertificate>::adopt(g_tls_certificate_new_from_files(
        config_.tls_client_cert_file.c_str(), key.c_str(), ErrorOut(err)));
    if (!client_certificate_)
      throw std::runtime_error("worker " + config_.name +
                               ": tls_client_cert_file: " + (err ? err->message : "unreadable"));
  }
  if (!config_.proxy.empty()) {
    const char* proxy = config_.proxy == "none" ? "direct://" : config_.proxy.c_str();
    auto resolver = Ref<GProxyResolver>::adopt(g_simple_proxy_resolver_new(proxy, nullptr));
    soup_session_set_proxy_resolver(session_.get(), resolver.get());
  }
}

void Worker::prepare(SoupMessage* msg) const {
  SoupMessageHeaders* headers = soup_message_get_request_headers(msg);
  for (const auto& header : provider_.auth_headers(config_))
    soup_message_headers_replace(headers, header.name.c_str(), header.value.c_str());
  if (client_certificate_) soup_message_set_tls_client_certificate(msg, client_certificate_.get());
  if (!config_.tls_verify)
    g_signal_connect(msg, "accept-certificate",
                     G_CALLBACK(+[](SoupMessage*, GTlsCertificate*, GTlsCertificateFlags,
                                    gpointer) -> gboolean { return TRUE; }),  // as configured
                     nullptr);
}

void Worker::exchange(const OfferRequest& request, GCancellable* cancellable,
                      std::function<void(UpstreamResult)> done) {
  auto ex = std::make_unique<Exchange>();
  ex->done = std::move(done);
  ex->worker_alive = lifetime_.watch();
  ex->worker = this;
  ex->provider = &provider_;
  if (!ex->follow(cancellable)) return;

  std::string url = request.translation() ? provider_.translation_calls_url(config_)
                                          : provider_.calls_url(config_, request.upstream_model);
  ex->message = Ref<SoupMessage>::adopt(soup_message_new("POST", url.c_str()));
  if (!ex->message) {
    UpstreamFailure f{UpstreamFailure::Kind::kConnect, 0, {}, "invalid worker URL " + url};
    ex->done(std::move(f));
    return;
  }
  // libsoup never reuses an idle pooled connection for a POST unless told it may: without this
  // every call would pay a new TCP (and TLS) handshake and leave one more idle socket behind.
  soup_message_add_flags(ex->message.get(), SOUP_MESSAGE_IDEMPOTENT);
  prepare(ex->message.get());
  SoupMessageHeaders* headers = soup_message_get_request_headers(ex->message.get());
  soup_message_headers_replace(headers, "Accept", "application/sdp, application/json");

  providers::RequestBody offer = provider_.encode_offer(request);
  soup_message_headers_replace(headers, "Content-Type", offer.content_type.c_str());
  auto body = Ref<GBytes>::adopt(g_bytes_new(offer.bytes.data(), offer.bytes.size()));
  soup_message_set_request_body_from_bytes(ex->message.get(), nullptr, body.get());

  Exchange* raw = ex.get();
  raw->arm_timeout(config_.timeout_seconds);

  // The exchange lives in the completion closure until the request completes.
  auto ready = async_ready([ex = std::shared_ptr<Exchange>(std::move(ex))](GObject* source,
                                                                           GAsyncResult* result) {
    ex->timeout.cancel();
    UniqueError err;
    auto bytes = Ref<GBytes>::adopt(
        soup_session_send_and_read_finish(SOUP_SESSION(source), result, ErrorOut(err)));
    double elapsed_ms = (g_get_monotonic_time() - ex->started_us) / 1000.0;
    if (!bytes) {
      if (ex->timed_out) {
        ex->done(UpstreamFailure{
            UpstreamFailure::Kind::kTimeout, 0, {}, "the worker did not answer in time"});
      } else if (g_error_matches(err.get(), G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        // The call went away; nobody to tell. If the worker had answered already, its call
        // would stay up with nobody on it: hang it up.
        guint status = soup_message_get_status(ex->message.get());
        std::string answered = ex->provider->call_id_from_location(soup_message_headers_get_one(
            soup_message_get_response_headers(ex->message.get()), "Location"));
        if (status >= 200 && status < 300 && !answered.empty() && ex->worker_alive.alive())
          ex->worker->hangup(answered);
        return;
      } else {
        ex->done(UpstreamFailure{
            UpstreamFailure::Kind::kConnect,
            0,
            {},
            std::string("cannot reach the worker: ") + (err ? err->message : "unknown error")});
      }
      return;
    }
    guint status = soup_message_get_status(ex->message.get());
    gsize len = 0;
    const char* data_ptr = static_cast<const char*>(g_bytes_get_data(bytes.get(), &len));
    std::string body(data_ptr ? data_ptr : "", len);
    SoupMessageHeaders* rh = soup_message_get_response_headers(ex->message.get());
    // The dialect decodes; the worker's own lifetime does not matter here (the dialect is a
    // static singleton, captured before the request left).
    UpstreamResult decoded = ex->provider->decode_answer(
        static_cast<int>(status), std::move(body), soup_message_headers_get_one(rh, "Location"));
    if (auto* answer = std::get_if<UpstreamAnswer>(&decoded)) answer->answer_ms = elapsed_ms;
    ex->done(std::move(decoded));
  });
  soup_session_send_and_read_async(session_.get(), raw->message.get(), G_PRIORITY_DEFAULT,
                                   raw->cancellable.get(), ready.callback, ready.user_data);
}

void Worker::open_socket(const SocketRequest& request, UpstreamSocket::Listener* listener,
                         GCancellable* cancellable, std::function<void(SocketResult)> done) {
  auto op = std::make_unique<SocketConnect>();
  op->done = std::move(done);
  op->listener = listener;
  if (!op->follow(cancellable)) return;
  std::string url =
      request.translation
          ? provider_.translation_socket_url(config_, request.upstream_model)
          : provider_.realtime_url(config_, request.upstream_model, request.transcription);
  op->message = Ref<SoupMessage>::adopt(soup_message_new("GET", url.c_str()));
  if (!op->message) {
    op->done(UpstreamFailure{UpstreamFailure::Kind::kConnect, 0, {}, "invalid worker URL " + url});
    return;
  }
  prepare(op->message.get());
  SocketConnect* raw = op.get();
  raw->arm_timeout(config_.timeout_seconds);
  auto ready = async_ready(
      [op = std::shared_ptr<SocketConnect>(std::move(op))](GObject* source, GAsyncResult* result) {
        op->timeout.cancel();
        UniqueError err;
        auto connection = Ref<SoupWebsocketConnection>::adopt(
            soup_session_websocket_connect_finish(SOUP_SESSION(source), result, ErrorOut(err)));
        if (connection) {
          op->done(std::make_unique<WorkerSocket>(connection.get(), op->listener));
          return;
        }
        if (op->timed_out) {
          op->done(UpstreamFailure{UpstreamFailure::Kind::kTimeout,
                                   0,
                                   {},
                                   "the worker did not accept the WebSocket in time"});
          return;
        }
        if (g_error_matches(err.get(), G_IO_ERROR, G_IO_ERROR_CANCELLED)) return;
        guint status = soup_message_get_status(op->message.get());
        if (status >= 200 && status != SOUP_STATUS_SWITCHING_PROTOCOLS) {
          op->done(UpstreamFailure{
              UpstreamFailure::Kind::kStatus,
              static_cast<int>(status),
              {},
              "the worker answered the WebSocket handshake with " + std::to_string(status)});
          return;
        }
        op->done(UpstreamFailure{
            UpstreamFailure::Kind::kConnect,
            0,
            {},
            std::string("cannot open the worker's WebSocket: ") + (err ? err->message : "?")});
      });
  soup_session_websocket_connect_async(session_.get(), raw->message.get(), nullptr, nullptr,
                                       G_PRIORITY_DEFAULT, raw->cancellable.get(), ready.callback,
                                       ready.user_data);
}

bool Worker::breaker_open() const {
  return consecutive_failures_ >= config_.breaker_failures &&
         (g_get_monotonic_time() < open_until_us_ || probing_);
}

bool Worker::available() const { return healthy_ && !breaker_open(); }

bool Worker::has_capacity() const {
  return config_.max_calls <= 0 || live_calls() < config_.max_calls;
}

bool Worker::try_admit(bool* probe) {
  if (!available() || !has_capacity()) return false;
  if (!UpstreamSignaller::try_admit(probe)) return false;
  // Past breaker_open_seconds with no probe in flight: half-open, this call is the probe.
  *probe = consecutive_failures_ >= config_.breaker_failures;
  if (*probe) {
    probing_ = true;
    g_message("worker %s: breaker half-open, one probe call let through", config_.name.c_str());
  }
  return true;
}

void Worker::settle(SetupOutcome outcome, bool probe) {
  if (probe) probing_ = false;
  switch (outcome) {
    case SetupOutcome::kSuccess:
      if (consecutive_failures_ >= config_.breaker_failures)
        g_message("worker %s: breaker closed", config_.name.c_str());
      consecutive_failures_ = 0;
      return;
    case SetupOutcome::kWorkerFailure:
      if (++consecutive_failures_ >= config_.breaker_failures) {
        open_until_us_ =
            g_get_monotonic_time() + gint64{config_.breaker_open_seconds} * G_USEC_PER_SEC;
        g_message("worker %s: breaker open for %d s after %d failures", config_.name.c_str(),
                  config_.breaker_open_seconds, consecutive_failures_);
      }
      return;
    case SetupOutcome::kNeutral:
      // Nothing learnt about the worker: a probe's slot goes back and the next call probes.
      return;
  }
}

void Worker::start_health_checks() {
  if (config_.health_path.empty() || config_.health_interval_seconds <= 0) {
    health_answered_ = true;
    return;
  }
  schedule_health_check(0);
}

void Worker::retire() {
  retired_ = true;
  health_timer_.cancel();
}

void Worker::schedule_health_check(int seconds) {
  if (retired_) return;
  health_timer_ = run_after_seconds(static_cast<guint>(seconds), [this] { check_health(); });
}

void Worker::check_health() {
  std::string url = config_.url + config_.health_path;
  auto msg = Ref<SoupMessage>::adopt(soup_message_new("GET", url.c_str()));
  if (!msg) return;
  prepare(msg.get());
  auto ready =
      async_ready([alive = lifetime_.watch(), this, msg](GObject* source, GAsyncResult* result) {
        UniqueError err;
        auto bytes = Ref<GBytes>::adopt(
            soup_session_send_and_read_finish(SOUP_SESSION(source), result, ErrorOut(err)));
        if (!alive.alive()) return;
        guint status = bytes ? soup_message_get_status(msg.get()) : 0;
        bool ok = status >= 200 && status < 300;
        if (ok != healthy_)
          g_message("worker %s: %s (%s)", config_.name.c_str(), ok ? "healthy" : "unhealthy",
                    ok ? "health check passed"
                       : (err ? err->message : ("status " + std::to_string(status)).c_str()));
        healthy_ = ok;
        health_answered_ = true;
        // Back off while failing: interval, 2x, 4x ... up to 60 s.
        health_backoff_seconds_ =
            ok ? 0
               : std::min(60, health_backoff_seconds_ ? health_backoff_seconds_ * 2
                                                      : config_.health_interval_seconds);
        schedule_health_check(ok ? config_.health_interval_seconds : health_backoff_seconds_);
      });
  soup_session_send_and_read_async(session_.get(), msg.get(), G_PRIORITY_DEFAULT, nullptr,
                                   ready.callback, ready.user_data);
}

void Worker::hangup(const std::string& upstream_call_id) {
  if (upstream_call_id.empty()) return;
  std::string url = provider_.hangup_url(config_, upstream_call_id);
  auto msg = Ref<SoupMessage>::adopt(soup_message_new("POST", url.c_str()));
  if (!msg) return;
  soup_message_add_flags(msg.get(), SOUP_MESSAGE_IDEMPOTENT);  // reuse pooled connections
  prepare(msg.get());
  // Fire and forget; the session's timeout bounds it. The message ref travels with the request.
  auto ready = async_ready([msg](GObject* source, GAsyncResult* result) {
    UniqueError err;
    auto bytes = Ref<GBytes>::adopt(
        soup_session_send_and_read_finish(SOUP_SESSION(source), result, ErrorOut(err)));
    if (!bytes) g_message("upstream hangup failed: %s", err ? err->message : "unknown");
  });
  soup_session_send_and_read_async(session_.get(), msg.get(), G_PRIORITY_DEFAULT, nullptr,
                                   ready.callback, ready.user_data);
}

}  // namespace rtgw::workers
