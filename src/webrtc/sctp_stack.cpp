// SPDX-License-Identifier: MIT
#include "webrtc/sctp_stack.h"

namespace rtgw::webrtc {

SctpStackHold::SctpStackHold() {
  auto element = Ref<GstElement>::sink(gst_element_factory_make("sctpdec", "rtgw-sctp-stack"));
  if (!element) {
    error_ = "no sctpdec element (gstreamer1.0-plugins-bad)";
    return;
  }
  g_object_set(element.get(), "sctp-association-id", static_cast<guint>(kAssociationId), nullptr);
  if (gst_element_set_state(element.get(), GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE) {
    gst_element_set_state(element.get(), GST_STATE_NULL);
    error_ = "sctpdec did not reach PAUSED";
    return;
  }
  element_ = std::move(element);
}

SctpStackHold::~SctpStackHold() {
  if (!element_) return;
  // The last association of the process is freed here, so usrsctp_finish() runs now, after every
  // call's pipeline was reaped.
  gst_element_set_state(element_.get(), GST_STATE_NULL);
}

}  // namespace rtgw::webrtc
