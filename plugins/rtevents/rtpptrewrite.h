// SPDX-License-Identifier: MIT
// rtpptrewrite: rewrites the payload type (and SSRC) of RTP packets in place.
// Documentation (caps, properties, threads, example): rtpptrewrite.cpp.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define RT_TYPE_RTP_PT_REWRITE (rt_rtp_pt_rewrite_get_type())
G_DECLARE_FINAL_TYPE(RtRtpPtRewrite, rt_rtp_pt_rewrite, RT, RTP_PT_REWRITE, GstElement)

GST_ELEMENT_REGISTER_DECLARE(rtpptrewrite);

G_END_DECLS
