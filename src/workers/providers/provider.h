// SPDX-License-Identifier: MIT
// An upstream dialect: how one kind of worker (`models[].workers[].provider`) is spoken to.
//
// Owns: nothing but the rules of its dialect, as pure functions of the worker's config: its URLs
// (WebRTC calls, hang-up, realtime WebSocket, and the translation equivalents), its auth header,
// how an offer becomes a request body and an answer becomes an SDP or a failure, its default
// health path, and its own config checks (the `config::WorkerDialect` side). It holds no state
// and does no I/O: `workers::Worker` sends what a dialect builds over its own SoupSession.
//
// A new upstream kind is one new file here (a `Provider` subclass and its accessor, listed in
// registry.cpp) plus its test in tests/unit/test_providers.cpp.
//
// Threads: any (dialects are immutable singletons).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/worker_dialect.h"
#include "workers/upstream_signaller.h"

namespace rtgw::workers::providers {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// A request body and its full Content-Type (with the multipart boundary when there is one).
struct RequestBody {
  std::string content_type;
  std::string bytes;
};

class Provider : public config::WorkerDialect {
 public:
  // The `provider` name in the config.
  virtual const char* name() const = 0;

  // URLs, built from the worker's `url` (no trailing slash) and the upstream model name as the
  // model's `upstream_model`. Empty for an in-process dialect (remote() false).
  //
  // `POST` with the offer: a WebRTC call.
  virtual std::string calls_url(const config::WorkerConfig& worker,
                                const std::string& model) const = 0;
  // `POST`, no body: ends the upstream call the answer's Location named.
  virtual std::string hangup_url(const config::WorkerConfig& worker,
                                 const std::string& upstream_call_id) const = 0;
  // `GET` WebSocket: a realtime session, or a transcription session (model sent later, in the
  // first session.update).
  virtual std::string realtime_url(const config::WorkerConfig& worker, const std::string& model,
                                   bool transcription) const = 0;
  // `POST` with the offer: a WebRTC translation call (no model in the URL: the session names it).
  virtual std::string translation_calls_url(const config::WorkerConfig& worker) const = 0;
  // `GET` WebSocket: a translation session.
  virtual std::string translation_socket_url(const config::WorkerConfig& worker,
                                             const std::string& model) const = 0;

  // The headers that carry the worker's key on every request (none without a key).
  virtual std::vector<Header> auth_headers(const config::WorkerConfig& worker) const = 0;
  // What the health check GETs when the config names no `health_path` ("" = no checks).
  virtual std::string default_health_path(const config::WorkerConfig& worker) const = 0;

  // The offer as the dialect sends it: `application/sdp`, or `multipart/form-data` with fields
  // `sdp` and `session` when there is an initial session. Shared by today's dialects.
  virtual RequestBody encode_offer(const OfferRequest& request) const;
  // The worker's answer to the offer: a 2xx whose body is an SDP (call id from its Location), or
  // the failure the set-up reports. `answer_ms` is left to the caller, who timed the exchange.
  virtual UpstreamResult decode_answer(int status, std::string body, const char* location) const;
  // The upstream call id in an answer's Location (its last path segment; "" without one).
  virtual std::string call_id_from_location(const char* location) const;
};

// Percent-encodes one path segment or query value (RFC 3986 unreserved characters kept).
std::string escape(const std::string& value);

}  // namespace rtgw::workers::providers
