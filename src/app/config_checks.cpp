// SPDX-License-Identifier: MIT
#include "app/config_checks.h"

#include "app/gateway.h"
#include "calls/call.h"
#include "common/pipeline.h"
#include "events/event_path.h"
#include "http/tls_identity.h"
#include "recording/recording_plan.h"

namespace rtgw::app {

void check_loaded_config(const config::Config& config, bool tls) {
  calls::check_call_description(load_pipeline_description(
      config.pipeline_file.empty() ? default_pipeline_file() : config.pipeline_file));
  events::check_session_description(load_pipeline_description(
      config.websocket.pipeline_file.empty() ? default_session_pipeline_file()
                                             : config.websocket.pipeline_file));
  check_policy(config.policy_json);
  if (tls && config.tls.enabled()) http::check_tls_pair(config.tls.cert_file, config.tls.key_file);
  if (!config.recording.dir.empty()) recording::check_dir(config.recording.dir);
  resolve_interfaces(config.webrtc.ice_interfaces, config.webrtc.ice_ipv6);
}

}  // namespace rtgw::app
