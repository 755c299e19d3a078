// SPDX-License-Identifier: MIT
// rteventsrc: the live source of an event path, pushed by the application, without a thread.
// Documentation (caps, signals, states, threads, example): rteventsrc.cpp.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define RT_TYPE_EVENT_SRC (rt_event_src_get_type())
G_DECLARE_FINAL_TYPE(RtEventSrc, rt_event_src, RT, EVENT_SRC, GstElement)

GST_ELEMENT_REGISTER_DECLARE(rteventsrc);

G_END_DECLS
