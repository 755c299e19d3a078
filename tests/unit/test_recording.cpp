// SPDX-License-Identifier: MIT
// Recording (recording/): which calls are recorded, file names, the sidecar, the retention sweep,
// and the recording config keys.
#include <glib.h>
#include <glib/gstdio.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/rtp/gstrtpbuffer.h>
#include <gtest/gtest.h>
#include <utime.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/ref.h"
#include "config/config.h"
#include "recording/call_recorder.h"
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

// ---- CallRecorder on a real pipeline: two named heads fed with Opus RTP packets.
namespace recorder_test {

using rtgw::Ref;
using rtgw::recording::CallRecorder;

constexpr int kPackets = 100;  // 2 s of 20 ms packets

struct Pipeline {
  Ref<GstElement> pipeline;
  Pipeline() {
    gst_init(nullptr, nullptr);
    const char* caps =
        "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=111";
    std::string description;
    for (const char* dir : {"client", "upstream"})
      description += std::string("appsrc name=feed_") + dir + " is-live=true format=time caps=\"" +
                     caps + "\" ! identity name=" + dir + "_audio_in ! fakesink name=sink_" + dir +
                     " sync=false async=false ";
    pipeline = Ref<GstElement>::sink(gst_parse_launch(description.c_str(), nullptr));
  }
  ~Pipeline() { gst_element_set_state(pipeline.get(), GST_STATE_NULL); }
  // Packets whose RTP timestamps advance 20 ms each but which "arrive" 1 ms apart (a burst):
  // the file must follow the RTP clock.
  void feed(const char* direction) {
    auto src = Ref<GstElement>::adopt(
        gst_bin_get_by_name(GST_BIN(pipeline.get()), (std::string("feed_") + direction).c_str()));
    for (int i = 0; i < kPackets; i++) {
      GstBuffer* buffer = gst_rtp_buffer_new_allocate(8, 0, 0);
      GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
      gst_rtp_buffer_map(buffer, GST_MAP_WRITE, &rtp);
      gst_rtp_buffer_set_payload_type(&rtp, 111);
      gst_rtp_buffer_set_seq(&rtp, static_cast<guint16>(1000 + i));
      gst_rtp_buffer_set_timestamp(&rtp, 4294000000u + static_cast<guint32>(i) * 960u);  // wraps
      gst_rtp_buffer_set_ssrc(&rtp, 1234);
      guint8* payload = static_cast<guint8*>(gst_rtp_buffer_get_payload(&rtp));
      payload[0] = 0xF8;  // Opus TOC: CELT fullband 20 ms, mono, one frame
      for (int j = 1; j < 8; j++) payload[j] = static_cast<guint8>(j);
      gst_rtp_buffer_unmap(&rtp);
      GST_BUFFER_PTS(buffer) = GST_SECOND + i * GST_MSECOND;
      ASSERT_EQ(gst_app_src_push_buffer(GST_APP_SRC(src.get()), buffer), GST_FLOW_OK);
    }
  }
};

template <typename F>
bool spin_until(F done, int timeout_ms) {
  gint64 end = g_get_monotonic_time() + gint64{timeout_ms} * 1000;
  while (!done() && g_get_monotonic_time() < end) {
    g_main_context_iteration(nullptr, FALSE);
    g_usleep(1000);
  }
  return done();
}

// The Ogg pages of a file: (header type, granule position) of each.
std::vector<std::pair<int, gint64>> ogg_pages(const std::string& path) {
  std::vector<std::pair<int, gint64>> pages;
  gchar* raw = nullptr;
  gsize n = 0;
  if (!g_file_get_contents(path.c_str(), &raw, &n, nullptr)) return pages;
  rtgw::UniqueStr owned(raw);
  auto* d = reinterpret_cast<const guint8*>(raw);
  for (gsize at = 0; at + 27 <= n;) {
    if (memcmp(d + at, "OggS", 4) != 0) break;
    gint64 granule = 0;
    for (int i = 7; i >= 0; i--) granule = (granule << 8) | d[at + 6 + i];
    int segments = d[at + 26];
    if (at + 27 + segments > n) break;
    gsize body = 0;
    for (int i = 0; i < segments; i++) body += d[at + 27 + i];
    pages.emplace_back(d[at + 5], granule);
    at += 27 + segments + body;
  }
  return pages;
}

std::vector<CallRecorder::Direction> heads() {
  return {{"client", "client_audio_in"}, {"upstream", "upstream_audio_in"}};
}

TEST_F(RecordingDir, RecorderWritesCompleteOggTimedByRtp) {
  Pipeline p;
  ASSERT_TRUE(p.pipeline);
  CallRecorder recorder(p.pipeline.get(), {dir_, "rtc_unit", "team-a", "m"}, heads());
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  recorder.start(p.pipeline.get());
  p.feed("client");
  p.feed("upstream");
  // Every packet passed the heads (the relay side); then the hang-up.
  auto sink = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(p.pipeline.get()), "sink_client"));
  ASSERT_TRUE(spin_until(
      [&] {
        GstSample* last = nullptr;
        g_object_get(sink.get(), "last-sample", &last, nullptr);
        bool seen = last != nullptr;
        if (last) gst_sample_unref(last);
        return seen;
      },
      2000));
  g_usleep(200 * 1000);  // the branch threads drain their appsrc
  bool done = false;
  gint64 t0 = g_get_monotonic_time();
  ASSERT_TRUE(recorder.wait_finished(5000, [&] { done = true; }));
  ASSERT_TRUE(spin_until([&] { return done; }, 6000));
  EXPECT_LT(g_get_monotonic_time() - t0, 4 * G_USEC_PER_SEC) << "waited for the bound";
  std::string text = recorder.describe().str();
  EXPECT_NE(text.find("\"client\":\"finished\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"upstream\":\"finished\""), std::string::npos) << text;
  for (const char* direction : {"client", "upstream"}) {
    auto pages = ogg_pages(audio_path(dir_, "rtc_unit", direction));
    ASSERT_GE(pages.size(), 3u) << direction;  // OpusHead, OpusTags, audio
    // the last page ends the stream, and its granule position is 2 s of 48 kHz samples: the
    // RTP clock's (the burst arrived within 0.1 s), across the RTP timestamp's wrap-around
    EXPECT_TRUE(pages.back().first & 0x04) << direction << ": no EOS page";
    EXPECT_NEAR(pages.back().second, kPackets * 960, 960) << direction;
  }
}

TEST_F(RecordingDir, RecorderOfACallWithoutAudioFinishesAtOnce) {
  Pipeline p;
  {
    CallRecorder never_started(p.pipeline.get(), {dir_, "rtc_early", "team-a", "m"}, heads());
    EXPECT_FALSE(never_started.wait_finished(5000, [] {}));  // the call never started
  }
  Pipeline q;
  CallRecorder recorder(q.pipeline.get(), {dir_, "rtc_silent", "team-a", "m"}, heads());
  ASSERT_NE(gst_element_set_state(q.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  recorder.start(q.pipeline.get());
  bool done = false;
  gint64 t0 = g_get_monotonic_time();
  if (recorder.wait_finished(5000, [&] { done = true; })) {
    ASSERT_TRUE(spin_until([&] { return done; }, 6000));
  }
  EXPECT_LT(g_get_monotonic_time() - t0, 2 * G_USEC_PER_SEC) << "waited for the bound";
}

TEST_F(RecordingDir, RecorderBranchesAreFreedWithThePipeline) {
  bool freed[2] = {false, false};
  {
    Pipeline p;
    CallRecorder recorder(p.pipeline.get(), {dir_, "rtc_free", "team-a", "m"}, heads());
    ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    recorder.start(p.pipeline.get());
    p.feed("client");
    int i = 0;
    for (const char* name : {"recording_client", "recording_upstream"}) {
      GstElement* bin = gst_bin_get_by_name(GST_BIN(p.pipeline.get()), name);
      ASSERT_TRUE(bin);
      g_object_weak_ref(
          G_OBJECT(bin), [](gpointer flag, GObject*) { *static_cast<bool*>(flag) = true; },
          &freed[i++]);
      gst_object_unref(bin);
    }
  }  // the recorder first, then the pipeline (as a call: recorder gone, pipeline reaped)
  EXPECT_TRUE(freed[0] && freed[1]) << "a probe's reference keeps a recording bin alive";
}

TEST_F(RecordingDir, RecorderWaitIsBoundedWhenTheDiskIsStuck) {
  Pipeline p;
  CallRecorder recorder(p.pipeline.get(), {dir_, "rtc_stuck", "team-a", "m"}, heads());
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  recorder.start(p.pipeline.get());
  // The client file's writes hang (a blocked pad in front of its filesink, as a stuck disk).
  auto file = Ref<GstElement>::adopt(
      gst_bin_get_by_name(GST_BIN(p.pipeline.get()), "recording_client_file"));
  ASSERT_TRUE(file);
  auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(file.get(), "sink"));
  gulong block = gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM,
      [](GstPad*, GstPadProbeInfo*, gpointer) { return GST_PAD_PROBE_OK; }, nullptr, nullptr);
  p.feed("client");
  p.feed("upstream");
  g_usleep(200 * 1000);
  bool done = false;
  gint64 t0 = g_get_monotonic_time();
  ASSERT_TRUE(recorder.wait_finished(500, [&] { done = true; }));
  ASSERT_TRUE(spin_until([&] { return done; }, 5000));
  gint64 waited_ms = (g_get_monotonic_time() - t0) / 1000;
  EXPECT_GE(waited_ms, 450);
  EXPECT_LT(waited_ms, 3000);
  std::string text = recorder.describe().str();
  EXPECT_NE(text.find("\"client\":\"recording\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"upstream\":\"finished\""), std::string::npos) << text;
  gst_pad_remove_probe(pad.get(), block);
}

TEST_F(RecordingDir, RecorderThatCannotOpenItsFilesLeavesThePipelineRunning) {
  Pipeline p;
  std::uint64_t before = failures_total();
  CallRecorder recorder(p.pipeline.get(), {dir_ + "/missing/sub", "rtc_unit", "team-a", "m"},
                        heads());
  ASSERT_NE(gst_element_set_state(p.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  recorder.start(p.pipeline.get());
  EXPECT_EQ(failures_total(), before + 2);
  std::string text = recorder.describe().str();
  EXPECT_NE(text.find("\"client\":\"failed\""), std::string::npos) << text;
  p.feed("client");  // the heads still pass every packet
  GstState state = GST_STATE_NULL;
  gst_element_get_state(p.pipeline.get(), &state, nullptr, GST_SECOND);
  EXPECT_EQ(state, GST_STATE_PLAYING);
  bool done = false;
  EXPECT_FALSE(recorder.wait_finished(1000, [&] { done = true; }));  // nothing to wait for
  auto leftover =
      Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(p.pipeline.get()), "recording_client"));
  EXPECT_FALSE(leftover) << "a failed branch is removed from the pipeline";
}

}  // namespace recorder_test

}  // namespace
