// SPDX-License-Identifier: MIT
// rtusagemeter: meters realtime turns (tokens, service tier, first-token latency, duration).
// Documentation (caps, properties, messages, threads, example): rtusagemeter.cpp.
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

G_BEGIN_DECLS

// Which event path an rtusagemeter sits on.
typedef enum {
  RT_USAGE_METER_DIRECTION_UPSTREAM = 0,  // upstream→client: response.* events arrive here
  RT_USAGE_METER_DIRECTION_CLIENT = 1,    // client→upstream, after rteventfilter
} RtUsageMeterDirection;

#define RT_TYPE_USAGE_METER_DIRECTION (rt_usage_meter_direction_get_type())
GType rt_usage_meter_direction_get_type(void);

#define RT_TYPE_USAGE_METER (rt_usage_meter_get_type())
G_DECLARE_FINAL_TYPE(RtUsageMeter, rt_usage_meter, RT, USAGE_METER, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE(rtusagemeter);

G_END_DECLS
