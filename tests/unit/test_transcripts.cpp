// SPDX-License-Identifier: MIT
// transcripts::TranscriptStore and TranscriptCapture (JSONL mode): which calls are transcribed,
// what a capture stores from the worker's events (roles, ids, turns, the beta name), the JSONL
// line and its read-back with the owner check; and with_input_transcription.
#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/ref.h"
#include "transcripts/transcript_store.h"

namespace rtgw::transcripts {
namespace {

struct TempLog {
  std::string dir;
  std::string path;
  TempLog() {
    UniqueStr d(g_dir_make_tmp("rtgw-transcripts-XXXXXX", nullptr));
    dir = d.get();
    path = dir + "/t.jsonl";
  }
  ~TempLog() {
    g_unlink(path.c_str());
    g_rmdir(dir.c_str());
  }
  std::vector<Entry> lines() const {
    std::vector<Entry> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
      if (auto e = parse_json_line(line)) out.push_back(*e);
    return out;
  }
};

config::TranscriptsConfig config_for(std::vector<std::string> keys,
                                     std::vector<std::string> models) {
  config::TranscriptsConfig c;
  c.keys = std::move(keys);
  c.models = std::move(models);
  return c;
}

// Runs the main context until `done` or 5 s.
template <typename F>
void spin_until(F done) {
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  while (!done() && g_get_monotonic_time() < deadline) g_main_context_iteration(nullptr, FALSE);
}

TEST(TranscriptStore, KeyOrModelPatternsDecide) {
  auto store = std::make_shared<TranscriptStore>(config_for({"team-*"}, {"gpt-rt?"}), "");
  EXPECT_TRUE(store->wants("team-a", "other"));
  EXPECT_TRUE(store->wants("ops", "gpt-rt1"));
  EXPECT_FALSE(store->wants("ops", "gpt-realtime"));
  EXPECT_EQ(store->capture_for("rtc_1", "ops", "other"), nullptr) << "not transcribed";
  EXPECT_FALSE(store->knows("rtc_1"));
  EXPECT_NE(store->capture_for("rtc_2", "team-b", "other"), nullptr);
  EXPECT_TRUE(store->knows("rtc_2"));
}

TEST(TranscriptCapture, StoresBothRolesWithTurnsInOrder) {
  TempLog log;
  auto store = std::make_shared<TranscriptStore>(config_for({"*"}, {}), log.path);
  auto capture = store->capture_for("rtc_1", "team-a", "gpt-realtime");
  ASSERT_NE(capture, nullptr);
  // Turn 1: the input is committed before the response, its transcription arrives after
  // response.created (asynchronous transcription) and still belongs to turn 1.
  capture->on_upstream_event(R"({"type":"input_audio_buffer.committed","item_id":"item_u1"})");
  capture->on_upstream_event(R"({"type":"response.created","response":{"id":"resp_1"}})");
  capture->on_upstream_event(
      R"({"type":"conversation.item.input_audio_transcription.completed","item_id":"item_u1",)"
      R"("content_index":0,"transcript":"Hello there."})");
  capture->on_upstream_event(
      R"({"type":"response.output_audio_transcript.delta","response_id":"resp_1","delta":"Hi"})");
  capture->on_upstream_event(
      R"({"type":"response.output_audio_transcript.done","response_id":"resp_1",)"
      R"("item_id":"item_a1","transcript":"Hi!"})");
  // Turn 2, the beta name of the output transcript; unrelated events store nothing.
  capture->on_upstream_event(R"({"type":"session.updated","session":{"x":"transcript"}})");
  capture->on_upstream_event(R"({"type":"response.created","response":{"id":"resp_2"}})");
  capture->on_upstream_event(
      R"({"type":"response.audio_transcript.done","response_id":"resp_2","item_id":"item_a2",)"
      R"("transcript":"Bye \"now\"."})");
  capture->on_upstream_event("not json, transcript");

  auto lines = log.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].role, "user");
  EXPECT_EQ(lines[0].turn, 1);
  EXPECT_EQ(lines[0].item_id, "item_u1");
  EXPECT_EQ(lines[0].response_id, "");
  EXPECT_EQ(lines[0].text, "Hello there.");
  EXPECT_EQ(lines[1].role, "assistant");
  EXPECT_EQ(lines[1].turn, 1);
  EXPECT_EQ(lines[1].response_id, "resp_1");
  EXPECT_EQ(lines[1].item_id, "item_a1");
  EXPECT_EQ(lines[2].turn, 2);
  EXPECT_EQ(lines[2].text, "Bye \"now\".");
  for (const auto& e : lines) {
    EXPECT_EQ(e.call_id, "rtc_1");
    EXPECT_EQ(e.key_name, "team-a");
    EXPECT_EQ(e.model, "gpt-realtime");
    EXPECT_GT(e.at, 1.7e9);
  }

  // Read back: the owner and admins-by-predicate see it, others do not.
  std::optional<Transcript> got;
  store->read(
      "rtc_1", [](const std::string& owner) { return owner == "team-a"; },
      [&](Transcript t) { got = std::move(t); });
  spin_until([&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->model, "gpt-realtime");
  ASSERT_EQ(got->entries.size(), 3u);
  EXPECT_EQ(got->entries[2].text, "Bye \"now\".");
  got.reset();
  store->read(
      "rtc_1", [](const std::string&) { return false; }, [&](Transcript t) { got = std::move(t); });
  spin_until([&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->found);

  // A store of a later run (owner not remembered) takes the owner from the lines.
  auto later = std::make_shared<TranscriptStore>(config_for({"*"}, {}), log.path);
  got.reset();
  later->read(
      "rtc_1", [](const std::string& owner) { return owner == "team-a"; },
      [&](Transcript t) { got = std::move(t); });
  spin_until([&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->entries.size(), 3u);
  got.reset();
  later->read(
      "rtc_unknown", [](const std::string&) { return true; },
      [&](Transcript t) { got = std::move(t); });
  spin_until([&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->found);
}

TEST(TranscriptStore, InputTranscriptionKeepsTheClientsChoice) {
  auto bare = with_input_transcription(std::nullopt, "gpt-realtime", "whisper-1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(*bare, R"({"type":"realtime","model":"gpt-realtime",)"
                   R"("audio":{"input":{"transcription":{"model":"whisper-1"}}}})");
  auto added = with_input_transcription(
      std::string(R"({"type":"realtime","audio":{"output":{"voice":"alloy"}}})"), "m", "stt");
  ASSERT_TRUE(added);
  EXPECT_NE(added->find(R"("input":{"transcription":{"model":"stt"}})"), std::string::npos)
      << *added;
  EXPECT_NE(added->find(R"("voice":"alloy")"), std::string::npos) << *added;
  EXPECT_FALSE(with_input_transcription(
      std::string(R"({"audio":{"input":{"transcription":null}}})"), "m", "stt"))
      << "an explicit null is the client's choice";
  EXPECT_FALSE(with_input_transcription(
      std::string(R"({"audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}})"), "m",
      "stt"));
  EXPECT_FALSE(with_input_transcription(std::string("[1]"), "m", "stt"));
}

TEST(TranscriptStore, ConfigDefaultsAndLogPath) {
  auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  const std::string models = R"("models":[{"name":"echo","workers":[{"provider":"echo"}]}])";
  EXPECT_EQ(TranscriptStore::log_path_for(config::load_from_text(
                "{" + models + R"(,"transcripts":{"keys":["*"]}})", "t.json", {}, no_env)),
            "")
      << "no usage log: nowhere (the gateway warns at start-up)";
  auto c = config::load_from_text(
      "{" + models + R"(,"usage":{"log":"u.jsonl"},"transcripts":{"models":["e*"]}})", "t.json", {},
      no_env);
  EXPECT_EQ(TranscriptStore::log_path_for(c), "u.jsonl.transcripts.jsonl");
  EXPECT_FALSE(c.transcripts.enable_input_transcription);
  EXPECT_EQ(c.transcripts.input_transcription_model, "gpt-4o-mini-transcribe");
}

}  // namespace
}  // namespace rtgw::transcripts
