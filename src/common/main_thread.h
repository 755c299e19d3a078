// SPDX-License-Identifier: MIT
// Handing work to the main loop: posts, timers and liveness tokens.
//
// Owns: the primitives every hand-off goes through, so that no business code pairs a `new`
// closure context with a `delete` by hand:
// - `Lifetime` / `Liveness`: a liveness token. An object that receives callbacks holds a
//   `Lifetime` member; callbacks capture `watch()` (a weak flag, cheap to copy, safe to test on
//   any thread) and check it on the main loop before touching the object.
// - `post_to_main()` / `post_if_alive()`: queue a closure on the default main context (always
//   queued, never run inline).
// - `run_after_ms()`, `run_after_seconds()`, `run_every_ms()`, `run_every_seconds()`: main-loop
//   timers as std::function closures, cancelled by the returned SourceGuard (ref.h). A one-shot
//   timer that fired leaves its guard harmless.
// - `async_ready()`: a GAsyncReadyCallback/user_data pair for a one-shot GIO-style callback.
//
// Threads: `post_to_main()`, `post_if_alive()` and `Liveness::alive()` are thread safe. Timers
// are created and fire on the main loop.
#pragma once

#include <gio/gio.h>

#include <functional>
#include <memory>
#include <utility>

#include "common/ref.h"

namespace rtgw {

// The watcher side of a liveness token: false once its Lifetime is gone (or ended).
class Liveness {
 public:
  Liveness() = default;
  bool alive() const { return !token_.expired(); }
  explicit operator bool() const { return alive(); }

 private:
  friend class Lifetime;
  explicit Liveness(std::weak_ptr<const char> token) : token_(std::move(token)) {}
  std::weak_ptr<const char> token_;
};

// The owner side of a liveness token. Hold it as a member: callbacks queued for the owner are
// dropped once it is destroyed (they run on the main loop, where the owner is destroyed).
class Lifetime {
 public:
  Lifetime() = default;
  Lifetime(const Lifetime&) = delete;
  Lifetime& operator=(const Lifetime&) = delete;

  Liveness watch() const { return Liveness(token_); }
  // Expires the token early: nothing queued from now on reaches the owner.
  void end() { token_.reset(); }

 private:
  std::shared_ptr<const char> token_ = std::make_shared<const char>(0);
};

void post_to_main(std::function<void()> fn);
// Posts `fn`; it runs only if `liveness` still holds on the main loop.
void post_if_alive(Liveness liveness, std::function<void()> fn);

// One-shot timers on the default main context.
[[nodiscard]] SourceGuard run_after_ms(guint ms, std::function<void()> fn);
[[nodiscard]] SourceGuard run_after_seconds(guint seconds, std::function<void()> fn);
// Repeating timers: `fn` returns false to stop.
[[nodiscard]] SourceGuard run_every_ms(guint ms, std::function<bool()> fn);
[[nodiscard]] SourceGuard run_every_seconds(guint seconds, std::function<bool()> fn);

// A one-shot completion callback for a GIO-style async call:
// `auto ready = async_ready(fn); soup_…_async(…, ready.callback, ready.user_data);`
// The closure is freed after it ran. The async call must complete (GIO calls always do).
struct AsyncReady {
  GAsyncReadyCallback callback;
  gpointer user_data;
};
AsyncReady async_ready(std::function<void(GObject* source, GAsyncResult* result)> fn);

}  // namespace rtgw
