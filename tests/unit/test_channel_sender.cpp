// SPDX-License-Identifier: MIT
// ChannelSender (calls/channel_sender.h): events sent from the event path's streaming thread keep
// their order with those the main loop handles, and the bounds hold on the direct path too.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "calls/channel_sender.h"

namespace {

using rtgw::calls::ChannelSender;

// A wire that records what it carried; `buffered` is what the peer has not taken yet.
struct FakeWire : ChannelSender::Wire {
  std::vector<std::string>* out;
  std::uint64_t* buffered;
  bool* refuse;
  FakeWire(std::vector<std::string>* o, std::uint64_t* b, bool* r)
      : out(o), buffered(b), refuse(r) {}
  bool send(const std::string& text, std::string* why) override {
    if (*refuse) {
      if (why) *why = "channel is not open";
      return false;
    }
    out->push_back(text);
    return true;
  }
  std::uint64_t buffered_amount() override { return *buffered; }
};

struct Fixture {
  std::vector<std::string> wire;
  std::uint64_t buffered = 0;
  bool refuse = false;
  ChannelSender sender{100, 1000};
  // What the main loop was handed (the event path's post), in order.
  std::deque<std::string> main_loop;

  void open(bool direct = true) {
    sender.open(std::make_unique<FakeWire>(&wire, &buffered, &refuse));
    if (direct) sender.allow_direct();
  }
  // The appsink's callback: direct, or posted.
  void leave_path(const std::string& text) {
    if (!sender.try_send(text)) main_loop.push_back(text);
  }
  // The main loop handles one posted event as Call::OnPathEvent does (sends it, bounded), then
  // settles it.
  ChannelSender::Result run_main_loop_once() {
    std::string text = main_loop.front();
    main_loop.pop_front();
    auto r = sender.send(text, true, nullptr);
    sender.settled();
    return r;
  }
};

TEST(ChannelSender, SendsDirectlyOnceOpenAndAllowed) {
  Fixture f;
  f.leave_path("a");  // not open: to the main loop
  EXPECT_EQ(f.main_loop.size(), 1u);
  f.open(false);
  f.run_main_loop_once();
  f.leave_path("b");  // open, but the direct path not allowed yet (the pending queue first)
  EXPECT_EQ(f.main_loop.size(), 1u);
  f.run_main_loop_once();
  f.sender.allow_direct();
  f.leave_path("c");
  EXPECT_TRUE(f.main_loop.empty());
  EXPECT_EQ(f.wire, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(f.sender.sent(), 3u);
  EXPECT_EQ(f.sender.sent_direct(), 1u);
}

TEST(ChannelSender, AnEventForTheMainLoopHoldsEveryLaterOneBehindIt) {
  Fixture f;
  f.sender.set_prepare([](const std::string& t) {
    return t.rfind("slow", 0) == 0 ? std::nullopt : std::optional<std::string>(t);
  });
  f.open();
  f.leave_path("1");
  f.leave_path("slow-2");  // e.g. a response.create: the budget decides on the main loop
  f.leave_path("3");       // direct would overtake it: it queues behind
  f.leave_path("4");
  EXPECT_EQ(f.wire, (std::vector<std::string>{"1"}));
  ASSERT_EQ(f.main_loop.size(), 3u);
  while (!f.main_loop.empty()) f.run_main_loop_once();
  f.leave_path("5");  // all settled: direct again
  EXPECT_TRUE(f.main_loop.empty());
  EXPECT_EQ(f.wire, (std::vector<std::string>{"1", "slow-2", "3", "4", "5"}));
  EXPECT_EQ(f.sender.sent_direct(), 2u);
}

TEST(ChannelSender, PrepareRewritesWhatIsSent) {
  Fixture f;
  f.sender.set_prepare(
      [](const std::string& t) { return std::optional<std::string>("beta:" + t); });
  f.open();
  f.leave_path("x");
  EXPECT_EQ(f.wire, (std::vector<std::string>{"beta:x"}));
}

TEST(ChannelSender, BackpressureIsStillRefusedOnTheDirectPath) {
  Fixture f;
  f.open();
  f.buffered = 950;                    // the peer does not read
  f.leave_path(std::string(60, 'x'));  // 1010 > 1000: not sent directly
  EXPECT_TRUE(f.wire.empty());
  ASSERT_EQ(f.main_loop.size(), 1u);
  EXPECT_EQ(f.run_main_loop_once(), ChannelSender::Result::kBackpressure);  // refused there
  EXPECT_TRUE(f.wire.empty());
  f.buffered = 0;  // it reads again
  f.leave_path("y");
  EXPECT_EQ(f.wire, (std::vector<std::string>{"y"}));
}

TEST(ChannelSender, TooLargeGoesToTheMainLoop) {
  Fixture f;
  f.open();
  f.leave_path(std::string(101, 'x'));  // over max_message_bytes: the main loop refuses it
  EXPECT_TRUE(f.wire.empty());
  EXPECT_EQ(f.main_loop.size(), 1u);
}

TEST(ChannelSender, AFailedDirectSendGoesToTheMainLoop) {
  Fixture f;
  f.open();
  f.refuse = true;  // webrtcbin closed the channel before we heard
  f.leave_path("a");
  EXPECT_EQ(f.main_loop.size(), 1u);
  EXPECT_EQ(f.run_main_loop_once(), ChannelSender::Result::kFailed);
}

TEST(ChannelSender, StopDirectAndCloseSendNothingMoreFromStreamingThreads) {
  Fixture f;
  f.open();
  f.sender.stop_direct();
  f.leave_path("a");
  EXPECT_TRUE(f.wire.empty());
  f.run_main_loop_once();
  f.sender.allow_direct();  // stopped for good
  f.leave_path("b");
  EXPECT_EQ(f.main_loop.size(), 1u);
  f.run_main_loop_once();
  f.sender.close();
  EXPECT_EQ(f.sender.send("c", true, nullptr), ChannelSender::Result::kFailed);
  EXPECT_EQ(f.wire, (std::vector<std::string>{"a", "b"}));
}

TEST(ChannelSender, ConcurrentDirectAndMainLoopSendsKeepEachDirectionsOrder) {
  // One streaming thread leaves 2000 numbered events on the path, every 7th for the main loop,
  // which this thread plays; the wire must carry 0..1999 in order.
  Fixture f;
  f.sender.set_prepare([](const std::string& t) {
    return std::stoi(t) % 7 == 0 ? std::nullopt : std::optional<std::string>(t);
  });
  f.open();
  std::mutex m;
  std::deque<std::string> posted;
  std::atomic<bool> done{false};
  std::thread streaming([&] {
    for (int i = 0; i < 2000; i++) {
      if (i % 100 == 50)  // now and then let the main loop catch up, so both paths run
        for (int spin = 0; spin < 100000; spin++) {
          {
            std::lock_guard l(m);
            if (posted.empty()) break;
          }
          std::this_thread::yield();
        }
      std::string t = std::to_string(i);
      if (!f.sender.try_send(t)) {
        std::lock_guard l(m);
        posted.push_back(t);
      }
    }
    done = true;
  });
  for (;;) {
    std::string t;
    {
      std::lock_guard l(m);
      if (posted.empty()) {
        if (done) break;
        std::this_thread::yield();
        continue;
      }
      t = posted.front();
      posted.pop_front();
    }
    f.sender.send(t, true, nullptr);
    f.sender.settled();
  }
  streaming.join();
  ASSERT_EQ(f.wire.size(), 2000u);
  for (int i = 0; i < 2000; i++) ASSERT_EQ(f.wire[i], std::to_string(i));
  EXPECT_GT(f.sender.sent_direct(), 0u);
}

}  // namespace
