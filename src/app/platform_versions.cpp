// SPDX-License-Identifier: MIT
#include "app/platform_versions.h"

#include <gst/gst.h>
#include <libsoup/soup.h>

#include "common/ref.h"

#ifndef RTGW_LIBNICE_VERSION
#define RTGW_LIBNICE_VERSION "unknown"
#endif

namespace rtgw::app {

std::string platform_versions() {
  UniqueStr gst(gst_version_string());
  std::string bad = "not found";
  // webrtcbin's own plugin: its version is gst-plugins-bad's.
  if (auto plugin = Ref<GstPlugin>::adopt(gst_registry_find_plugin(gst_registry_get(), "webrtc")))
    bad = gst_plugin_get_version(plugin.get());
  return std::string(gst ? gst.get() : "GStreamer ?") + ", gst-plugins-bad " + bad +
         " (webrtcbin), libnice " RTGW_LIBNICE_VERSION " (build time), libsoup " +
         std::to_string(soup_get_major_version()) + "." + std::to_string(soup_get_minor_version()) +
         "." + std::to_string(soup_get_micro_version());
}

}  // namespace rtgw::app
