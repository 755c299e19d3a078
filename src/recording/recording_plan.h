// SPDX-License-Identifier: MIT
// Which calls are recorded, and where their files go (config `recording`).
//
// Owns: nothing; pure functions over config::RecordingConfig and names: the decision taken once
// at a call's set-up (its key OR its model matches a pattern), the file names of a call's
// recording ({dir}/{call_id}.client.ogg, .upstream.ogg, and the {call_id}.json sidecar), and the
// check --check-config and start-up run on the folder.
//
// Threads: any.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"

namespace rtgw::recording {

// What a recorded call's Call needs: where, and who owns the files (the sidecar says so after
// the call ended: GET .../recording stays answerable by the creating key).
struct RecordingPlan {
  std::string dir;
  std::string call_id;
  std::string key_name;
  std::string model;
};

// The plan for a call, or none when recording is off or neither pattern list matches.
std::optional<RecordingPlan> plan_for(const config::RecordingConfig& config,
                                      const std::string& key_name, const std::string& model,
                                      const std::string& call_id);

// "client" (what the client sent) or "upstream" (what the worker sent).
bool valid_direction(const std::string& direction);
// A call id as the registry makes them (letters, digits, '_', '-'): anything else never names a
// file (no path separators, no dots).
bool valid_call_id(const std::string& call_id);
std::string audio_path(const std::string& dir, const std::string& call_id,
                       const std::string& direction);
std::string sidecar_path(const std::string& dir, const std::string& call_id);

// Creates `dir` when missing and checks a file can be created in it. Throws std::runtime_error
// ("recording.dir DIR: why").
void check_dir(const std::string& dir);

}  // namespace rtgw::recording
