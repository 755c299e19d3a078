// SPDX-License-Identifier: MIT
// rteventfilter: applies the gateway's event policy to client→upstream realtime events.
// Documentation (caps, properties, messages, threads, example): rteventfilter.cpp.
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define RT_TYPE_EVENT_FILTER (rt_event_filter_get_type())
G_DECLARE_FINAL_TYPE(RtEventFilter, rt_event_filter, RT, EVENT_FILTER, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE(rteventfilter);

G_END_DECLS
