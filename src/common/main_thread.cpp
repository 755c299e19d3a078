// SPDX-License-Identifier: MIT
#include "common/main_thread.h"

#include <glib.h>

#include <exception>

namespace rtgw {
namespace {

template <typename Fn>
void run_guarded(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    g_warning("main-loop task failed: %s", e.what());
  }
}

// Attaches `source` to the default context with `fn` as its callback.
template <typename Result>
SourceGuard attach(GSource* raw, std::function<Result()> fn) {
  using Fn = std::function<Result()>;
  auto source = Ref<GSource>::adopt(raw);
  g_source_set_callback(
      source.get(),
      [](gpointer data) -> gboolean {
        auto& f = UserData<Fn>::from(data);
        if constexpr (std::is_void_v<Result>) {
          run_guarded(f);
          return G_SOURCE_REMOVE;
        } else {
          bool again = false;
          run_guarded([&] { again = f(); });
          return again ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
        }
      },
      UserData<Fn>::make(std::move(fn)), &UserData<Fn>::destroy);
  g_source_attach(source.get(), nullptr);
  return SourceGuard(std::move(source));
}

}  // namespace

void post_to_main(std::function<void()> fn) {
  // Always queued, never run inline, even when called on the main thread: callers rely on it.
  // Default priority, like the timers and I/O it is ordered with (an idle source's own is lower).
  GSource* idle = g_idle_source_new();
  g_source_set_priority(idle, G_PRIORITY_DEFAULT);
  attach(idle, std::move(fn)).forget();
}

void post_if_alive(Liveness liveness, std::function<void()> fn) {
  post_to_main([liveness = std::move(liveness), fn = std::move(fn)] {
    if (liveness.alive()) fn();
  });
}

SourceGuard run_after_ms(guint ms, std::function<void()> fn) {
  return attach(g_timeout_source_new(ms), std::move(fn));
}

SourceGuard run_after_seconds(guint seconds, std::function<void()> fn) {
  return attach(g_timeout_source_new_seconds(seconds), std::move(fn));
}

SourceGuard run_every_ms(guint ms, std::function<bool()> fn) {
  return attach(g_timeout_source_new(ms), std::move(fn));
}

SourceGuard run_every_seconds(guint seconds, std::function<bool()> fn) {
  return attach(g_timeout_source_new_seconds(seconds), std::move(fn));
}

AsyncReady async_ready(std::function<void(GObject*, GAsyncResult*)> fn) {
  using Fn = std::function<void(GObject*, GAsyncResult*)>;
  return {[](GObject* source, GAsyncResult* result, gpointer data) {
            std::unique_ptr<Fn> f(&UserData<Fn>::from(data));
            try {
              (*f)(source, result);
            } catch (const std::exception& e) {
              g_warning("async callback failed: %s", e.what());
            }
          },
          UserData<Fn>::make(std::move(fn))};
}

}  // namespace rtgw
