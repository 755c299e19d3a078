// SPDX-License-Identifier: MIT
// The versions of the media and HTTP stacks the gateway runs on, for --check-config.
//
// GStreamer and libsoup report their run-time versions; gst-plugins-bad (webrtcbin, dtls) is
// read from the registry's plugin; libnice has no run-time version API, so its version is the
// one pkg-config reported at build time. Debian's package revision (which security update is
// installed, e.g. 1.22.0-4+deb12u8 of gst-plugins-bad) is not visible to the libraries: see
// docs/media-trust.md for the floor and tests/install-deps.sh for how it is installed.
//
// Threads: main thread, after gst_init.
#pragma once

#include <string>

namespace rtgw::app {

// "GStreamer 1.22.0, gst-plugins-bad 1.22.0 (webrtcbin), libnice 0.1.21 (build time), libsoup
// 3.2.3"
std::string platform_versions();

}  // namespace rtgw::app
