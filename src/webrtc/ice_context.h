// SPDX-License-Identifier: MIT
// The one GMainContext every call's libnice agent runs on (issue 22).
//
// Stock webrtcbin 1.22 gives each webrtcbin's ICE agent a GMainContext and a thread of its own
// (`<name>:ice`), and each nicesrc one more. Here all agents of the process, their timers, their
// sockets and the shared ICE source elements (ice_source.h) are dispatched by one thread,
// `rtgw-ice`, started on first use and never stopped (it outlives every call; the process exits
// without joining it).
//
// Its poll function is epoll_poll (ice_poll.h) unless set_shared_ice_poll(false) came first:
// one wake-up then costs the kernel the ready sockets, not every socket of every call.
//
// Owns: the context and its thread. Threads: `context()` from any thread; everything attached to
// the context runs on `rtgw-ice`.
#pragma once

#include <glib.h>

namespace rtgw::webrtc {

// The shared context (started on first call; never NULL, never unreffed).
GMainContext* shared_ice_context();

// webrtc.ice_epoll: whether the shared context polls through epoll (true, the default) or GLib's
// poll(). Only before the first shared_ice_context(); later calls change nothing.
void set_shared_ice_poll(bool epoll);

// Runs nothing itself: returns once every callback that was being dispatched on the shared
// context when it was called has returned (a barrier). Returns at once on the context's own
// thread. Used before freeing what an ICE callback may still be using.
void shared_ice_context_barrier();

}  // namespace rtgw::webrtc
