// SPDX-License-Identifier: MIT
// `rtgwicesrc`: the receive end of one ICE component, pushing what libnice reads straight from
// the thread of its agent's ICE context (`rtgw-ice-N`, ice_context.h).
//
// Stock `nicesrc` is a GstBaseSrc with a streaming thread of its own that runs a private
// GMainContext just to read libnice's sockets: one thread per webrtcbin. This element has no
// thread: it attaches libnice's receive callback to its agent's context, and the callback pushes
// each datagram downstream into transportreceivebin's capsfilter and its queue. Until ICE is
// connected the queue only enqueues (the packet is processed on its thread, as stock); once the
// bin passes data and the queue is drained, the receive-queue bypass (receive_bypass.h) chains
// each packet from this thread into dtlssrtpdec and the queue's thread goes back to the pool.
//
// Properties as nicesrc's (`agent`, `stream`, `component`), so code that finds the receive end
// of a leg (calls/peer_liveness) treats both alike.
//
// Owns: the libnice receive attachment between READY->PAUSED and PAUSED->READY. Threads: state
// changes on any thread; the push on the agent's `rtgw-ice-N`, under the pad's stream lock.
#pragma once

#include <gst/gst.h>

namespace rtgw::webrtc {

// Registers the element type (idempotent) and returns it.
GType ice_source_get_type();

// Registers the `rtgwicesrc` factory (static, this process only).
bool register_ice_source();

// A new floating `rtgwicesrc` for `agent`'s `stream` / `component`.
GstElement* ice_source_new(GObject* agent, guint stream, guint component);

}  // namespace rtgw::webrtc
