// SPDX-License-Identifier: MIT
#include "recording/recording_plan.h"

#include <glib.h>
#include <glib/gstdio.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/ref.h"

namespace rtgw::recording {

std::optional<RecordingPlan> plan_for(const config::RecordingConfig& config,
                                      const std::string& key_name, const std::string& model,
                                      const std::string& call_id) {
  if (!config.enabled()) return std::nullopt;
  bool match = false;
  for (const auto& pattern : config.keys) match = match || config::glob_match(pattern, key_name);
  for (const auto& pattern : config.models) match = match || config::glob_match(pattern, model);
  if (!match) return std::nullopt;
  return RecordingPlan{config.dir, call_id, key_name, model};
}

bool valid_direction(const std::string& direction) {
  return direction == "client" || direction == "upstream";
}

bool valid_call_id(const std::string& call_id) {
  if (call_id.empty() || call_id.size() > 128) return false;
  for (char c : call_id)
    if (!g_ascii_isalnum(c) && c != '_' && c != '-') return false;
  return true;
}

std::string audio_path(const std::string& dir, const std::string& call_id,
                       const std::string& direction) {
  return dir + "/" + call_id + "." + direction + ".ogg";
}

std::string sidecar_path(const std::string& dir, const std::string& call_id) {
  return dir + "/" + call_id + ".json";
}

void check_dir(const std::string& dir) {
  if (g_mkdir_with_parents(dir.c_str(), 0750) != 0)
    throw std::runtime_error("recording.dir " + dir +
                             ": cannot be created: " + std::strerror(errno));
  // Writable: a probe file made and removed (access(2) says nothing of a read-only mount).
  UniqueStr probe(g_build_filename(dir.c_str(), ".rtgw-write-check-XXXXXX", nullptr));
  int fd = g_mkstemp(probe.get());
  if (fd < 0)
    throw std::runtime_error("recording.dir " + dir + ": not writable: " + std::strerror(errno));
  g_close(fd, nullptr);
  g_unlink(probe.get());
}

}  // namespace rtgw::recording
