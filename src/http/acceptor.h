// SPDX-License-Identifier: MIT
// The listening socket's accept loop, with a back-off when the process is out of descriptors.
//
// Owns: the GSocketListener and one outstanding accept on it. Each accepted connection goes to
// the owner's callback, then the next accept starts. An accept that fails (EMFILE/ENFILE: the
// descriptor table is full; or any other error) pauses accepting for a short interval that
// doubles while it keeps failing (10 ms up to 1 s) and resets at the next success: the pending
// connections wait in the kernel's backlog instead of the loop spinning. (GSocketService, used
// before, re-queues its accept at once after an error and logs each one: with the table full it
// spun at 99.8 % of a core writing ~21,700 lines a second.) The failure is logged at once, then
// at most once per 10 s with the count since.
//
// Threads: main loop only.
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <functional>
#include <string>

#include "common/main_thread.h"
#include "common/ref.h"

namespace rtgw::http {

class Acceptor {
 public:
  // Each accepted connection (transfer none: take a reference to keep it).
  using OnConnection = std::function<void(GSocketConnection*)>;
  static constexpr guint kFirstPauseMs = 10;
  static constexpr guint kLongestPauseMs = 1000;
  static constexpr gint64 kLogEveryUs = 10 * G_USEC_PER_SEC;

  explicit Acceptor(OnConnection on_connection);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Listens on `address` and starts accepting; throws std::runtime_error. Returns the bound port.
  int listen(GSocketAddress* address);
  void stop();
  GSocketListener* listener() const { return listener_.get(); }

  std::uint64_t failures() const { return failures_; }
  bool paused() const { return static_cast<bool>(resume_); }

 private:
  void accept_next();
  void on_accepted(GObject* source, GAsyncResult* result);
  void on_failure(const GError* error);

  OnConnection on_connection_;
  Ref<GSocketListener> listener_;
  Ref<GCancellable> cancellable_;
  SourceGuard resume_;  // set while accepting is paused
  guint pause_ms_ = 0;  // the current back-off (0: the last accept succeeded)
  std::uint64_t failures_ = 0;
  // Rate-limited log: failures not logged yet, and when the last line was written.
  std::uint64_t unlogged_ = 0;
  gint64 logged_us_ = 0;
  Lifetime lifetime_;
};

}  // namespace rtgw::http
