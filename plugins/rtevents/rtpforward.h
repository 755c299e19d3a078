// SPDX-License-Identifier: MIT
// rtpforward: rtpbin's jitterbuffer slot, without the buffer: forwards RTP as it arrives.
// Documentation (pads, properties, threads, what rtpbin and webrtcbin need from it):
// rtpforward.cpp.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define RT_TYPE_RTP_FORWARD (rt_rtp_forward_get_type())
G_DECLARE_FINAL_TYPE(RtRtpForward, rt_rtp_forward, RT, RTP_FORWARD, GstElement)

GST_ELEMENT_REGISTER_DECLARE(rtpforward);

G_END_DECLS
