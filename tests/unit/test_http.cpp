// SPDX-License-Identifier: MIT
// Request-body decoding, auth and error bodies: the HTTP layer's pure parts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "auth/ephemeral_token.h"
#include "common/json.h"
#include "common/websocket.h"
#include "http/call_request.h"
#include "http/host_check.h"
#include "http/http_error.h"
#include "http/session_shape.h"
#include "http/initial_session.h"
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

TEST(CallRequest, MalformedMultipartIsRefusedWithinTheBody) {
  // Found by tests/fuzz (multipart): libsoup 3.2's parser looked for a part's blank line past the
  // next delimiter and made a part of negative length (read far outside the body), and scanned
  // past the end of a body with an unterminated part.
  const char* type = "multipart/form-data; boundary=b";
  for (std::string body : {
           std::string("--b\r\nContent-Disposition: form-data; "
                       "name=\"sdp\"\r\n--b\r\n\r\nv=0\r\n--b--\r\n"),
           std::string("--b\r\nContent-Disposition: form-data; name=\"sdp\""),
           std::string("--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\n\r\nv=0"),
           std::string("--b"),
           std::string("--bx\r\n\r\nv=0\r\n--b--"),
       }) {
    try {
      parse_call_request(type, body);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(error_code(e), "invalid_multipart") << body;
    }
  }
  // What real clients send still parses: a preamble, LWSP after a delimiter, a part without
  // headers, other fields, quoted and case-varied parameters, an epilogue.
  std::string body =
      "preamble\r\n--b  \r\n\r\nignored\r\n--b\r\ncontent-disposition:  form-data; "
      "name=\"other\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=sdp\r\n"
      "Content-Type: application/sdp\r\n\r\nv=0\r\n--b--\r\nepilogue";
  auto r = parse_call_request("multipart/form-data; boundary=\"b\"", body);
  EXPECT_EQ(r.sdp, "v=0");
  EXPECT_FALSE(r.session_json);
}

TEST(CallRequest, RealClientsMultipartBodies) {
  // Bodies captured from Chromium, aiortc, libwebrtc (node) and werift by
  // tests/fuzz/capture_seeds.py: a Content-Type line, then the body.
  const std::string dir = std::string(RTGW_TEST_DATA) + "/../../fuzz/corpus/call_request";
  for (const char* peer : {"chromium", "aiortc", "wrtc", "werift"}) {
    std::string path = dir + "/" + peer + "-multipart";
    gchar* raw = nullptr;
    gsize len = 0;
    ASSERT_TRUE(g_file_get_contents(path.c_str(), &raw, &len, nullptr)) << path;
    std::string input(raw, len);
    g_free(raw);
    std::size_t nl = input.find('\n');
    ASSERT_NE(nl, std::string::npos) << path;
    auto r = parse_call_request(input.substr(0, nl).c_str(), input.substr(nl + 1));
    EXPECT_EQ(r.sdp.rfind("v=0\r\n", 0), 0u) << peer;
    EXPECT_NE(r.sdp.find("m=audio"), std::string::npos) << peer;
    EXPECT_EQ(r.sdp.substr(r.sdp.size() - 2), "\r\n") << peer;  // the SDP keeps its last CRLF
    EXPECT_EQ(r.session_model.value_or(""), "gpt-realtime") << peer;
  }
}

TEST(CallRequest, FuzzRegressionInputs) {
  // tests/fuzz/corpus/multipart/regress-*: crashes found by the multipart fuzz target (libsoup's
  // multipart parser read outside the body). Input format as in tests/fuzz/fuzz_multipart.cpp:
  // byte 0 odd = a Content-Type parameters line, then the body.
  const std::string dir = std::string(RTGW_TEST_DATA) + "/../../fuzz/corpus/multipart";
  int seen = 0;
  for (const char* n : {"1", "2", "3", "4", "5"}) {
    std::string path = dir + "/regress-libsoup-multipart-" + n;
    gchar* raw = nullptr;
    gsize len = 0;
    ASSERT_TRUE(g_file_get_contents(path.c_str(), &raw, &len, nullptr)) << path;
    std::string input(raw, len);
    g_free(raw);
    ASSERT_TRUE(!input.empty() && (input[0] & 1)) << path;
    std::size_t nl = input.find('\n');
    ASSERT_NE(nl, std::string::npos) << path;
    std::string type = "multipart/form-data; " + input.substr(1, nl - 1);
    // The body in a buffer of exactly its size, as libsoup hands it over.
    std::vector<char> body(input.begin() + static_cast<std::ptrdiff_t>(nl) + 1, input.end());
    try {
      (void)parse_call_request(type.c_str(), std::string(body.begin(), body.end()));
    } catch (const HttpError& e) {
      EXPECT_EQ(e.status(), 400) << path;
    }
    seen++;
  }
  EXPECT_EQ(seen, 5);
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

TEST(Json, LoneSurrogateEscapesBecomeReplacementCharacters) {
  // Found by tests/fuzz (token): json-glib 1.6 decodes a lone surrogate escape into invalid UTF-8,
  // so the session it serialized again (to a worker, into a token) was not JSON.
  for (const char* text : {R"({"a":"x\udc00y"})", R"({"\ud800":"t"})", R"({"a":"\ud800\u0041"})",
                           R"({"a":"\uDBFF"})", R"({"a":"\\udc00"})"}) {
    std::string error;
    auto node = rtgw::json::parse(text, &error);
    ASSERT_TRUE(node) << text << ": " << error;
    std::string again = rtgw::json::to_string(node.get());
    EXPECT_TRUE(g_utf8_validate(again.data(), static_cast<gssize>(again.size()), nullptr)) << text;
    EXPECT_TRUE(rtgw::json::parse(again, &error)) << text << " -> " << again << ": " << error;
  }
  auto node = rtgw::json::parse(R"({"a":"x\udc00y","b":"\ud83d\ude00"})");
  ASSERT_TRUE(node);
  JsonObject* o = json_node_get_object(node.get());
  EXPECT_EQ(rtgw::json::get_string(o, "a"), "x\uFFFDy");    // U+FFFD, nothing eaten
  EXPECT_EQ(rtgw::json::get_string(o, "b"), "\U0001F600");  // a proper pair is untouched
}

TEST(Json, EscapesOutsideJsonAreRefused) {
  // Found by tests/fuzz (token): json-glib 1.6 reads `\312` as the byte 0xCA and `\ud8H` as CESU
  // bytes, so what it serialized again was not UTF-8, not JSON.
  for (const char* text :
       {R"({"a":"b\312c"})", R"({"a":"\ud8H>>"})", R"({"a":"\ud8>>>>>>0."})", R"({"a":"\q"})",
        R"({"a":"\u00zz"})", R"({"a":"\ud800\uzzzz"})", R"({"a":"\)"}) {
    std::string error;
    EXPECT_FALSE(rtgw::json::parse(text, &error)) << text;
    EXPECT_NE(error.find("invalid escape"), std::string::npos) << text << ": " << error;
  }
  std::string error;
  auto node = rtgw::json::parse(R"({"a":"\"\\\/\b\f\n\r\t\u00e9"})", &error);
  ASSERT_TRUE(node) << error;
  EXPECT_EQ(rtgw::json::get_string(json_node_get_object(node.get()), "a"), "\"\\/\b\f\n\r\t\u00e9");
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

TEST(HttpError, InvalidUtf8FromAUrlStillMakesValidJson) {
  HttpError e(404, "invalid_request_error", "call_not_found", "no call \xFF\xFE\xC3\x28 here");
  std::string body = e.body();
  EXPECT_TRUE(g_utf8_validate(body.data(), static_cast<gssize>(body.size()), nullptr)) << body;
  auto node = rtgw::json::parse(body);
  ASSERT_TRUE(node);
  JsonObject* err = rtgw::json::get_object(json_node_get_object(node.get()), "error");
  std::string message = rtgw::json::get_string(err, "message").value_or("");
  EXPECT_EQ(message.rfind("no call ", 0), 0u);
  EXPECT_NE(message.find(" here"), std::string::npos);
}

TEST(HostCheck, LoopbackNamesOnly) {
  using rtgw::http::is_loopback_host;
  for (const char* ok : {"localhost", "LOCALHOST:8080", "localhost.", "app.localhost:3000",
                         "127.0.0.1", "127.0.0.1:8080", "127.1.2.3:80", "[::1]", "[::1]:8080"})
    EXPECT_TRUE(is_loopback_host(ok)) << ok;
  for (const char* bad :
       {"", "evil.example", "evil.example:8080", "localhost.evil.example", "evillocalhost",
        "127.0.0.1.evil.example", "10.0.0.1:8080", "0.0.0.0", "[::]:8080", "::1", "[::1", "127.1",
        "2130706433", "localhost:80x", "[::1]x", "[::ffff:10.0.0.1]"})
    EXPECT_FALSE(is_loopback_host(bad)) << bad;
}

// Found by the http_headers fuzz target: brackets hold an IPv6 literal only.
TEST(HostCheck, BracketsHoldOnlyAnIpv6Literal) {
  using rtgw::http::is_loopback_host;
  for (const char* ok : {"[::1]", "[0:0:0:0:0:0:0:1]:80", "[::1]:"})
    EXPECT_TRUE(is_loopback_host(ok)) << ok;
  for (const char* bad : {"[[.localhost]", "[a.localhost]", "[localhost]:8080", "[::1.]:8080",
                          "[127.0.0.1]", "[::ffff:127.0.0.1.localhost]"})
    EXPECT_FALSE(is_loopback_host(bad)) << bad;
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
  EXPECT_FALSE(rtgw::auth::Authenticator(loop).authenticate(nullptr).admin);
  EXPECT_FALSE(rtgw::auth::Authenticator(loop).authenticate(nullptr).may_access("team-a"));
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

TEST(EphemeralTokens, SessionWithLoneSurrogateRoundTrips) {
  // The client_secrets route mints the session as json::to_string of the parsed body.
  auto session = rtgw::json::parse(R"({"type":"realtime","model":"echo","\udc00t":"r36"})");
  ASSERT_TRUE(session);
  EphemeralTokens tokens("secret-1");
  TokenClaims c{"team-a", "echo", rtgw::json::to_string(session.get()), 1000, 1600};
  EXPECT_EQ(tokens.verify(tokens.mint(c), 1500).session_json, c.session_json);
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

// Found by the call_request fuzz target: json-glib reads the first of several top-level values
// (`{...}{}`), the policy's reader saw the wrapped session.update as malformed and passed it, so
// a filtered tier reached the worker.
TEST(InitialSession, PolicySeesTheSessionThatGoesUpstream) {
  const std::string policy =
      R"({"service_tier":[{"tier":"flex","action":"filter","keys":["team-*"]}]})";
  for (const char* session : {R"({"type":"realtime","service_tier":"flex"})",
                              R"({"type":"realtime","service_tier":"flex"}{})",
                              R"({"type":"realtime","service_tier":"flex"} {"x":1})"}) {
    const std::string out =
        rtgw::http::apply_initial_session_policy(policy, "team-a", "gpt-realtime", session);
    auto node = rtgw::json::parse(out);
    ASSERT_TRUE(node && JSON_NODE_HOLDS_OBJECT(node.get())) << out;
    JsonObject* object = json_node_get_object(node.get());
    EXPECT_FALSE(json_object_has_member(object, "service_tier")) << session << " -> " << out;
    EXPECT_EQ(rtgw::json::get_string(object, "type").value_or(""), "realtime") << out;
  }
  EXPECT_EQ(rtgw::http::apply_initial_session_policy(policy, "ops", "gpt-realtime",
                                                     R"({"service_tier":"flex"}{})"),
            R"({"service_tier":"flex"})");
}
