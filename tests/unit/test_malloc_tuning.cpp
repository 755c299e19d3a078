// SPDX-License-Identifier: MIT
// The GLIBC_TUNABLES value the gateway re-executes with (app/malloc_tuning.h): the per-thread
// cache cap is added, an operator's own tcache setting wins, and RTGW_MALLOC_TCACHE_MAX is read.
#include <gtest/gtest.h>

#include "app/malloc_tuning.h"

namespace {

using rtgw::app::kDefaultTcacheMaxBytes;
using rtgw::app::tcache_choice;
using rtgw::app::tunables_with_tcache_max;

TEST(MallocTuning, DefaultCapIsAddedToAnUnsetOrForeignValue) {
  EXPECT_EQ(tunables_with_tcache_max(nullptr, 64), "glibc.malloc.tcache_max=64");
  EXPECT_EQ(tunables_with_tcache_max("", 64), "glibc.malloc.tcache_max=64");
  EXPECT_EQ(tunables_with_tcache_max("glibc.malloc.check=3", 64),
            "glibc.malloc.check=3:glibc.malloc.tcache_max=64");
  // A name that only starts like ours is not ours.
  EXPECT_EQ(tunables_with_tcache_max("glibc.malloc.tcache_maxx=5", 0),
            "glibc.malloc.tcache_maxx=5:glibc.malloc.tcache_max=0");
}

TEST(MallocTuning, OperatorsOwnTcacheSettingWinsAndNothingChanges) {
  EXPECT_EQ(tunables_with_tcache_max("glibc.malloc.tcache_max=512", 64), std::nullopt);
  EXPECT_EQ(tunables_with_tcache_max("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0", 64),
            std::nullopt);
  // After the re-exec the value is there: no second re-exec.
  EXPECT_EQ(tunables_with_tcache_max(tunables_with_tcache_max(nullptr, 64)->c_str(), 64),
            std::nullopt);
}

TEST(MallocTuning, GlibcChoiceLeavesTheEnvironmentAlone) {
  EXPECT_EQ(tunables_with_tcache_max(nullptr, std::nullopt), std::nullopt);
  EXPECT_EQ(tunables_with_tcache_max("glibc.malloc.check=3", std::nullopt), std::nullopt);
}

TEST(MallocTuning, ChoiceFromTheEnvironment) {
  EXPECT_EQ(tcache_choice(nullptr).max_bytes, kDefaultTcacheMaxBytes);
  EXPECT_EQ(tcache_choice("").max_bytes, kDefaultTcacheMaxBytes);
  EXPECT_EQ(tcache_choice("glibc").max_bytes, std::nullopt);
  EXPECT_EQ(tcache_choice("0").max_bytes, 0);
  EXPECT_EQ(tcache_choice("1032").max_bytes, 1032);
  EXPECT_TRUE(tcache_choice("256").error.empty());
  for (const char* bad : {"1033", "-1", "64k", "x", " 64"}) {
    const auto c = tcache_choice(bad);
    EXPECT_EQ(c.max_bytes, kDefaultTcacheMaxBytes) << bad;
    EXPECT_NE(c.error.find("RTGW_MALLOC_TCACHE_MAX"), std::string::npos) << bad;
  }
}

}  // namespace
