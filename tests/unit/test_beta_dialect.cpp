// SPDX-License-Identifier: MIT
// The beta <-> GA translation of sessions, responses, items and event names.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "auth/ephemeral_token.h"
#include "common/json.h"
#include "events/beta_dialect.h"

namespace {

namespace beta = rtgw::events::beta;
namespace json = rtgw::json;
using rtgw::Ref;

// Semantic JSON equality (member order does not matter).
::testing::AssertionResult same_json(const std::string& actual, const std::string& expected) {
  auto a = json::parse(actual);
  auto e = json::parse(expected);
  if (!a || !e) return ::testing::AssertionFailure() << "not JSON: " << actual << " / " << expected;
  if (json_node_equal(a.get(), e.get())) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\n  actual:   " << actual << "\n  expected: " << json::to_string(e.get());
}

std::string session_ga(const std::string& beta_session) {
  auto node = json::parse(beta_session);
  beta::session_to_ga(json_node_get_object(node.get()));
  return json::to_string(node.get());
}

std::string session_beta(const std::string& ga_session) {
  auto node = json::parse(ga_session);
  beta::session_to_beta(json_node_get_object(node.get()));
  return json::to_string(node.get());
}

constexpr const char* kBetaSession = R"({
  "model": "gpt-realtime", "modalities": ["text", "audio"], "voice": "alloy",
  "instructions": "be brief", "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
  "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200},
  "input_audio_transcription": {"model": "whisper-1"},
  "input_audio_noise_reduction": {"type": "near_field"}, "speed": 1.25,
  "tools": [], "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": 300})";

constexpr const char* kGaSession = R"({
  "type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"],
  "instructions": "be brief", "tools": [], "tool_choice": "auto", "max_output_tokens": 300,
  "audio": {
    "input": {"format": {"type": "audio/pcm", "rate": 24000},
              "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200},
              "transcription": {"model": "whisper-1"}, "noise_reduction": {"type": "near_field"}},
    "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy", "speed": 1.25}}})";

TEST(BetaDialect, SessionFieldsMoveToTheirGaPlaces) {
  EXPECT_TRUE(same_json(session_ga(kBetaSession), kGaSession));
}

TEST(BetaDialect, GaSessionIsUnchangedByTheBetaToGaPass) {
  EXPECT_TRUE(same_json(session_ga(kGaSession), kGaSession));
}

TEST(BetaDialect, GaFieldWinsOverItsBetaTwin) {
  EXPECT_TRUE(same_json(session_ga(R"({"voice": "alloy", "audio": {"output": {"voice": "ash"}}})"),
                        R"({"type": "realtime", "audio": {"output": {"voice": "ash"}}})"));
}

TEST(BetaDialect, NullTurnDetectionStaysNull) {
  EXPECT_TRUE(same_json(session_ga(R"({"turn_detection": null})"),
                        R"({"type": "realtime", "audio": {"input": {"turn_detection": null}}})"));
}

TEST(BetaDialect, ModalitiesMapBothWays) {
  EXPECT_TRUE(same_json(session_ga(R"({"modalities": ["text"]})"),
                        R"({"type": "realtime", "output_modalities": ["text"]})"));
  EXPECT_TRUE(same_json(session_ga(R"({"modalities": ["audio"]})"),
                        R"({"type": "realtime", "output_modalities": ["audio"]})"));
  EXPECT_TRUE(same_json(session_beta(R"({"output_modalities": ["audio"]})"),
                        R"({"modalities": ["text", "audio"]})"));
  EXPECT_TRUE(
      same_json(session_beta(R"({"output_modalities": ["text"]})"), R"({"modalities": ["text"]})"));
}

TEST(BetaDialect, AudioFormatsBothWays) {
  for (auto [b, ga] : {std::pair{"pcm16", R"({"type":"audio/pcm","rate":24000})"},
                       std::pair{"g711_ulaw", R"({"type":"audio/pcmu"})"},
                       std::pair{"g711_alaw", R"({"type":"audio/pcma"})"}}) {
    auto node = beta::format_to_ga(b);
    ASSERT_TRUE(node) << b;
    EXPECT_TRUE(same_json(json::to_string(node.get()), ga));
    auto back = beta::format_to_beta(json::parse(ga).get());
    EXPECT_EQ(back.value_or("?"), b);
  }
  EXPECT_FALSE(beta::format_to_ga("opus"));
  EXPECT_FALSE(beta::format_to_beta(json::parse(R"({"type":"audio/opus"})").get()));
  // an unknown beta format goes as it is (the worker says what it thinks of it)
  EXPECT_TRUE(same_json(session_ga(R"({"input_audio_format": "opus"})"),
                        R"({"type": "realtime", "audio": {"input": {"format": "opus"}}})"));
}

TEST(BetaDialect, GaSessionBackToBeta) {
  // The GA form of the beta session comes back as that session (minus temperature: GA has none;
  // modalities as the beta reported audio, with its transcript).
  std::string expected = R"({
    "model": "gpt-realtime", "modalities": ["text", "audio"], "voice": "alloy",
    "instructions": "be brief", "input_audio_format": "pcm16", "output_audio_format": "g711_ulaw",
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 200},
    "input_audio_transcription": {"model": "whisper-1"},
    "input_audio_noise_reduction": {"type": "near_field"}, "speed": 1.25,
    "tools": [], "tool_choice": "auto", "max_response_output_tokens": 300})";
  EXPECT_TRUE(same_json(session_beta(kGaSession), expected));
  // fields GA has and beta lacks stay where they are
  EXPECT_TRUE(same_json(session_beta(R"({"type":"realtime","audio":{"output":{"voice":"x"},
                                          "input":{"format":{"type":"audio/pcm","rate":24000}}},
                                          "tracing":"auto","prompt":{"id":"p"}})"),
                        R"({"voice":"x","input_audio_format":"pcm16","tracing":"auto",
                            "prompt":{"id":"p"}})"));
}

TEST(BetaDialect, TranscriptionSessionToGa) {
  auto beta_body = json::parse(R"({
    "input_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"},
    "turn_detection": {"type": "server_vad"}, "input_audio_noise_reduction": null,
    "include": ["item.input_audio_transcription.logprobs"], "modalities": ["text"]})");
  auto ga = beta::transcription_session_to_ga(json_node_get_object(beta_body.get()));
  EXPECT_TRUE(same_json(json::to_string(ga.get()), R"({
    "type": "transcription", "include": ["item.input_audio_transcription.logprobs"],
    "audio": {"input": {"format": {"type": "audio/pcma"},
                        "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                        "turn_detection": {"type": "server_vad"}, "noise_reduction": null}}})"));
  beta::transcription_session_to_beta(json_node_get_object(ga.get()));
  EXPECT_TRUE(same_json(json::to_string(ga.get()), R"({
    "object": "realtime.transcription_session",
    "include": ["item.input_audio_transcription.logprobs"], "input_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"},
    "turn_detection": {"type": "server_vad"}, "input_audio_noise_reduction": null})"));
}

TEST(BetaDialect, ServerEventNames) {
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_audio.delta"), "response.audio.delta");
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_audio.done"), "response.audio.done");
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_audio_transcript.delta"),
            "response.audio_transcript.delta");
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_audio_transcript.done"),
            "response.audio_transcript.done");
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_text.delta"), "response.text.delta");
  EXPECT_EQ(beta::server_event_name_to_beta("response.output_text.done"), "response.text.done");
  EXPECT_EQ(beta::server_event_name_to_beta("conversation.item.added"),
            "conversation.item.created");
  EXPECT_EQ(beta::server_event_name_to_beta("conversation.item.done"), "conversation.item.done");
  EXPECT_EQ(beta::server_event_name_to_beta("output_audio_buffer.started"),
            "output_audio_buffer.started");
}

TEST(BetaDialect, ServerEventsToBeta) {
  auto out = beta::server_event_to_beta(
      R"({"type":"response.output_audio_transcript.delta","event_id":"e1","delta":"hi"})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"response.audio_transcript.delta","event_id":"e1",
                                  "delta":"hi"})"));
  out = beta::server_event_to_beta(R"({"type":"session.updated","session":)" +
                                   std::string(kGaSession) + "}");
  ASSERT_TRUE(out);
  auto node = json::parse(*out);
  JsonObject* session = json::get_object(json_node_get_object(node.get()), "session");
  EXPECT_EQ(json::get_string(session, "voice").value_or(""), "alloy");
  EXPECT_EQ(json::get_string(session, "input_audio_format").value_or(""), "pcm16");
  EXPECT_FALSE(json_object_has_member(session, "audio"));
  EXPECT_FALSE(json_object_has_member(session, "type"));
  // items: the GA content types of assistant output get their beta names
  out = beta::server_event_to_beta(R"({"type":"conversation.item.added","item":{"id":"i","type":
      "message","role":"assistant","content":[{"type":"output_audio","transcript":"x"},
      {"type":"output_text","text":"y"}]}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"conversation.item.created","item":{"id":"i","type":
      "message","role":"assistant","content":[{"type":"audio","transcript":"x"},
      {"type":"text","text":"y"}]}})"));
  out = beta::server_event_to_beta(
      R"({"type":"response.content_part.added","part":{"type":"output_audio"}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"response.content_part.added","part":{"type":"audio"}})"));
  // response.done: the response object in the beta shape; usage untouched
  out = beta::server_event_to_beta(R"({"type":"response.done","response":{"id":"r",
      "output_modalities":["audio"],"audio":{"output":{"format":{"type":"audio/pcm","rate":24000},
      "voice":"alloy"}},"output":[{"type":"message","content":[{"type":"output_audio"}]}],
      "usage":{"total_tokens":5}}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"response.done","response":{"id":"r",
      "modalities":["text","audio"],"output_audio_format":"pcm16","voice":"alloy",
      "output":[{"type":"message","content":[{"type":"audio"}]}],"usage":{"total_tokens":5}}})"));
  // a GA transcription session's update is the beta's transcription_session.updated
  out = beta::server_event_to_beta(R"({"type":"session.updated","session":{"type":"transcription",
      "audio":{"input":{"transcription":{"model":"m"}}}}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"transcription_session.updated","session":{
      "object":"realtime.transcription_session","input_audio_transcription":{"model":"m"}}})"));
}

TEST(BetaDialect, EventsWithNothingToTranslatePassAsTheyAre) {
  for (const char* text :
       {R"({"type":"conversation.item.done","item":{"id":"x","content":[]}})",
        R"({"type":"response.created","event_id":"e"})",  // no response object
        R"({"type":"error","error":{"code":"x"}})", R"({"type":"input_audio_buffer.committed"})",
        R"({"type":  "test.echoed", "payload":"kept"})", "not json at all"})
    EXPECT_FALSE(beta::server_event_to_beta(text)) << text;
  for (const char* text :
       {R"({"type":"input_audio_buffer.append","audio":"AAAA"})", R"({"type":"response.cancel"})",
        R"({"type":  "test.echo", "payload":"session.update"})", "{not json"})
    EXPECT_FALSE(beta::client_event_to_ga(text)) << text;
}

TEST(BetaDialect, ClientEventsToGa) {
  auto out = beta::client_event_to_ga(R"({"type":"session.update","event_id":"c1","session":)" +
                                      std::string(kBetaSession) + "}");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"session.update","event_id":"c1","session":)" +
                                  std::string(kGaSession) + "}"));
  out = beta::client_event_to_ga(R"({"type":"response.create","response":{"modalities":["text"],
      "voice":"ash","output_audio_format":"pcm16","temperature":0.7,
      "max_response_output_tokens":"inf","instructions":"x","service_tier":"fast"}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"response.create","response":{
      "output_modalities":["text"],"audio":{"output":{"voice":"ash",
      "format":{"type":"audio/pcm","rate":24000}}},"max_output_tokens":"inf","instructions":"x",
      "service_tier":"fast"}})"));
  out = beta::client_event_to_ga(R"({"type":"conversation.item.create","item":{"type":"message",
      "role":"assistant","content":[{"type":"text","text":"earlier answer"}]}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"conversation.item.create","item":{"type":"message",
      "role":"assistant","content":[{"type":"output_text","text":"earlier answer"}]}})"));
  out = beta::client_event_to_ga(R"({"type":"transcription_session.update","session":{
      "input_audio_transcription":{"model":"gpt-4o-transcribe"}}})");
  ASSERT_TRUE(out);
  EXPECT_TRUE(same_json(*out, R"({"type":"session.update","session":{"type":"transcription",
      "audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}})"));
}

}  // namespace

namespace {

// Issue 24: a custom voice is an object {"id": "voice_..."}; it moves between its beta and GA
// places as it is, in sessions and responses, both ways; reasoning and parallel_tool_calls keep
// their names (the same in both shapes).
TEST(BetaDialect, VoiceObjectsAndReasoningGoThroughBothWays) {
  EXPECT_TRUE(same_json(session_ga(R"({"voice":{"id":"voice_1234"},"reasoning":{"effort":"high"},)"
                                   R"("parallel_tool_calls":false})"),
                        R"({"type":"realtime","audio":{"output":{"voice":{"id":"voice_1234"}}},)"
                        R"("reasoning":{"effort":"high"},"parallel_tool_calls":false})"));
  EXPECT_TRUE(same_json(
      session_beta(R"({"type":"realtime","audio":{"output":{"voice":{"id":"voice_1234"}}},)"
                   R"("reasoning":{"effort":"low"}})"),
      R"({"voice":{"id":"voice_1234"},"reasoning":{"effort":"low"}})"));
  auto create = beta::client_event_to_ga(
      R"({"type":"response.create","response":{"voice":{"id":"voice_9"},"reasoning":{"effort":"xhigh"}}})");
  ASSERT_TRUE(create);
  EXPECT_TRUE(same_json(*create,
                        R"({"type":"response.create","response":{"audio":{"output":)"
                        R"({"voice":{"id":"voice_9"}}},"reasoning":{"effort":"xhigh"}}})"));
  auto done = beta::server_event_to_beta(
      R"({"type":"response.done","response":{"audio":{"output":{"voice":{"id":"voice_9"}}}}})");
  ASSERT_TRUE(done);
  EXPECT_TRUE(
      same_json(*done, R"({"type":"response.done","response":{"voice":{"id":"voice_9"}}})"));
}

TEST(BetaToken, TheBetaFlagTravelsInTheSignedClaims) {
  rtgw::auth::EphemeralTokens tokens("secret");
  rtgw::auth::TokenClaims claims{"team-a", "gpt-realtime", R"({"type":"realtime"})", 100, 200};
  EXPECT_FALSE(tokens.verify(tokens.mint(claims), 150).beta);
  claims.beta = true;
  std::string token = tokens.mint(claims);
  auto back = tokens.verify(token, 150);
  EXPECT_TRUE(back.beta);
  EXPECT_EQ(back.session_json, R"({"type":"realtime"})");
  // a GA token cannot be turned into a beta one without breaking the signature
  rtgw::auth::TokenClaims ga = claims;
  ga.beta = false;
  std::string ga_token = tokens.mint(ga);
  std::string forged = token.substr(0, token.find('.')) + ga_token.substr(ga_token.find('.'));
  EXPECT_THROW(tokens.verify(forged, 150), rtgw::auth::EphemeralTokens::VerifyError);
}

}  // namespace
