// SPDX-License-Identifier: MIT
#include "common/main_thread.h"

#include <glib.h>

#include <exception>

namespace rtgw {

void post_to_main(std::function<void()> fn) {
  auto* heap = new std::function<void()>(std::move(fn));
  // Always queued, never run inline, even when called on the main thread: callers rely on it.
  g_idle_add_full(
      G_PRIORITY_DEFAULT,
      [](gpointer data) -> gboolean {
        auto* f = static_cast<std::function<void()>*>(data);
        try {
          (*f)();
        } catch (const std::exception& e) {
          g_warning("main-loop task failed: %s", e.what());
        }
        return G_SOURCE_REMOVE;
      },
      heap, [](gpointer data) { delete static_cast<std::function<void()>*>(data); });
}

}  // namespace rtgw
