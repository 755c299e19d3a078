// SPDX-License-Identifier: MIT
// Test entry point for the rtevents element tests: initializes GStreamer and registers the
// statically linked plugin before running the tests.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include "rtevents/rtevents.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  gst_init(&argc, &argv);
  rtevents_register_static();
  const int result = RUN_ALL_TESTS();
  gst_deinit();
  return result;
}
