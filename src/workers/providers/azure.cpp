// SPDX-License-Identifier: MIT
// `"provider": "azure"`: Azure OpenAI. `url` is the resource (https://NAME.openai.azure.com), the
// model is the worker's `deployment` (the request's model name is not sent), `api_version` goes
// in every query, and the key goes in an `api-key` header:
//   POST /openai/deployments/D/realtime/calls?api-version=V                 WebRTC call
//   POST /openai/deployments/D/realtime/calls/{id}/hangup?api-version=V     its hang-up
//   GET  /openai/realtime?api-version=V&deployment=D                        WebSocket session
//   GET  /openai/realtime?api-version=V&intent=transcription&deployment=D   transcription session
//   POST /openai/deployments/D/realtime/translations/calls?api-version=V    translation call
//   GET  /openai/realtime/translations?api-version=V&deployment=D           translation session
// Health is `GET /openai/models?api-version=V`. The translation paths follow the realtime ones
// the same way OpenAI's do; Azure has published none of its own yet.
#include "workers/providers/registry.h"

namespace rtgw::workers::providers {
namespace {

class AzureDialect : public Provider {
 public:
  const char* name() const override { return "azure"; }
  bool remote() const override { return true; }

  void check(config::WorkerConfig& worker, const std::set<std::string>& given,
             std::vector<config::WorkerProblem>& problems) const override {
    if (worker.deployment.empty())
      problems.push_back({"deployment", "required for provider azure"});
    if (!given.count("health_path")) worker.health_path = default_health_path(worker);
  }

  std::string calls_url(const config::WorkerConfig& worker, const std::string&) const override {
    return deployment_url(worker, "/realtime/calls");
  }
  std::string hangup_url(const config::WorkerConfig& worker,
                         const std::string& upstream_call_id) const override {
    return deployment_url(worker, "/realtime/calls/" + escape(upstream_call_id) + "/hangup");
  }
  std::string realtime_url(const config::WorkerConfig& worker, const std::string&,
                           bool transcription) const override {
    return worker.url + "/openai/realtime?api-version=" + worker.api_version +
           (transcription ? "&intent=transcription" : "") +
           "&deployment=" + escape(worker.deployment);
  }
  std::string translation_calls_url(const config::WorkerConfig& worker) const override {
    return deployment_url(worker, "/realtime/translations/calls");
  }
  std::string translation_socket_url(const config::WorkerConfig& worker,
                                     const std::string&) const override {
    return worker.url + "/openai/realtime/translations?api-version=" + worker.api_version +
           "&deployment=" + escape(worker.deployment);
  }
  std::vector<Header> auth_headers(const config::WorkerConfig& worker) const override {
    if (worker.api_key.empty()) return {};
    return {{"api-key", worker.api_key}};
  }
  std::string default_health_path(const config::WorkerConfig& worker) const override {
    return "/openai/models?api-version=" + worker.api_version;
  }

 private:
  // Under the deployment, with the api-version query.
  static std::string deployment_url(const config::WorkerConfig& worker, const std::string& path) {
    return worker.url + "/openai/deployments/" + escape(worker.deployment) + path +
           "?api-version=" + worker.api_version;
  }
};

}  // namespace

const Provider& azure() {
  static const AzureDialect dialect;
  return dialect;
}

}  // namespace rtgw::workers::providers
