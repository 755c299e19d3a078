// SPDX-License-Identifier: MIT
// `"provider": "echo"`: the built-in echo worker (workers/echo_worker.h), served in process
// through the same WebRTC path as a remote worker. No URL (none is read), no key, no HTTP, no
// health checks: the `WorkerPool` hands its calls to the registered in-process signaller.
#include "workers/providers/registry.h"

namespace rtgw::workers::providers {
namespace {

class EchoDialect : public Provider {
 public:
  const char* name() const override { return "echo"; }
  bool remote() const override { return false; }
  void check(config::WorkerConfig&, const std::set<std::string>&,
             std::vector<config::WorkerProblem>&) const override {}

  std::string calls_url(const config::WorkerConfig&, const std::string&) const override {
    return {};
  }
  std::string hangup_url(const config::WorkerConfig&, const std::string&) const override {
    return {};
  }
  std::string realtime_url(const config::WorkerConfig&, const std::string&, bool) const override {
    return {};
  }
  std::string translation_calls_url(const config::WorkerConfig&) const override { return {}; }
  std::string translation_socket_url(const config::WorkerConfig&,
                                     const std::string&) const override {
    return {};
  }
  std::vector<Header> auth_headers(const config::WorkerConfig&) const override { return {}; }
  std::string default_health_path(const config::WorkerConfig&) const override { return {}; }
};

}  // namespace

const Provider& echo() {
  static const EchoDialect dialect;
  return dialect;
}

}  // namespace rtgw::workers::providers
