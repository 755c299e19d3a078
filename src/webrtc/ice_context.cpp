// SPDX-License-Identifier: MIT
#include "webrtc/ice_context.h"

#include <atomic>

#include "webrtc/ice_poll.h"

namespace rtgw::webrtc {
namespace {

std::atomic<bool> use_epoll{true};

struct SharedContext {
  GMainContext* context = nullptr;
  GMainLoop* loop = nullptr;
};

SharedContext& shared() {
  // Never destroyed: the thread keeps running until the process exits (no exit-time destructor
  // may race with it).
  static SharedContext* instance = [] {
    auto* s = new SharedContext;
    s->context = g_main_context_new();
    s->loop = g_main_loop_new(s->context, FALSE);
    // Before the thread exists: GLib reads the poll function under the context's lock each
    // iteration, but the whole run should use one.
    if (use_epoll.load()) use_epoll_poll(s->context);
    GThread* thread = g_thread_new(
        "rtgw-ice",
        [](gpointer data) -> gpointer {
          auto* sc = static_cast<SharedContext*>(data);
          g_main_context_push_thread_default(sc->context);
          g_main_loop_run(sc->loop);
          g_main_context_pop_thread_default(sc->context);
          return nullptr;
        },
        s);
    g_thread_unref(thread);
    return s;
  }();
  return *instance;
}

}  // namespace

GMainContext* shared_ice_context() { return shared().context; }

void set_shared_ice_poll(bool epoll) { use_epoll.store(epoll); }

void shared_ice_context_barrier() {
  GMainContext* context = shared_ice_context();
  if (g_main_context_is_owner(context)) return;
  // The context dispatches one source at a time on its one thread: once an idle queued now has
  // run, whatever callback was running when we queued it has returned.
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
