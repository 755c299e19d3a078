// SPDX-License-Identifier: MIT
// An epoll-backed GPollFunc for the shared ICE context (issue 28, docs/media-trust.md, "The shared
// ICE thread's poll: epoll").
//
// Why: every packet of every call wakes an `rtgw-ice-N` thread, and GLib's default poll() hands the
// kernel every socket of every call on each wake-up (sock_poll/tcp_poll/fdget and a wait-queue
// entry per fd, added and removed each time). This poll function keeps the fds registered in an
// epoll set between iterations, so a wake-up costs the kernel only the ready fds; userland compares
// the GPollFD array with the previous one (a few ns per fd) and touches the set only where it
// changed.
//
// What it may assume (GLib 2.74 gmain.c): it is called with the context unlocked, from the thread
// iterating the context, with an array rebuilt by g_main_context_query() (revents 0) each time.
// Sources may add and remove fds on other threads between two calls, so an fd number may be closed
// and reused by a new socket between two calls with the array unchanged: the kernel then dropped
// the old registration silently. The poller re-adds every fd whenever the array changes, after
// GLib's wake-up eventfd fired (another thread attached or removed a source; at most every 50 ms),
// and at least every kRevalidateMs (it never sleeps longer than that in one epoll_wait), so such a
// socket is polled again within that bound, usually within a wake-up.
//
// Owns: one epoll set per thread that calls it (thread_local), closed when the thread exits.
// Threads: the thread iterating the context it is installed on.
#pragma once

#include <glib.h>

namespace rtgw::webrtc {

// Longest a reused fd number can go unpolled (see above), and so the longest single epoll_wait.
inline constexpr int kRevalidateMs = 250;

// The GPollFunc (same contract as g_poll): fills revents, returns the number of entries with
// revents != 0, 0 on timeout, -1 with errno (EINTR included) on error. Entries with fd < 0 are
// ignored; an fd epoll cannot watch (a regular file) reads as ready, a closed one as G_IO_NVAL,
// as poll() reports them.
gint epoll_poll(GPollFD* fds, guint nfds, gint timeout_ms);

// Installs epoll_poll as `context`'s poll function.
void use_epoll_poll(GMainContext* context);

}  // namespace rtgw::webrtc
