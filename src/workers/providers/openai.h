// SPDX-License-Identifier: MIT
// The OpenAI dialect (`"provider": "openai"`), also the base of `generic` (generic.cpp).
//
// Owns: OpenAI's Realtime GA paths under the worker's `url`, its `Authorization: Bearer` key.
//
// Threads: any (immutable).
#pragma once

#include "workers/providers/provider.h"

namespace rtgw::workers::providers {

class OpenAiDialect : public Provider {
 public:
  const char* name() const override { return "openai"; }
  bool remote() const override { return true; }
  void check(config::WorkerConfig& worker, const std::set<std::string>& given,
             std::vector<config::WorkerProblem>& problems) const override;

  std::string calls_url(const config::WorkerConfig& worker,
                        const std::string& model) const override;
  std::string hangup_url(const config::WorkerConfig& worker,
                         const std::string& upstream_call_id) const override;
  std::string realtime_url(const config::WorkerConfig& worker, const std::string& model,
                           bool transcription) const override;
  std::string translation_calls_url(const config::WorkerConfig& worker) const override;
  std::string translation_socket_url(const config::WorkerConfig& worker,
                                     const std::string& model) const override;
  std::vector<Header> auth_headers(const config::WorkerConfig& worker) const override;
  std::string default_health_path(const config::WorkerConfig& worker) const override;
};

}  // namespace rtgw::workers::providers
