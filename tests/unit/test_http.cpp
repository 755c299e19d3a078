// SPDX-License-Identifier: MIT
// Request-body decoding, auth and error bodies: the HTTP layer's pure parts.
#include <gtest/gtest.h>

#include <string>

#include "auth/authenticator.h"
#include "auth/ephemeral_token.h"
#include "common/json.h"
#include "common/websocket.h"
#include "http/call_request.h"
#include "http/http_error.h"
#include "http/session_shape.h"
#include "workers/echo_protocol.h"

namespace {

using rtgw::http::HttpError;
using rtgw::http::parse_call_request;

std::string multipart(const std::string& boundary, const std::string& sdp,
                      const std::string* session) {
  std::string body =
      "--" + boundary + "\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\n" + sdp + "\r\n";
  if (session)
    body += "--" + boundary +
            "\r\nContent-Disposition: form-data; name=\"session\"\r\nContent-Type: "
            "application/json\r\n\r\n" +
            *session + "\r\n";
  return body + "--" + boundary + "--\r\n";
}

std::string error_code(const HttpError& e) {
  auto node = rtgw::json::parse(e.body());
  JsonObject* err = rtgw::json::get_object(json_node_get_object(node.get()), "error");
  return rtgw::json::get_string(err, "code").value_or("");
}

TEST(CallRequest, PlainSdp) {
  auto r = parse_call_request("application/sdp", "v=0\r\n");
  EXPECT_EQ(r.sdp, "v=0\r\n");
  EXPECT_FALSE(r.session_json);
  auto r2 = parse_call_request("Application/SDP; charset=utf-8", "v=0\r\n");
  EXPECT_EQ(r2.sdp, "v=0\r\n");
}

TEST(CallRequest, MultipartWithSession) {
  std::string session = R"({"type":"realtime","model":"gpt-realtime","instructions":"hi"})";
  auto r = parse_call_request("multipart/form-data; boundary=XyZ",
                              multipart("XyZ", "v=0\r\nfoo", &session));
  EXPECT_EQ(r.sdp, "v=0\r\nfoo");
  ASSERT_TRUE(r.session_json);
  EXPECT_EQ(*r.session_json, session);
  EXPECT_EQ(r.session_model.value_or(""), "gpt-realtime");
}

TEST(CallRequest, MultipartWithoutSession) {
  auto r = parse_call_request("multipart/form-data; boundary=b", multipart("b", "v=0", nullptr));
  EXPECT_EQ(r.sdp, "v=0");
  EXPECT_FALSE(r.session_json);
}

TEST(CallRequest, Errors) {
  try {
    parse_call_request("text/plain", "x");
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(error_code(e), "invalid_content_type");
  }
  try {
    parse_call_request(nullptr, "x");
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(error_code(e), "invalid_content_type");
  }
  try {
    parse_call_request("multipart/form-data; boundary=b", "garbage");
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(error_code(e), "invalid_multipart");
  }
  std::string bad_session = "{not json";
  try {
    parse_call_request("multipart/form-data; boundary=b", multipart("b", "v=0", &bad_session));
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(error_code(e), "invalid_multipart");
  }
  std::string only_session =
      "--b\r\nContent-Disposition: form-data; name=\"session\"\r\n\r\n{}\r\n--b--\r\n";
  try {
    parse_call_request("multipart/form-data; boundary=b", only_session);
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(error_code(e), "invalid_multipart");
  }
}

TEST(CallRequest, DeepSessionIsInvalidJsonWithoutRecursing) {
  // 200,000 levels would overflow json-glib's recursive parser: refused before it runs.
  std::string deep = "{\"a\":" + std::string(200000, '[');
  try {
    parse_call_request("multipart/form-data; boundary=b", multipart("b", "v=0", &deep));
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(error_code(e), "invalid_json");
  }
}

TEST(Json, NestingBound) {
  std::string error;
  EXPECT_FALSE(rtgw::json::parse(std::string(100000, '['), &error));
  EXPECT_NE(error.find("deeper than 64"), std::string::npos) << error;
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(rtgw::json::parse(ok));
  EXPECT_FALSE(rtgw::json::parse("[" + ok + "]"));
  // Brackets inside strings, escaped quotes included, are not nesting.
  std::string in_string = "{\"s\":\"\\\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(rtgw::json::parse(in_string, &error)) << error;
  EXPECT_EQ(rtgw::json::nesting_beyond("[[[", 2), std::optional<std::size_t>(2));
}

TEST(CallRequest, SessionForUpstreamRenamesModel) {
  std::string out =
      rtgw::http::session_for_upstream(R"({"model":"alias","voice":"x"})", "real-model");
  auto node = rtgw::json::parse(out);
  JsonObject* obj = json_node_get_object(node.get());
  EXPECT_EQ(rtgw::json::get_string(obj, "model").value_or(""), "real-model");
  EXPECT_EQ(rtgw::json::get_string(obj, "voice").value_or(""), "x");
  EXPECT_EQ(rtgw::json::get_string(obj, "type").value_or(""), "realtime");
}

TEST(SessionShape, ModelPerType) {
  using rtgw::http::choose_model;
  using rtgw::http::session_shape;
  auto realtime = session_shape(R"({"type":"realtime","model":"gpt-realtime"})");
  EXPECT_FALSE(realtime.transcription());
  EXPECT_EQ(realtime.model, "gpt-realtime");
  EXPECT_EQ(session_shape(R"({"model":"m"})").model, "m");  // no type: realtime
  auto t = session_shape(
      R"({"type":"transcription","model":"ignored","audio":{"input":{"transcription":)"
      R"({"model":"gpt-4o-transcribe","language":"en"}}}})");
  EXPECT_TRUE(t.transcription());
  EXPECT_EQ(t.model, "gpt-4o-transcribe");
  EXPECT_FALSE(session_shape(R"({"type":"transcription"})").model);
  EXPECT_FALSE(session_shape(R"({"type":"transcription","audio":{"input":7}})").model);
  try {
    session_shape(R"({"type":"translation"})");
    FAIL() << "an unknown type must be refused";
  } catch (const rtgw::http::HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(e.body().find("invalid_session"), std::string::npos);
  }
  // ?model= must agree with a transcription session's model; a realtime session's model wins.
  EXPECT_EQ(choose_model(t, ""), "gpt-4o-transcribe");
  EXPECT_EQ(choose_model(t, "gpt-4o-transcribe"), "gpt-4o-transcribe");
  try {
    choose_model(t, "whisper-1");
    FAIL() << "a disagreeing ?model= must be refused";
  } catch (const rtgw::http::HttpError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(e.body().find("model_mismatch"), std::string::npos);
  }
  EXPECT_EQ(choose_model(realtime, "other"), "gpt-realtime");
  EXPECT_EQ(choose_model(session_shape("{}"), "q"), "q");
}

TEST(SessionShape, UpstreamModelGoesWhereTheTypeKeepsIt) {
  const std::string t = rtgw::http::session_for_upstream(
      R"({"type":"transcription","audio":{"input":{"transcription":{"model":"stt"}}}})",
      "gpt-4o-transcribe");
  EXPECT_EQ(rtgw::http::session_shape(t).model, "gpt-4o-transcribe");
  EXPECT_EQ(t.find("\"model\":\"gpt-4o-transcribe\"}"), t.find("\"model\""));  // only there
  EXPECT_EQ(
      rtgw::http::transcription_session_json("whisper-1"),
      R"({"type":"transcription","audio":{"input":{"transcription":{"model":"whisper-1"}}}})");
}

TEST(HttpError, BodyShape) {
  HttpError e(404, "invalid_request_error", "model_not_found", "no \"such\" model");
  auto node = rtgw::json::parse(e.body());
  ASSERT_TRUE(node);
  JsonObject* err = rtgw::json::get_object(json_node_get_object(node.get()), "error");
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(rtgw::json::get_string(err, "type").value_or(""), "invalid_request_error");
  EXPECT_EQ(rtgw::json::get_string(err, "code").value_or(""), "model_not_found");
  EXPECT_EQ(rtgw::json::get_string(err, "message").value_or(""), "no \"such\" model");
}

rtgw::config::Config keyed_config() {
  rtgw::config::Config c;
  rtgw::config::KeyConfig a;
  a.name = "team-a";
  a.key = "sk-team-a-secret";
  a.models = {"gpt-realtime*", "echo"};
  rtgw::config::KeyConfig ops;
  ops.name = "ops";
  ops.key = "sk-ops-secret-1";
  ops.models = {"*"};
  ops.admin = true;
  c.auth.keys = {a, ops};
  return c;
}

TEST(Auth, BearerKeys) {
  rtgw::auth::Authenticator auth(keyed_config());
  auto p = auth.authenticate("Bearer sk-team-a-secret");
  EXPECT_EQ(p.key_name, "team-a");
  EXPECT_TRUE(p.may_use("gpt-realtime-mini"));
  EXPECT_TRUE(p.may_use("echo"));
  EXPECT_FALSE(p.may_use("other"));
  EXPECT_FALSE(p.admin);
  EXPECT_TRUE(p.may_access("team-a"));
  EXPECT_FALSE(p.may_access("ops"));
  auto admin = auth.authenticate("bearer sk-ops-secret-1");
  EXPECT_TRUE(admin.may_access("team-a"));
}

TEST(Auth, Failures) {
  rtgw::auth::Authenticator auth(keyed_config());
  auto code_of = [&](const char* header) {
    try {
      auth.authenticate(header);
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), 401);
      return error_code(e);
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code_of(nullptr), "missing_api_key");
  EXPECT_EQ(code_of(""), "missing_api_key");
  EXPECT_EQ(code_of("Basic abc"), "missing_api_key");
  EXPECT_EQ(code_of("Bearer "), "missing_api_key");
  EXPECT_EQ(code_of("Bearer sk-team-a-secreT"), "invalid_api_key");
  EXPECT_EQ(code_of("Bearer sk-team-a-secret-longer"), "invalid_api_key");
}

TEST(Auth, KeylessOnlyOnLoopback) {
  rtgw::config::Config loop;
  loop.listen = "127.0.0.1:8080";
  EXPECT_EQ(rtgw::auth::Authenticator(loop).authenticate(nullptr).key_name, "anonymous");
  rtgw::config::Config open;
  open.listen = "0.0.0.0:8080";
  EXPECT_THROW(rtgw::auth::Authenticator(open).authenticate(nullptr), HttpError);
}

TEST(Auth, ConstantTimeEqual) {
  EXPECT_TRUE(rtgw::auth::constant_time_equal("abc", "abc"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("abc", "abd"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(rtgw::auth::constant_time_equal("", "a"));
}

}  // namespace

namespace {

using rtgw::auth::EphemeralTokens;
using rtgw::auth::TokenClaims;

TEST(EphemeralTokens, MintVerifyRoundTrip) {
  EphemeralTokens tokens("secret-1");
  TokenClaims c{"team-a", "gpt-realtime", R"({"type":"realtime","instructions":"x"})", 1000, 1600};
  std::string t = tokens.mint(c);
  EXPECT_EQ(t.rfind("ek_", 0), 0u);
  auto back = tokens.verify(t, 1599);
  EXPECT_EQ(back.key_name, "team-a");
  EXPECT_EQ(back.model, "gpt-realtime");
  EXPECT_EQ(back.session_json, c.session_json);
  EXPECT_EQ(back.expires_at, 1600);
  // Any instance holding the same secret redeems it.
  EXPECT_EQ(EphemeralTokens("secret-1").verify(t, 1599).key_name, "team-a");
}

EphemeralTokens::Failure failure_of(const EphemeralTokens& tokens, const std::string& t,
                                    std::int64_t now) {
  try {
    tokens.verify(t, now);
  } catch (const EphemeralTokens::VerifyError& e) {
    return e.failure;
  }
  ADD_FAILURE() << "accepted " << t;
  return EphemeralTokens::Failure::kMalformed;
}

TEST(EphemeralTokens, RefusesExpiredTamperedAndForeign) {
  EphemeralTokens tokens("secret-1");
  std::string t = tokens.mint({"team-a", "gpt-realtime", "{}", 1000, 1600});
  EXPECT_EQ(failure_of(tokens, t, 1600), EphemeralTokens::Failure::kExpired);
  std::string tampered = t;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(failure_of(tokens, tampered, 1000), EphemeralTokens::Failure::kBadSignature);
  EXPECT_EQ(failure_of(EphemeralTokens("other"), t, 1000), EphemeralTokens::Failure::kBadSignature);
  EXPECT_EQ(failure_of(tokens, "ek_nodot", 1000), EphemeralTokens::Failure::kMalformed);
  EXPECT_EQ(failure_of(tokens, "sk-not-a-token", 1000), EphemeralTokens::Failure::kMalformed);
}

}  // namespace

TEST(WebSocket, CloseReasonFitsTheFrame) {
  EXPECT_EQ(rtgw::clip_close_reason("short"), "short");
  std::string ascii(200, 'a');
  EXPECT_EQ(rtgw::clip_close_reason(ascii).size(), 123u);
  // 'é' is two bytes: 61 of them are 122 bytes, the 62nd would end at byte 124.
  std::string accented;
  for (int i = 0; i < 70; i++) accented += "\xc3\xa9";
  std::string clipped = rtgw::clip_close_reason(accented);
  EXPECT_EQ(clipped.size(), 122u);
  EXPECT_TRUE(g_utf8_validate(clipped.data(), static_cast<gssize>(clipped.size()), nullptr));
}

TEST(WebSocket, SendableCloseCodes) {
  for (int code : {1000, 1001, 1008, 1009, 1011, 1013, 3000, 4001, 4999})
    EXPECT_TRUE(rtgw::sendable_close_code(code)) << code;
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 2000, 5000})
    EXPECT_FALSE(rtgw::sendable_close_code(code)) << code;
}

TEST(EchoProtocol, MetersAppendedAudio) {
  std::vector<std::string> sent;
  rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
  echo.start();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_NE(sent[0].find("\"session.created\""), std::string::npos);
  // 2 s of PCM16 at 24 kHz = 96000 bytes = 128000 base64 characters: 20 audio tokens.
  echo.on_event(R"({"type":"input_audio_buffer.append","audio":")" + std::string(128000, 'A') +
                R"("})");
  echo.on_event(R"({"type":"response.create"})");
  ASSERT_EQ(sent.size(), 4u);  // created, delta, done
  auto done = rtgw::json::parse(sent[3]);
  ASSERT_TRUE(done);
  JsonObject* response = rtgw::json::get_object(json_node_get_object(done.get()), "response");
  ASSERT_NE(response, nullptr);
  JsonObject* usage = rtgw::json::get_object(response, "usage");
  ASSERT_NE(usage, nullptr);
  EXPECT_EQ(json_object_get_int_member(usage, "input_tokens"), 20);
  echo.on_event("not json");
  EXPECT_NE(sent.back().find("\"invalid_json\""), std::string::npos);
}

TEST(EchoProtocol, TranscriptionSessionsTranscribeOnCommit) {
  std::vector<std::string> sent;
  const std::string one_second =
      R"({"type":"input_audio_buffer.append","audio":")" + std::string(64000, 'A') + R"("})";
  rtgw::Ref<JsonNode> node;  // keeps the last parsed event alive for the returned usage
  auto last_usage = [&](const char* type) -> JsonObject* {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      node = rtgw::json::parse(*it);
      JsonObject* event = json_node_get_object(node.get());
      if (rtgw::json::get_string(event, "type") == type)
        return rtgw::json::get_object(event, "usage");
    }
    return nullptr;
  };
  {
    rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
    echo.configure(
        R"({"type":"transcription","audio":{"input":{"transcription":{"model":"stt"}}}})");
    echo.start();
    EXPECT_NE(sent[0].find("\"type\":\"transcription\""), std::string::npos) << sent[0];
    echo.on_event(one_second);
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    ASSERT_EQ(sent.size(), 3u);
    EXPECT_NE(sent[1].find("input_audio_buffer.committed"), std::string::npos);
    JsonObject* usage = last_usage("conversation.item.input_audio_transcription.completed");
    ASSERT_NE(usage, nullptr);
    EXPECT_EQ(rtgw::json::get_string(usage, "type"), "tokens");
    EXPECT_EQ(json_object_get_int_member(usage, "input_tokens"), 10);  // 1 s of audio
    // The audio is consumed: a second commit bills nothing more.
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    EXPECT_EQ(
        json_object_get_int_member(
            last_usage("conversation.item.input_audio_transcription.completed"), "input_tokens"),
        0);
  }
  sent.clear();
  {
    // whisper models are duration-billed; a realtime session's response still bills the audio.
    rtgw::workers::EchoProtocol echo([&](const std::string& text) { sent.push_back(text); });
    echo.start();
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    EXPECT_EQ(sent.size(), 1u) << "no transcription configured: no transcription";
    echo.on_event(R"({"type":"session.update","session":{"type":"realtime","audio":{"input":)"
                  R"({"transcription":{"model":"whisper-1"}}}}})");
    echo.on_event(one_second);
    echo.on_event(one_second);
    echo.on_event(R"({"type":"input_audio_buffer.commit"})");
    JsonObject* usage = last_usage("conversation.item.input_audio_transcription.completed");
    ASSERT_NE(usage, nullptr);
    EXPECT_EQ(rtgw::json::get_string(usage, "type"), "duration");
    EXPECT_DOUBLE_EQ(json_object_get_double_member(usage, "seconds"), 2.0);
    echo.on_event(R"({"type":"response.create"})");
    auto done = rtgw::json::parse(sent.back());
    JsonObject* response = rtgw::json::get_object(json_node_get_object(done.get()), "response");
    EXPECT_EQ(json_object_get_int_member(rtgw::json::get_object(response, "usage"), "input_tokens"),
              20);
  }
}
