// SPDX-License-Identifier: MIT
// Outgoing queue accounting towards a WebSocket peer that may not read (common/websocket).
#include <gtest/gtest.h>

#include "common/websocket.h"

namespace {

using rtgw::OutgoingBacklog;
using rtgw::websocket_frame_bytes;

TEST(OutgoingBacklog, FrameBytesFollowRfc6455Lengths) {
  EXPECT_EQ(websocket_frame_bytes(0, false), 2u);
  EXPECT_EQ(websocket_frame_bytes(125, false), 127u);
  EXPECT_EQ(websocket_frame_bytes(126, false), 130u);
  EXPECT_EQ(websocket_frame_bytes(65535, false), 65539u);
  EXPECT_EQ(websocket_frame_bytes(65536, false), 65546u);
  EXPECT_EQ(websocket_frame_bytes(10, true), 16u);  // a client's frames carry a 4-byte mask
}

TEST(OutgoingBacklog, KernelCountTellsWhatStillWaits) {
  OutgoingBacklog b(1000);
  b.sync(false, 5000);  // 5000 bytes written before (the handshake): the baseline
  EXPECT_TRUE(b.admit(600));
  b.sync(false, 5000);  // the kernel took nothing yet
  EXPECT_EQ(b.backlog(), 600u);
  EXPECT_FALSE(b.admit(500));  // 1100 > 1000: refused, not counted
  EXPECT_EQ(b.backlog(), 600u);
  b.sync(false, 5400);  // the kernel took 400
  EXPECT_EQ(b.backlog(), 200u);
  EXPECT_TRUE(b.admit(800));
  EXPECT_EQ(b.backlog(), 1000u);
  EXPECT_FALSE(b.admit(1));
}

TEST(OutgoingBacklog, AStuckPeerOverflowsWhateverTheWritability) {
  // Writability does not reset the count when the kernel's total is known: a reader that takes
  // a little now and then, slower than the sender, still overflows.
  OutgoingBacklog b(10000);
  b.sync(false, 0);
  std::uint64_t written = 0;
  int admitted = 0;
  for (int i = 0; i < 100; i++) {
    written += 50;  // the peer reads 50 bytes per message sent
    b.sync(i % 2 == 0, written);
    if (!b.admit(500)) break;
    admitted++;
  }
  EXPECT_LT(admitted, 30);  // 450 bytes gained per message: past 10000 after ~22
  EXPECT_GT(admitted, 15);
}

TEST(OutgoingBacklog, AFastReaderNeverOverflowsAndOverheadDoesNotAccumulate) {
  OutgoingBacklog b(1000);
  b.sync(false, 0);
  std::uint64_t written = 0;
  for (int i = 0; i < 100000; i++) {
    b.sync(false, written);
    ASSERT_TRUE(b.admit(900)) << i;
    written += 930;  // everything, plus TLS records and pings the count cannot tell apart
  }
  // Extra bytes the kernel took never count as credit for later messages.
  b.sync(false, written);
  EXPECT_TRUE(b.admit(1000));
  EXPECT_FALSE(b.admit(1));
}

TEST(OutgoingBacklog, WithoutAByteCountWritabilityResets) {
  OutgoingBacklog b(1000);
  b.sync(false, std::nullopt);
  EXPECT_TRUE(b.admit(700));
  b.sync(false, std::nullopt);
  EXPECT_FALSE(b.admit(400));
  b.sync(true, std::nullopt);  // the socket takes bytes again: libsoup's queue is emptying
  EXPECT_TRUE(b.admit(900));
}

}  // namespace
