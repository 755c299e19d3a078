// SPDX-License-Identifier: MIT
// The rtevents GStreamer plugin (rteventfilter, rtusagemeter, rteventparse, rtpptrewrite,
// rtpforward), linked statically into the server.
//
// Include as "rtevents/rtevents.h" (meson: dependency `rtevents_static_dep`). Call
// rtevents_register_static() once after gst_init() and before creating any of the elements with
// gst_element_factory_make(). The same plugin is also built as a loadable module
// (build/plugins/rtevents/libgstrtevents.so) for gst-inspect-1.0 and gst-launch-1.0.
#pragma once

#include <string>

// Registers the statically linked plugin with GStreamer. Safe to call more than once (later calls
// do nothing) and from any thread.
void rtevents_register_static();

// Validates a policy object (the JSON text rteventfilter's `policy` property takes) without
// creating an element, e.g. for --check-config. Returns true if valid; else sets `*error` (if
// non-null) to "policy.<json path>: <reason>". Empty text is a valid, pass-everything policy.
bool rtevents_check_policy(const std::string& policy_json, std::string* error);
