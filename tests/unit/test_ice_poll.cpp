// SPDX-License-Identifier: MIT
// The shared ICE context's epoll poll function (webrtc/ice_poll.h): poll()'s answers for ready,
// idle, closed and regular-file fds, timeouts, EINTR, many fds, fds added and removed between
// calls, an fd number reused under an unchanged array, and a GMainContext dispatching through it.
#include <fcntl.h>
#include <glib-unix.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "webrtc/ice_context.h"
#include "webrtc/ice_poll.h"

namespace {

using rtgw::webrtc::epoll_poll;

// A socketpair, closed on scope exit: [0] is polled, [1] written.
struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fd), 0); }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) close(f);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  void send() const { ASSERT_EQ(write(fd[1], "x", 1), 1); }
  void drain() const {
    char buf[16];
    while (recv(fd[0], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
  }
};

GPollFD in(int fd) { return GPollFD{fd, G_IO_IN, 0}; }

gint64 elapsed_ms(gint64 since_us) { return (g_get_monotonic_time() - since_us) / 1000; }

TEST(IcePoll, ReportsOnlyTheReadyFdsOfMany) {
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < 300; ++i) pairs.push_back(std::make_unique<Pair>());
  std::vector<GPollFD> fds;
  for (const auto& p : pairs) fds.push_back(in(p->fd[0]));
  std::sort(fds.begin(), fds.end(), [](const GPollFD& a, const GPollFD& b) { return a.fd < b.fd; });
  // Nothing ready: a zero timeout returns 0 at once.
  EXPECT_EQ(epoll_poll(fds.data(), fds.size(), 0), 0);
  const std::vector<int> chosen = {3, 77, 150, 151, 299};
  for (int i : chosen) pairs[i]->send();
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 1000), static_cast<gint>(chosen.size()));
  for (const auto& f : fds) {
    bool expected =
        std::any_of(chosen.begin(), chosen.end(), [&](int i) { return pairs[i]->fd[0] == f.fd; });
    EXPECT_EQ(f.revents, expected ? G_IO_IN : 0) << "fd " << f.fd;
  }
  // Level-triggered, as poll(): still ready until read.
  EXPECT_EQ(epoll_poll(fds.data(), fds.size(), 0), static_cast<gint>(chosen.size()));
  for (int i : chosen) pairs[i]->drain();
  EXPECT_EQ(epoll_poll(fds.data(), fds.size(), 0), 0);
  for (const auto& f : fds) EXPECT_EQ(f.revents, 0);
}

TEST(IcePoll, WaitsOutItsTimeoutIncludingOnesLongerThanTheRevalidationStep) {
  Pair p;
  GPollFD fd = in(p.fd[0]);
  gint64 start = g_get_monotonic_time();
  EXPECT_EQ(epoll_poll(&fd, 1, 60), 0);
  EXPECT_GE(elapsed_ms(start), 59);
  start = g_get_monotonic_time();
  const int longer = rtgw::webrtc::kRevalidateMs * 2 + 100;
  EXPECT_EQ(epoll_poll(&fd, 1, longer), 0);
  EXPECT_GE(elapsed_ms(start), longer - 1);
  EXPECT_LT(elapsed_ms(start), longer + 2000);
  // Data arriving during a long wait ends it (the fd numbers here are the previous test's,
  // closed and reused: the set must not keep their dead registrations).
  std::thread writer([&] {
    g_usleep(100 * 1000);
    p.send();
  });
  start = g_get_monotonic_time();
  EXPECT_EQ(epoll_poll(&fd, 1, 5000), 1);
  EXPECT_EQ(fd.revents, G_IO_IN);
  EXPECT_LT(elapsed_ms(start), 2000);
  writer.join();
}

void on_signal(int) {}

TEST(IcePoll, ReturnsEintrWhenASignalInterruptsTheWait) {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = on_signal;  // no SA_RESTART (epoll_wait never restarts anyway)
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
  Pair p;
  std::atomic<int> result{0};
  std::atomic<int> error{0};
  std::atomic<bool> started{false};
  std::thread waiter([&] {
    GPollFD fd = in(p.fd[0]);
    started = true;
    int r = epoll_poll(&fd, 1, 10000);
    error = errno;
    result = r;
  });
  while (!started) g_usleep(1000);
  gint64 start = g_get_monotonic_time();
  // Signal until the wait returns (it may not have entered epoll_wait at the first one).
  while (result == 0 && elapsed_ms(start) < 5000) {
    g_usleep(20 * 1000);
    pthread_kill(waiter.native_handle(), SIGUSR2);
  }
  waiter.join();
  sigaction(SIGUSR2, &old, nullptr);
  EXPECT_EQ(result, -1);
  EXPECT_EQ(error, EINTR);
  EXPECT_LT(elapsed_ms(start), 5000);
}

TEST(IcePoll, FollowsFdsAddedAndRemovedBetweenCalls) {
  Pair a;
  Pair b;
  Pair c;
  std::vector<GPollFD> fds = {in(a.fd[0]), in(b.fd[0])};
  b.send();
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 1000), 1);
  EXPECT_EQ(fds[1].revents, G_IO_IN);
  // b leaves the array (still readable: must not be reported), c joins and is ready.
  fds = {in(a.fd[0]), in(c.fd[0])};
  c.send();
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 1000), 1);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_EQ(fds[1].revents, G_IO_IN);
  // The same fd twice with different events: each entry gets its own.
  fds = {in(c.fd[0]), GPollFD{c.fd[0], G_IO_OUT, 0}};
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 1000), 2);
  EXPECT_EQ(fds[0].revents, G_IO_IN);
  EXPECT_EQ(fds[1].revents, G_IO_OUT);
  // Negative fds are ignored, as poll() does.
  fds = {GPollFD{-1, G_IO_IN, 0}, in(a.fd[0])};
  a.send();
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 1000), 1);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_EQ(fds[1].revents, G_IO_IN);
}

// The case GLib's array cannot show: a source's fd closed and its number taken by a new socket
// between two calls, the array unchanged. The kernel dropped the old registration; the poller must
// watch the new socket within kRevalidateMs.
TEST(IcePoll, WatchesANewSocketThatReusedAWatchedFdNumber) {
  Pair old_pair;
  Pair other;
  std::vector<GPollFD> fds = {in(old_pair.fd[0]), in(other.fd[0])};
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 0), 0);
  int number = old_pair.fd[0];
  Pair fresh;
  // Close the watched socket and put the new one at its number (dup2 closes the old file).
  ASSERT_EQ(dup2(fresh.fd[0], number), number);
  close(fresh.fd[0]);
  fresh.fd[0] = number;
  old_pair.fd[0] = -1;
  fresh.send();
  gint64 start = g_get_monotonic_time();
  gint r = 0;
  while (r == 0 && elapsed_ms(start) < 3000) r = epoll_poll(fds.data(), fds.size(), 3000);
  EXPECT_EQ(r, 1);
  EXPECT_EQ(fds[0].revents, G_IO_IN);
  EXPECT_LT(elapsed_ms(start), rtgw::webrtc::kRevalidateMs + 1000);
}

TEST(IcePoll, AnswersAsPollForClosedFdsAndRegularFiles) {
  char path[] = "/tmp/rtgw-ice-poll-XXXXXX";
  int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  Pair p;
  int closed = dup(p.fd[0]);
  ASSERT_GE(closed, 0);
  std::vector<GPollFD> fds = {in(p.fd[0]), in(file), in(closed)};
  // First call: all three watchable or classified.
  ASSERT_EQ(epoll_poll(fds.data(), fds.size(), 5000), 1);
  EXPECT_EQ(fds[1].revents, G_IO_IN);  // a regular file is always readable
  close(closed);
  gint64 start = g_get_monotonic_time();
  // Now closed behind the poller's back (a dup, so epoll keeps the registration of the file that
  // is still open): reported G_IO_NVAL within the revalidation bound, never a hang.
  gint r = epoll_poll(fds.data(), fds.size(), 5000);
  while (fds[2].revents == 0 && elapsed_ms(start) < 3000) {
    g_usleep(10 * 1000);
    r = epoll_poll(fds.data(), fds.size(), 5000);
  }
  EXPECT_GE(r, 2);
  EXPECT_EQ(fds[2].revents, G_IO_NVAL);
  EXPECT_LT(elapsed_ms(start), rtgw::webrtc::kRevalidateMs + 1000);
  close(file);
}

// Through a GMainContext, as `rtgw-ice` runs: unix-fd sources attached and destroyed from another
// thread while the context sleeps in the poll function, and timers, all dispatched.
TEST(IcePoll, DrivesAGMainContextWithSourcesComingAndGoing) {
  GMainContext* context = g_main_context_new();
  rtgw::webrtc::use_epoll_poll(context);
  GMainLoop* loop = g_main_loop_new(context, FALSE);
  std::thread runner([&] {
    g_main_context_push_thread_default(context);
    g_main_loop_run(loop);
    g_main_context_pop_thread_default(context);
  });
  std::atomic<int> dispatched{0};
  auto on_ready = [](gint fd, GIOCondition, gpointer data) -> gboolean {
    char buf[16];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    static_cast<std::atomic<int>*>(data)->fetch_add(1);
    return G_SOURCE_CONTINUE;
  };
  auto wait_for = [&](int count) {
    gint64 start = g_get_monotonic_time();
    while (dispatched < count && elapsed_ms(start) < 3000) g_usleep(1000);
    return dispatched.load();
  };
  gint64 slowest_ms = 0;
  for (int round = 0; round < 20; ++round) {
    Pair p;
    GSource* source = g_unix_fd_source_new(p.fd[0], G_IO_IN);
    g_source_set_callback(source, G_SOURCE_FUNC(+on_ready), &dispatched, nullptr);
    g_source_attach(source, context);
    int before = dispatched;
    p.send();
    gint64 sent = g_get_monotonic_time();
    EXPECT_EQ(wait_for(before + 1), before + 1) << "round " << round;
    // The attach woke the context: the poller re-checks its set then, not kRevalidateMs later.
    slowest_ms = std::max(slowest_ms, elapsed_ms(sent));
    g_source_destroy(source);
    g_source_unref(source);
    // p closes here; the next round's socketpair usually reuses its numbers.
  }
  EXPECT_LT(slowest_ms, rtgw::webrtc::kRevalidateMs - 50);
  // A timer still fires on time with no fd ready.
  std::atomic<bool> fired{false};
  gint64 start = g_get_monotonic_time();
  GSource* timer = g_timeout_source_new(150);
  g_source_set_callback(
      timer,
      [](gpointer data) -> gboolean {
        static_cast<std::atomic<bool>*>(data)->store(true);
        return G_SOURCE_REMOVE;
      },
      &fired, nullptr);
  g_source_attach(timer, context);
  g_source_unref(timer);
  while (!fired && elapsed_ms(start) < 3000) g_usleep(1000);
  EXPECT_TRUE(fired);
  EXPECT_GE(elapsed_ms(start), 149);
  g_main_loop_quit(loop);
  g_main_context_wakeup(context);
  runner.join();
  g_main_loop_unref(loop);
  g_main_context_unref(context);
}

}  // namespace
