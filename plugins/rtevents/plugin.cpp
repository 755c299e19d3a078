// SPDX-License-Identifier: MIT
// The rtevents plugin: registers rteventsrc, rteventfilter, rtusagemeter, rteventparse,
// rtpptrewrite and rtpforward.
//
// Compiled twice by meson: once as the loadable module (libgstrtevents.so) and once with
// -DGST_PLUGIN_BUILD_STATIC for the static library the server links, where it also defines
// rtevents_register_static() (see rtevents.h).
#include <gst/gst.h>

#include <mutex>
#include <string>
#include <utility>

#include "policy.h"
#include "rteventfilter.h"
#include "rteventparse.h"
#include "rtevents.h"
#include "rteventsrc.h"
#include "rtpforward.h"
#include "rtpptrewrite.h"
#include "rtusagemeter.h"

#ifndef PACKAGE
#error "PACKAGE must be defined by the build (GST_PLUGIN_DEFINE needs it)"
#endif

namespace {

gboolean plugin_init(GstPlugin* plugin) {
  gboolean ok = TRUE;
  ok &= GST_ELEMENT_REGISTER(rteventsrc, plugin);
  ok &= GST_ELEMENT_REGISTER(rteventfilter, plugin);
  ok &= GST_ELEMENT_REGISTER(rtusagemeter, plugin);
  ok &= GST_ELEMENT_REGISTER(rteventparse, plugin);
  ok &= GST_ELEMENT_REGISTER(rtpptrewrite, plugin);
  ok &= GST_ELEMENT_REGISTER(rtpforward, plugin);
  return ok;
}

}  // namespace

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, rtevents,
                  "Realtime Gateway elements: event source, event policy filter, usage meter, "
                  "JSON-lines parser, RTP PT rewrite, RTP forward",
                  plugin_init, RTEVENTS_VERSION, "MIT/X11", RTEVENTS_PACKAGE_NAME, RTEVENTS_ORIGIN)

#ifdef GST_PLUGIN_BUILD_STATIC
// gst_plugin_rtevents_register() is declared and defined by GST_PLUGIN_DEFINE above.
void rtevents_register_static() {
  static std::once_flag once;
  std::call_once(once, [] { GST_PLUGIN_STATIC_REGISTER(rtevents); });
}

bool rtevents_check_policy(const std::string& policy_json, std::string* error) {
  std::string why;
  const bool ok = rtgw::rtevents::Policy::parse(policy_json, &why) != nullptr;
  if (!ok && error) *error = std::move(why);
  return ok;
}
#endif
