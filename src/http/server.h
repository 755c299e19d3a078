// SPDX-License-Identifier: MIT
// The HTTP route layer.
//
// Owns: the SoupServer, routing requests by method and path, early body-size refusal (413), and
// the one boundary that turns any HttpError into the SPEC's JSON error exactly once. Handlers
// here translate HTTP to service calls (auth, calls, workers) and back; they never touch pads.
//
// Threads: main loop only.
#pragma once

#include <libsoup/soup.h>

#include <functional>
#include <string>

#include "auth/authenticator.h"
#include "calls/call_registry.h"
#include "common/ref.h"
#include "config/config.h"
#include "http/cors.h"
#include "metrics/metrics.h"
#include "workers/worker_pool.h"

namespace rtgw::http {

struct Services {
  const config::Config& config;
  const auth::Authenticator& auth;
  calls::CallRegistry& calls;
  workers::WorkerPool& workers;
  metrics::Registry& metrics;
  std::string pipeline_description;
  std::function<bool(const std::string& key_name)> over_budget;
  std::string data_dir;  // the tester page
};

class Server {
 public:
  explicit Server(Services services);
  ~Server();

  // Listens on config.listen; throws std::runtime_error on failure. Returns the bound port.
  int listen();
  // New calls get 503 shutting_down from now on.
  void begin_shutdown() { shutting_down_ = true; }
  bool shutting_down() const { return shutting_down_; }

 private:
  void dispatch(SoupServerMessage* msg, const char* path);
  void handle_create_call(SoupServerMessage* msg, GHashTable* query);
  void handle_get_call(SoupServerMessage* msg, const std::string& id);
  void handle_hangup_call(SoupServerMessage* msg, const std::string& id);
  void handle_models(SoupServerMessage* msg);
  void serve_tester_page(SoupServerMessage* msg);
  void handle_debug_calls(SoupServerMessage* msg);
  void handle_client_secrets(SoupServerMessage* msg);
  void handle_pipeline_dot(SoupServerMessage* msg, const std::string& id);

  Services services_;
  CorsPolicy cors_;
  Ref<SoupServer> server_;
  bool shutting_down_ = false;
};

// Response helpers shared by handlers.
void respond(SoupServerMessage* msg, int status, const char* content_type, const std::string& body);
void respond_json(SoupServerMessage* msg, int status, const std::string& body);

}  // namespace rtgw::http
