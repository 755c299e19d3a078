// SPDX-License-Identifier: MIT
// Recording (recording/): which calls are recorded, file names, the sidecar, the retention sweep,
// and the recording config keys.
#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>
#include <utime.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "common/ref.h"
#include "config/config.h"
#include "recording/recording_plan.h"
#include "recording/retention.h"
#include "recording/sidecar.h"

namespace {

using namespace rtgw::recording;
using rtgw::config::RecordingConfig;

RecordingConfig config(std::vector<std::string> keys, std::vector<std::string> models) {
  RecordingConfig c;
  c.dir = "/var/rec";
  c.keys = std::move(keys);
  c.models = std::move(models);
  return c;
}

TEST(Recording, CallIsRecordedWhenItsKeyOrItsModelMatches) {
  auto c = config({"support-*"}, {"gpt-realtime"});
  auto by_key = plan_for(c, "support-eu", "gpt-mini", "rtc_1");
  ASSERT_TRUE(by_key);
  EXPECT_EQ(by_key->dir, "/var/rec");
  EXPECT_EQ(by_key->call_id, "rtc_1");
  EXPECT_EQ(by_key->key_name, "support-eu");
  EXPECT_EQ(by_key->model, "gpt-mini");
  EXPECT_TRUE(plan_for(c, "sales", "gpt-realtime", "rtc_2"));
  EXPECT_FALSE(plan_for(c, "sales", "gpt-realtime-mini", "rtc_3"));
  EXPECT_TRUE(plan_for(config({"*"}, {}), "anonymous", "echo", "rtc_4"));
}

TEST(Recording, OffWithoutDirOrPatterns) {
  EXPECT_FALSE(plan_for(config({}, {}), "a", "m", "rtc_1"));
  auto no_dir = config({"*"}, {"*"});
  no_dir.dir.clear();
  EXPECT_FALSE(plan_for(no_dir, "a", "m", "rtc_1"));
}

TEST(Recording, NamesAndIds) {
  EXPECT_EQ(audio_path("/r", "rtc_ab", "client"), "/r/rtc_ab.client.ogg");
  EXPECT_EQ(audio_path("/r", "rtc_ab", "upstream"), "/r/rtc_ab.upstream.ogg");
  EXPECT_EQ(sidecar_path("/r", "rtc_ab"), "/r/rtc_ab.json");
  EXPECT_TRUE(valid_direction("client"));
  EXPECT_TRUE(valid_direction("upstream"));
  EXPECT_FALSE(valid_direction("both"));
  EXPECT_FALSE(valid_direction(""));
  EXPECT_TRUE(valid_call_id("rtc_0123abcdef"));
  for (const char* bad : {"", "..", "rtc_1/../x", "rtc.1", "a b", "rtc_1\n"})
    EXPECT_FALSE(valid_call_id(bad)) << bad;
  EXPECT_TRUE(is_recording_file("rtc_1.client.ogg"));
  EXPECT_TRUE(is_recording_file("rtc_1.upstream.ogg"));
  EXPECT_TRUE(is_recording_file("rtc_1.json"));
  for (const char* other : {"notes.txt", ".json", "a.b.json", "rtc_1.ogg", "rtc_1.client.ogg.tmp"})
    EXPECT_FALSE(is_recording_file(other)) << other;
}

TEST(Recording, SidecarRoundTrip) {
  Sidecar s{"rtc_1", "team-a", "gpt-realtime", 1700000000000, 1700000005000};
  auto back = parse_sidecar(sidecar_json(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->call_id, "rtc_1");
  EXPECT_EQ(back->key_name, "team-a");
  EXPECT_EQ(back->model, "gpt-realtime");
  EXPECT_EQ(back->started_unix_ms, 1700000000000);
  EXPECT_EQ(back->ended_unix_ms, 1700000005000);
  EXPECT_FALSE(parse_sidecar("{\"call_id\":\"rtc_1\"}"));  // no owner: not answerable
  EXPECT_FALSE(parse_sidecar("[1]"));
  EXPECT_FALSE(parse_sidecar("{"));
}

class RecordingDir : public ::testing::Test {
 protected:
  void SetUp() override {
    rtgw::UniqueStr d(g_dir_make_tmp("rtgw-rec-XXXXXX", nullptr));
    ASSERT_TRUE(d);
    dir_ = d.get();
  }
  void TearDown() override {
    GDir* d = g_dir_open(dir_.c_str(), 0, nullptr);
    if (d) {
      while (const char* name = g_dir_read_name(d)) g_unlink((dir_ + "/" + name).c_str());
      g_dir_close(d);
    }
    g_rmdir(dir_.c_str());
  }
  void touch(const std::string& name, gint64 mtime) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "x";
    struct utimbuf times {
      static_cast<time_t>(mtime), static_cast<time_t>(mtime)
    };
    ASSERT_EQ(utime(path.c_str(), &times), 0);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    GDir* d = g_dir_open(dir_.c_str(), 0, nullptr);
    while (const char* name = g_dir_read_name(d)) out.push_back(name);
    g_dir_close(d);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string dir_;
};

TEST_F(RecordingDir, SweepRemovesOnlyOldRecordingFiles) {
  const gint64 now = 1800000000;
  const gint64 day = 86400;
  touch("rtc_old.client.ogg", now - 31 * day);
  touch("rtc_old.upstream.ogg", now - 31 * day);
  touch("rtc_old.json", now - 31 * day);
  touch("rtc_new.client.ogg", now - 29 * day);
  touch("rtc_new.json", now - 1);
  touch("notes.txt", now - 400 * day);     // not the gateway's: kept
  EXPECT_EQ(sweep_dir(dir_, 0, now), 0u);  // 0: kept for ever
  EXPECT_EQ(names().size(), 6u);
  EXPECT_EQ(sweep_dir(dir_, 30, now), 3u);
  EXPECT_EQ(names(), (std::vector<std::string>{"notes.txt", "rtc_new.client.ogg", "rtc_new.json"}));
  EXPECT_EQ(sweep_dir(dir_ + "/missing", 30, now), 0u);
}

TEST_F(RecordingDir, CheckDirCreatesAndRefuses) {
  std::string nested = dir_ + "/a";
  EXPECT_NO_THROW(check_dir(nested));
  EXPECT_TRUE(g_file_test(nested.c_str(), G_FILE_TEST_IS_DIR));
  g_rmdir(nested.c_str());
  touch("file", 1);
  EXPECT_THROW(check_dir(dir_ + "/file/sub"), std::runtime_error);
  try {
    check_dir(dir_ + "/file/sub");
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("recording.dir"), std::string::npos) << e.what();
  }
}

TEST(Recording, ConfigKeys) {
  auto c = rtgw::config::load_from_text(
      R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
          "recording": {"dir": "/srv/rec", "keys": ["support-*"], "models": ["gpt-*"],
                        "retention_days": 30}})",
      "test", {}, [](const std::string&) { return std::nullopt; });
  EXPECT_EQ(c.recording.dir, "/srv/rec");
  EXPECT_EQ(c.recording.keys, std::vector<std::string>{"support-*"});
  EXPECT_EQ(c.recording.models, std::vector<std::string>{"gpt-*"});
  EXPECT_EQ(c.recording.retention_days, 30);
  EXPECT_TRUE(c.recording.enabled());
  EXPECT_THROW(rtgw::config::load_from_text(
                   R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}],
                       "recording": {"retention_days": -1}})",
                   "test", {}, [](const std::string&) { return std::nullopt; }),
               rtgw::config::ConfigError);
  auto env = rtgw::config::load_from_text(
      R"({"models": [{"name": "echo", "workers": [{"provider": "echo"}]}]})", "test", {},
      [](const std::string& name) -> std::optional<std::string> {
        if (name == "RTGW_RECORDING_DIR") return "/env/rec";
        if (name == "RTGW_RECORDING_MODELS") return "a,b";
        return std::nullopt;
      });
  EXPECT_EQ(env.recording.dir, "/env/rec");
  EXPECT_EQ(env.recording.models, (std::vector<std::string>{"a", "b"}));
}

}  // namespace
