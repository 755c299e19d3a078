// SPDX-License-Identifier: MIT
#include "app/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace rtgw::app {

namespace {

// A file descriptor closed on every path out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::uint64_t parse_u64(const char* text) {
  if (!text || !*text) return 0;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || !end || *end != '\0') return 0;
  return v;
}

}  // namespace

ServiceNotifier ServiceNotifier::from_environment() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return ServiceNotifier();
  std::uint64_t watchdog = parse_u64(std::getenv("WATCHDOG_USEC"));
  // WATCHDOG_PID names the process the watchdog is meant for (a wrapper may pass it on).
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid) {
    if (parse_u64(pid) != static_cast<std::uint64_t>(getpid())) watchdog = 0;
  }
  return ServiceNotifier(path, watchdog);
}

ServiceNotifier::ServiceNotifier(std::string path, std::uint64_t watchdog_us)
    : path_(std::move(path)), watchdog_us_(watchdog_us) {}

bool ServiceNotifier::send(std::string_view state) const {
  if (path_.empty()) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // '@' names an abstract socket: a leading NUL on the wire.
  if (path_.size() >= sizeof(address.sun_path)) return false;
  std::memcpy(address.sun_path, path_.data(), path_.size());
  if (path_[0] == '@') address.sun_path[0] = '\0';
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() +
                                            (path_[0] == '@' ? 0 : 1));
  Fd socket_fd{socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (socket_fd.fd < 0) return false;
  ssize_t sent = sendto(socket_fd.fd, state.data(), state.size(), MSG_NOSIGNAL,
                        reinterpret_cast<const sockaddr*>(&address), length);
  return sent == static_cast<ssize_t>(state.size());
}

bool ServiceNotifier::ready(std::string_view status) const {
  return send("READY=1\nSTATUS=" + std::string(status));
}

bool ServiceNotifier::status(std::string_view status) const {
  return send("STATUS=" + std::string(status));
}

bool ServiceNotifier::stopping(std::string_view status) const {
  return send("STOPPING=1\nSTATUS=" + std::string(status));
}

bool ServiceNotifier::watchdog() const { return send("WATCHDOG=1"); }

}  // namespace rtgw::app
