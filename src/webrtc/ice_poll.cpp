// SPDX-License-Identifier: MIT
#include "webrtc/ice_poll.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>
#include <vector>

namespace rtgw::webrtc {
namespace {

// After GLib's wake-up, the soonest the next revalidation runs (bounds its cost when wake-ups are
// frequent).
constexpr int kWokenRevalidateMs = 50;

// The G_IO_* bits are poll()'s, and epoll's EPOLLIN/PRI/OUT/ERR/HUP have the same values on
// Linux: events translate by masking.
constexpr guint32 kPollable = G_IO_IN | G_IO_PRI | G_IO_OUT;
constexpr gushort kAlways = G_IO_ERR | G_IO_HUP | G_IO_NVAL;
static_assert(int{EPOLLIN} == int{G_IO_IN} && int{EPOLLPRI} == int{G_IO_PRI} &&
              int{EPOLLOUT} == int{G_IO_OUT} && int{EPOLLERR} == int{G_IO_ERR} &&
              int{EPOLLHUP} == int{G_IO_HUP});

class Poller {
 public:
  Poller() : epfd_(epoll_create1(EPOLL_CLOEXEC)) {}
  ~Poller() {
    if (epfd_ >= 0) close(epfd_);
  }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  gint poll(GPollFD* fds, guint nfds, gint timeout_ms);

 private:
  struct Entry {
    guint32 events = 0;    // what the set has for this fd
    gushort ready = 0;     // this call's result (G_IO_* bits)
    bool special = false;  // not in the set: a regular file (always ready) or a closed fd (NVAL)
    guint64 seen = 0;      // the last call whose array had this fd
    bool wakeup = false;   // an eventfd: GLib's wake-up (sources attached or removed)
  };

  bool same_array(const GPollFD* fds, guint nfds) const;
  void sync(const GPollFD* fds, guint nfds);
  void register_fd(int fd, Entry& entry, bool in_set);
  void revalidate();

  int epfd_;
  guint64 call_ = 0;
  std::unordered_map<int, Entry> entries_;
  std::vector<std::pair<gint, gushort>> last_;  // the previous array's (fd, events)
  std::vector<epoll_event> events_;
  std::vector<int> ready_fds_;  // entries whose `ready` the last call set
  gint64 last_check_us_ = 0;
  // An eventfd was ready since the last revalidation: sources may have changed.
  bool woken_ = false;
  guint specials_ = 0;
};

// GLib's wake-up fd is an eventfd (GCancellable's too): read once per new fd.
bool is_eventfd(int fd) {
  char link[64];
  char path[48];
  g_snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  return g_str_has_suffix(link, "[eventfd]");
}

bool Poller::same_array(const GPollFD* fds, guint nfds) const {
  if (nfds != last_.size()) return false;
  for (guint i = 0; i < nfds; ++i)
    if (fds[i].fd != last_[i].first || fds[i].events != last_[i].second) return false;
  return true;
}

// Puts `fd` in the set with entry.events. `in_set`: the entry says it is there already (MOD,
// then ADD if the kernel dropped it with a closed file); else ADD, then MOD if it was there.
void Poller::register_fd(int fd, Entry& entry, bool in_set) {
  epoll_event ev{};
  ev.events = entry.events;
  ev.data.fd = fd;
  bool was_special = entry.special;
  int first = in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int rc = epoll_ctl(epfd_, first, fd, &ev);
  if (rc != 0 && errno == (in_set ? ENOENT : EEXIST))
    rc = epoll_ctl(epfd_, in_set ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
  // EPERM: a regular file or directory, which poll() reports ready; EBADF: closed (NVAL).
  entry.special = rc != 0;
  if (entry.special != was_special) specials_ += entry.special ? 1 : guint(-1);
}

// ADD every fd the array has: EEXIST for those still watched; success re-watches one whose number
// was closed and reused since it was added (the kernel dropped the old file's registration).
void Poller::revalidate() {
  for (auto& [fd, entry] : entries_) {
    epoll_event ev{};
    ev.events = entry.events;
    ev.data.fd = fd;
    bool was_special = entry.special;
    entry.special = epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST;
    if (entry.special != was_special) specials_ += entry.special ? 1 : guint(-1);
  }
  last_check_us_ = g_get_monotonic_time();
  woken_ = false;
}

void Poller::sync(const GPollFD* fds, guint nfds) {
  ++call_;
  for (guint i = 0; i < nfds; ++i) {
    int fd = fds[i].fd;
    if (fd < 0) continue;
    guint32 wanted = fds[i].events & kPollable;
    auto [it, added] = entries_.try_emplace(fd);
    Entry& entry = it->second;
    if (added) entry.wakeup = is_eventfd(fd);
    if (entry.seen == call_) wanted |= entry.events;  // the same fd twice: watch for both
    entry.seen = call_;
    if (added || wanted != entry.events || entry.special) {
      entry.events = wanted;
      register_fd(fd, entry, !added && !entry.special);
    }
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.seen == call_) {
      ++it;
      continue;
    }
    // Gone from the array: its source was removed (its fd may be closed already: ignore errors).
    if (!it->second.special) epoll_ctl(epfd_, EPOLL_CTL_DEL, it->first, nullptr);
    if (it->second.special) --specials_;
    it = entries_.erase(it);
  }
  last_.resize(nfds);
  for (guint i = 0; i < nfds; ++i) last_[i] = {fds[i].fd, fds[i].events};
}

gint Poller::poll(GPollFD* fds, guint nfds, gint timeout_ms) {
  if (epfd_ < 0) return g_poll(fds, nfds, timeout_ms);
  gint64 now = g_get_monotonic_time();
  if (!same_array(fds, nfds)) {
    // Sources came or went: numbers may have been reused meanwhile, so check them all.
    sync(fds, nfds);
    revalidate();
  } else if (now - last_check_us_ >= gint64{kRevalidateMs} * 1000 ||
             (woken_ && now - last_check_us_ >= gint64{kWokenRevalidateMs} * 1000)) {
    // GLib's wake-up fired: another thread attached or removed a source, maybe after closing an fd
    // whose number a new socket took (the array may look the same).
    revalidate();
  }
  for (int fd : ready_fds_)
    if (auto it = entries_.find(fd); it != entries_.end()) it->second.ready = 0;
  ready_fds_.clear();
  for (guint i = 0; i < nfds; ++i) fds[i].revents = 0;

  // A regular file is always ready and a closed fd always NVAL: poll() would not sleep either.
  if (specials_ > 0) timeout_ms = 0;
  gint64 deadline = timeout_ms < 0 ? -1 : now + gint64{timeout_ms} * 1000;
  events_.resize(entries_.empty() ? 1 : entries_.size());
  int n = 0;
  for (;;) {
    int wait_ms = kRevalidateMs;
    if (woken_) {
      // Rate-limited above: wake up for it when the limit allows.
      gint64 due_us = last_check_us_ + gint64{kWokenRevalidateMs} * 1000 - g_get_monotonic_time();
      wait_ms = due_us <= 0 ? 0 : static_cast<int>((due_us + 999) / 1000);
    }
    if (deadline >= 0) {
      gint64 left_us = deadline - g_get_monotonic_time();
      gint64 left_ms = left_us <= 0 ? 0 : (left_us + 999) / 1000;
      if (left_ms < wait_ms) wait_ms = static_cast<int>(left_ms);
    }
    n = epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), wait_ms);
    if (n < 0) return -1;  // errno as epoll_wait left it (EINTR: GLib iterates again)
    if (n > 0 || specials_ > 0) break;
    if (deadline >= 0 && g_get_monotonic_time() >= deadline) return 0;
    // A long sleep: make sure no reused fd number went unwatched meanwhile.
    revalidate();
    if (specials_ > 0) break;
  }
  for (int i = 0; i < n; ++i) {
    auto it = entries_.find(events_[i].data.fd);
    if (it == entries_.end()) continue;
    it->second.ready = static_cast<gushort>(events_[i].events);
    ready_fds_.push_back(it->first);
    if (it->second.wakeup) woken_ = true;
  }
  gint ready = 0;
  for (guint i = 0; i < nfds; ++i) {
    if (fds[i].fd < 0) continue;
    const Entry& entry = entries_[fds[i].fd];
    gushort revents = 0;
    if (entry.special) {
      // The same answers poll() gives: fcntl tells a closed fd from a regular file.
      revents = fcntl(fds[i].fd, F_GETFD) < 0 ? G_IO_NVAL : (fds[i].events & (G_IO_IN | G_IO_OUT));
    } else {
      revents = entry.ready & (fds[i].events | kAlways);
    }
    fds[i].revents = revents;
    if (revents) ++ready;
  }
  return ready;
}

}  // namespace

gint epoll_poll(GPollFD* fds, guint nfds, gint timeout_ms) {
  thread_local Poller poller;
  return poller.poll(fds, nfds, timeout_ms);
}

void use_epoll_poll(GMainContext* context) { g_main_context_set_poll_func(context, epoll_poll); }

}  // namespace rtgw::webrtc
