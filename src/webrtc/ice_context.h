// SPDX-License-Identifier: MIT
// The GMainContexts every call's libnice agent runs on (issues 22 and 28).
//
// Stock webrtcbin 1.22 gives each webrtcbin's ICE agent a GMainContext and a thread of its own
// (`<name>:ice`), and each nicesrc one more. Here all agents of the process, their timers, their
// sockets and the shared ICE source elements (ice_source.h) are dispatched by a fixed set of N
// contexts, one thread each (`rtgw-ice-0`, `rtgw-ice-1`, ...), N = webrtc.ice_threads (0: one per
// CPU). Why N and not one: on a saturated machine one thread gets one thread's fair share of the
// CPU for every call's packets, and fell behind (issue 28); one per core can use every core, as a
// Go relay's GOMAXPROCS threads do. Each new agent takes the next context round robin, and keeps
// it for its life: everything of one agent (its sockets, timers, rtgwicesrc's pushes) runs on
// one thread. The contexts start together on first use and are never stopped (they outlive every
// call; the process exits without joining them).
//
// Their poll function is epoll_poll (ice_poll.h) unless set_shared_ice_poll(false) came first:
// one wake-up then costs the kernel the ready sockets, not every socket of every agent.
//
// Owns: the contexts and their threads. Threads: the functions from any thread; everything
// attached to a context runs on that context's thread.
#pragma once

#include <glib.h>

#include <atomic>
#include <vector>

namespace rtgw::webrtc {

// N contexts, each run by a thread of its own named `rtgw-ice-<i>`, and the round robin over
// them. The process has one (below), never destroyed; tests make their own. Destroying one quits
// and joins its threads (nothing may still be attached).
class IceContextPool {
 public:
  IceContextPool(unsigned threads, bool epoll);  // threads >= 1
  ~IceContextPool();
  IceContextPool(const IceContextPool&) = delete;
  IceContextPool& operator=(const IceContextPool&) = delete;

  unsigned count() const { return static_cast<unsigned>(threads_.size()); }
  GMainContext* context(unsigned index) const { return threads_[index % count()].context; }
  GMainContext* next();  // round robin, any thread

 private:
  struct Thread {
    GMainContext* context = nullptr;
    GMainLoop* loop = nullptr;
    GThread* thread = nullptr;
  };
  std::vector<Thread> threads_;
  std::atomic<unsigned> next_{0};
};

// webrtc.ice_threads: how many contexts (0: g_get_num_processors(); capped at kMaxIceThreads).
// Only before first use; later calls change nothing.
inline constexpr unsigned kMaxIceThreads = 64;
void set_ice_threads(unsigned n);

// webrtc.ice_epoll: whether the contexts poll through epoll (true, the default) or GLib's
// poll(). Only before first use; later calls change nothing.
void set_shared_ice_poll(bool epoll);

// How many contexts there are (starts them).
unsigned ice_context_count();

// Context `index` (< ice_context_count(); never NULL, never unreffed).
GMainContext* ice_context(unsigned index);

// The context a new libnice agent runs on: the next one, round robin (any thread).
GMainContext* ice_context_for_new_agent();

// Runs nothing itself: returns once every callback that was being dispatched on `context` when
// it was called has returned (a barrier). Returns at once on the context's own thread. Used
// before freeing what an ICE callback may still be using.
void ice_context_barrier(GMainContext* context);

}  // namespace rtgw::webrtc
