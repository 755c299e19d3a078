// SPDX-License-Identifier: MIT
// Pipeline descriptions (pipelines/*.pipeline) and the pipelines built from them.
//
// Owns: reading a description file (comment lines dropped), building a GstPipeline from it with
// the named elements its user looks up checked, watching a pipeline's bus on the main loop, and
// GstPromise callbacks as C++ closures. Calls and WebSocket sessions both build theirs here.
//
// Threads: building and bus watches on the main loop; a promise's closure runs on the thread
// that answers it.
#pragma once

#include <gst/gst.h>

#include <functional>
#include <initializer_list>
#include <string>

#include "common/ref.h"

namespace rtgw {

// Reads a pipeline description file, dropping '#' comment lines. Throws std::runtime_error.
std::string load_pipeline_description(const std::string& path);

// Builds `description` (gst-launch syntax) into a pipeline that has every element named in
// `required`. Throws std::runtime_error: "the <what> pipeline does not build: …", "… has no
// element named '<name>'".
Ref<GstElement> build_pipeline(const std::string& description, const char* what,
                               std::initializer_list<const char*> required);

// Calls `on_message` on the main loop for every message of `pipeline`'s bus, until the guard
// goes.
SourceGuard watch_bus(GstElement* pipeline, std::function<void(GstMessage*)> on_message);

// A promise that runs `on_reply` with its reply structure (nullptr when none) on the thread that
// answers it (a webrtcbin `:pc` thread). Keep it short: copy, and post to the main loop behind a
// liveness check.
Ref<GstPromise> make_promise(std::function<void(const GstStructure* reply)> on_reply);

}  // namespace rtgw
