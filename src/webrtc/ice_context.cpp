// SPDX-License-Identifier: MIT
#include "webrtc/ice_context.h"

#include <algorithm>
#include <string>

#include "webrtc/ice_poll.h"

namespace rtgw::webrtc {
namespace {

std::atomic<bool> use_epoll{true};
std::atomic<unsigned> wanted_threads{0};

gpointer run(gpointer data) {
  auto* loop = static_cast<GMainLoop*>(data);
  GMainContext* context = g_main_loop_get_context(loop);
  g_main_context_push_thread_default(context);
  g_main_loop_run(loop);
  g_main_context_pop_thread_default(context);
  return nullptr;
}

IceContextPool& process_pool() {
  // Never destroyed: the threads keep running until the process exits (no exit-time destructor
  // may race with them).
  static IceContextPool* instance = [] {
    unsigned n = wanted_threads.load();
    if (n == 0) n = static_cast<unsigned>(std::max(1, static_cast<int>(g_get_num_processors())));
    return new IceContextPool(std::min(n, kMaxIceThreads), use_epoll.load());
  }();
  return *instance;
}

}  // namespace

IceContextPool::IceContextPool(unsigned threads, bool epoll) : threads_(std::max(threads, 1u)) {
  for (unsigned i = 0; i < threads_.size(); ++i) {
    Thread& t = threads_[i];
    t.context = g_main_context_new();
    t.loop = g_main_loop_new(t.context, FALSE);
    // Before the thread exists: GLib reads the poll function under the context's lock each
    // iteration, but the whole run should use one (and epoll_poll's state is thread_local).
    if (epoll) use_epoll_poll(t.context);
    std::string name = "rtgw-ice-" + std::to_string(i);  // at most 11 of 15 characters
    t.thread = g_thread_new(name.c_str(), run, t.loop);
  }
}

IceContextPool::~IceContextPool() {
  for (Thread& t : threads_) {
    // Quit from inside the loop: a quit before g_main_loop_run started would be forgotten.
    GSource* quit = g_idle_source_new();
    g_source_set_callback(
        quit,
        [](gpointer loop) -> gboolean {
          g_main_loop_quit(static_cast<GMainLoop*>(loop));
          return G_SOURCE_REMOVE;
        },
        t.loop, nullptr);
    g_source_attach(quit, t.context);
    g_source_unref(quit);
    g_thread_join(t.thread);  // also drops the thread's reference
    g_main_loop_unref(t.loop);
    g_main_context_unref(t.context);
  }
}

GMainContext* IceContextPool::next() {
  return context(next_.fetch_add(1, std::memory_order_relaxed));
}

void set_ice_threads(unsigned n) { wanted_threads.store(n); }

void set_shared_ice_poll(bool epoll) { use_epoll.store(epoll); }

unsigned ice_context_count() { return process_pool().count(); }

GMainContext* ice_context(unsigned index) { return process_pool().context(index); }

GMainContext* ice_context_for_new_agent() { return process_pool().next(); }

void ice_context_barrier(GMainContext* context) {
  if (g_main_context_is_owner(context)) return;
  // A context dispatches one source at a time on its one thread: once an idle queued now has
  // run, whatever callback was running when we queued it has returned. (From another ICE
  // context's thread this waits for that one: two ICE threads each finalizing an agent of the
  // other's context at once would wait for each other; agents are finalized where webrtcbin is,
  // on the main loop or a streaming thread, not in an ICE callback.)
  GMutex mutex;
  GCond cond;
  bool done = false;
  g_mutex_init(&mutex);
  g_cond_init(&cond);
  struct Ctx {
    GMutex* mutex;
    GCond* cond;
    bool* done;
  } ctx{&mutex, &cond, &done};
  GSource* source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_HIGH);
  g_source_set_callback(
      source,
      [](gpointer data) -> gboolean {
        auto* c = static_cast<Ctx*>(data);
        g_mutex_lock(c->mutex);
        *c->done = true;
        g_cond_signal(c->cond);
        g_mutex_unlock(c->mutex);
        return G_SOURCE_REMOVE;
      },
      &ctx, nullptr);
  g_source_attach(source, context);
  g_source_unref(source);
  g_mutex_lock(&mutex);
  while (!done) g_cond_wait(&cond, &mutex);
  g_mutex_unlock(&mutex);
  g_mutex_clear(&mutex);
  g_cond_clear(&cond);
}

}  // namespace rtgw::webrtc
