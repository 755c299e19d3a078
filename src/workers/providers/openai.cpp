// SPDX-License-Identifier: MIT
// OpenAI's Realtime GA API (https://platform.openai.com/docs/api-reference/realtime):
//   POST /v1/realtime/calls?model=M                    WebRTC call (offer in, answer out)
//   POST /v1/realtime/calls/{id}/hangup                its hang-up
//   GET  /v1/realtime?model=M                          WebSocket session
//   GET  /v1/realtime?intent=transcription             transcription session (model comes later)
//   POST /v1/realtime/translations/calls               WebRTC translation call (model in session)
//   GET  /v1/realtime/translations?model=M             WebSocket translation session
// The key goes in `Authorization: Bearer`; health is `GET /v1/models`.
#include "workers/providers/openai.h"

#include "workers/providers/registry.h"

namespace rtgw::workers::providers {

void OpenAiDialect::check(config::WorkerConfig& worker, const std::set<std::string>& given,
                          std::vector<config::WorkerProblem>&) const {
  if (!given.count("health_path")) worker.health_path = default_health_path(worker);
}

std::string OpenAiDialect::calls_url(const config::WorkerConfig& worker,
                                     const std::string& model) const {
  return worker.url + "/v1/realtime/calls?model=" + escape(model);
}

std::string OpenAiDialect::hangup_url(const config::WorkerConfig& worker,
                                      const std::string& upstream_call_id) const {
  return worker.url + "/v1/realtime/calls/" + escape(upstream_call_id) + "/hangup";
}

std::string OpenAiDialect::realtime_url(const config::WorkerConfig& worker,
                                        const std::string& model, bool transcription) const {
  // As OpenAI's GA transcription sessions connect: the model goes in the first session.update.
  if (transcription) return worker.url + "/v1/realtime?intent=transcription";
  return worker.url + "/v1/realtime?model=" + escape(model);
}

std::string OpenAiDialect::translation_calls_url(const config::WorkerConfig& worker) const {
  return worker.url + "/v1/realtime/translations/calls";
}

std::string OpenAiDialect::translation_socket_url(const config::WorkerConfig& worker,
                                                  const std::string& model) const {
  return worker.url + "/v1/realtime/translations?model=" + escape(model);
}

std::vector<Header> OpenAiDialect::auth_headers(const config::WorkerConfig& worker) const {
  if (worker.api_key.empty()) return {};
  return {{"Authorization", "Bearer " + worker.api_key}};
}

std::string OpenAiDialect::default_health_path(const config::WorkerConfig&) const {
  return "/v1/models";
}

const Provider& openai() {
  static const OpenAiDialect dialect;
  return dialect;
}

}  // namespace rtgw::workers::providers
