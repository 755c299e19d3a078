// SPDX-License-Identifier: MIT
// The sidecar of a recorded call: {dir}/{call_id}.json, next to its Ogg files.
//
// It says who owns the recording after the call ended (the key that created it: GET
// .../recording answers that key and admins), the model, and when the call started and ended. It
// lives as long as the recording: the retention sweep removes it with the files.
//
// Owns: nothing. `write_sidecar` replaces the file through GIO's thread pool (never blocking the
// main loop on a slow disk; a failure is logged); `read_sidecar` reads it synchronously (a few
// hundred bytes, on a request).
//
// Threads: main loop.
#pragma once

#include <glib.h>

#include <optional>
#include <string>

#include "recording/recording_plan.h"

namespace rtgw::recording {

struct Sidecar {
  std::string call_id;
  std::string key_name;
  std::string model;
  gint64 started_unix_ms = 0;
  gint64 ended_unix_ms = 0;  // 0: not ended (yet, or the gateway stopped first)
};

std::string sidecar_json(const Sidecar& sidecar);
std::optional<Sidecar> parse_sidecar(const std::string& text);

void write_sidecar(const RecordingPlan& plan, const Sidecar& sidecar);
// None when there is no (readable, valid) sidecar for that call.
std::optional<Sidecar> read_sidecar(const std::string& dir, const std::string& call_id);

}  // namespace rtgw::recording
