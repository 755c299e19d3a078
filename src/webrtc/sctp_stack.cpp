// SPDX-License-Identifier: MIT
#include "webrtc/sctp_stack.h"

#include "webrtc/sctp_ids.h"

namespace rtgw::webrtc {

SctpStackHold::SctpStackHold() {
  auto element = Ref<GstElement>::sink(gst_element_factory_make("sctpdec", "rtgw-sctp-stack"));
  if (!element) {
    error_ = "no sctpdec element (gstreamer1.0-plugins-bad)";
    return;
  }
  id_ = sctp_ids::acquire();
  if (!id_) {
    error_ = "no free SCTP association id";
    return;
  }
  g_object_set(element.get(), "sctp-association-id", static_cast<guint>(*id_), nullptr);
  if (gst_element_set_state(element.get(), GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE) {
    gst_element_set_state(element.get(), GST_STATE_NULL);
    sctp_ids::release(*id_);
    id_.reset();
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
  element_ = nullptr;
  sctp_ids::release(*id_);
}

}  // namespace rtgw::webrtc
