// SPDX-License-Identifier: MIT
// rteventparse: splits a byte stream of JSON lines into one realtime event per buffer.
// Documentation (caps, properties, threads, example): rteventparse.cpp.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define RT_TYPE_EVENT_PARSE (rt_event_parse_get_type())
G_DECLARE_FINAL_TYPE(RtEventParse, rt_event_parse, RT, EVENT_PARSE, GstElement)

GST_ELEMENT_REGISTER_DECLARE(rteventparse);

G_END_DECLS
