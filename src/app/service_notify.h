// SPDX-License-Identifier: MIT
// The systemd notify protocol (sd_notify(3)), without libsystemd: one datagram per state to the
// AF_UNIX socket named by $NOTIFY_SOCKET.
//
// Owns: the socket address read from the environment at start-up, and the watchdog interval
// ($WATCHDOG_USEC, honoured only when $WATCHDOG_PID is unset or names this process). Under no
// supervisor ($NOTIFY_SOCKET unset) every call does nothing.
//
// What the gateway tells the supervisor (app/gateway.cpp): READY=1 once it listens and every
// remote worker's first health check has answered; STATUS= with the live calls and sessions;
// STOPPING=1 when a drain starts; WATCHDOG=1 from a main-loop timer, so a loop that stops
// turning stops the pings and systemd restarts the service.
//
// Threads: main loop only (send is a non-blocking sendto; a full or absent socket drops the
// datagram, as sd_notify does).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rtgw::app {

class ServiceNotifier {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID.
  static ServiceNotifier from_environment();
  // A notifier for the socket `path` ("@name" for an abstract socket); `watchdog_us` 0 = none.
  ServiceNotifier(std::string path, std::uint64_t watchdog_us);
  ServiceNotifier() = default;

  bool enabled() const { return !path_.empty(); }
  // 0 when the supervisor wants no watchdog pings.
  std::uint64_t watchdog_us() const { return enabled() ? watchdog_us_ : 0; }

  // One datagram, e.g. "READY=1\nSTATUS=listening". False when it could not be sent.
  bool send(std::string_view state) const;
  bool ready(std::string_view status) const;
  bool status(std::string_view status) const;
  bool stopping(std::string_view status) const;
  bool watchdog() const;

 private:
  std::string path_;
  std::uint64_t watchdog_us_ = 0;
};

}  // namespace rtgw::app
