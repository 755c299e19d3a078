// SPDX-License-Identifier: MIT
// The HTTP layer's pure parts (http/): request-body decoding, session shapes, error bodies, the
// Host check and the initial session's policy.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/json.h"
#include "http/call_request.h"
#include "http/host_check.h"
#include "http/http_error.h"
#include "http/initial_session.h"
#include "http/session_shape.h"
#include "http/translation_session.h"

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
  // A session that is not strict JSON is invalid_json (issue 21: comments and single quotes too);
  // JSON that is no object is a malformed form.
  for (std::string bad_session : {"{not json", "{/* \" */\"type\":\"realtime\"}",
                                  "{'type':'realtime'}", "{\"type\":\"realtime\",}"}) {
    try {
      parse_call_request("multipart/form-data; boundary=b", multipart("b", "v=0", &bad_session));
      ADD_FAILURE() << bad_session;
    } catch (const HttpError& e) {
      EXPECT_EQ(error_code(e), "invalid_json") << bad_session;
    }
  }
  std::string array_session = "[]";
  try {
    parse_call_request("multipart/form-data; boundary=b", multipart("b", "v=0", &array_session));
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

}  // namespace

// Found by the call_request fuzz target: json-glib reads the first of several top-level values
// (`{...}{}`), the policy's reader saw the wrapped session.update as malformed and passed it, so
// a filtered tier reached the worker.
TEST(InitialSession, PolicySeesTheSessionThatGoesUpstream) {
  const std::string policy =
      R"({"service_tier":[{"tier":"flex","action":"filter","keys":["team-*"]}]})";
  const std::string out = rtgw::http::apply_initial_session_policy(
      policy, "team-a", "gpt-realtime", R"({"type":"realtime","service_tier":"flex"})");
  auto node = rtgw::json::parse(out);
  ASSERT_TRUE(node && JSON_NODE_HOLDS_OBJECT(node.get())) << out;
  JsonObject* object = json_node_get_object(node.get());
  EXPECT_FALSE(json_object_has_member(object, "service_tier")) << out;
  EXPECT_EQ(rtgw::json::get_string(object, "type").value_or(""), "realtime") << out;
  // A session of two values (json-glib read the first and ignored the rest, a policy bypass once)
  // is not JSON: refused whatever the key (issue 21: strict JSON only).
  for (const char* key : {"team-a", "ops"})
    for (const char* session : {R"({"type":"realtime","service_tier":"flex"}{})",
                                R"({"type":"realtime","service_tier":"flex"} {"x":1})"}) {
      try {
        rtgw::http::apply_initial_session_policy(policy, key, "gpt-realtime", session);
        ADD_FAILURE() << session;
      } catch (const rtgw::http::HttpError& e) {
        EXPECT_EQ(error_code(e), "invalid_json") << session;
      }
    }
}

// Issue 24: the initial session (multipart or token) is capped like a session.update: `lower`
// rewrites the effort and keeps the voice object; `block` is 403 policy_violation.
TEST(InitialSession, ReasoningEffortIsLoweredOrRefused) {
  const std::string policy =
      R"({"reasoning_effort":[{"max":"low","action":"block","keys":["team-b"]},)"
      R"({"max":"medium","action":"lower","models":["gpt-realtime-2*"]}]})";
  const std::string session =
      R"({"type":"realtime","model":"gpt-realtime-2","reasoning":)"
      R"({"effort":"xhigh"},"audio":{"output":{"voice":{"id":"voice_7"}}}})";
  const std::string out =
      rtgw::http::apply_initial_session_policy(policy, "team-a", "gpt-realtime-2", session);
  auto node = rtgw::json::parse(out);
  ASSERT_TRUE(node && JSON_NODE_HOLDS_OBJECT(node.get())) << out;
  JsonObject* object = json_node_get_object(node.get());
  JsonObject* reasoning = rtgw::json::get_object(object, "reasoning");
  ASSERT_TRUE(reasoning) << out;
  EXPECT_EQ(rtgw::json::get_string(reasoning, "effort").value_or(""), "medium") << out;
  JsonObject* output = rtgw::json::get_object(rtgw::json::get_object(object, "audio"), "output");
  ASSERT_TRUE(output) << out;
  EXPECT_EQ(rtgw::json::get_string(rtgw::json::get_object(output, "voice"), "id").value_or(""),
            "voice_7")
      << out;
  try {
    rtgw::http::apply_initial_session_policy(policy, "team-b", "gpt-realtime-2", session);
    ADD_FAILURE() << "team-b's xhigh session went through";
  } catch (const rtgw::http::HttpError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_EQ(error_code(e), "policy_violation");
  }
}

// Translation sessions (http/translation_session.h).
TEST(TranslationSession, ModelTypeAndPolicy) {
  using namespace rtgw::http;
  EXPECT_EQ(translation_session_model(R"({"model":"gpt-realtime-translate"})"),
            "gpt-realtime-translate");
  EXPECT_FALSE(translation_session_model(R"({"type":"translation"})"));
  EXPECT_THROW(translation_session_model(R"({"type":"realtime","model":"m"})"), HttpError);
  EXPECT_THROW(translation_session_model(R"({"model":7})"), HttpError);
  EXPECT_TRUE(is_translation_session(R"({"type":"translation"})"));
  EXPECT_FALSE(is_translation_session(R"({"model":"m"})"));
  auto upstream = rtgw::json::parse(translation_session_for_upstream(
      R"({"model":"a","audio":{"output":{"language":"es"}}})", "upstream-a"));
  JsonObject* o = json_node_get_object(upstream.get());
  EXPECT_EQ(rtgw::json::get_string(o, "type"), "translation");
  EXPECT_EQ(rtgw::json::get_string(o, "model"), "upstream-a");
  EXPECT_TRUE(rtgw::json::get_object(o, "audio"));
  // The configured deny rules keep their indices; translation's own come after, for every key.
  auto policy = rtgw::json::parse(translation_policy_json(
      R"({"deny_client_events":[{"type":"session.update","keys":["team-b"]}]})"));
  JsonArray* rules =
      json_object_get_array_member(json_node_get_object(policy.get()), "deny_client_events");
  ASSERT_EQ(json_array_get_length(rules), 5u);
  EXPECT_EQ(rtgw::json::get_string(json_array_get_object_element(rules, 0), "type"),
            "session.update");
  EXPECT_EQ(rtgw::json::get_string(json_array_get_object_element(rules, 1), "type"), "response.*");
  EXPECT_NE(translation_policy_json("").find("conversation.*"), std::string::npos);
}

TEST(TranslationSession, TokenCrossUse) {
  using namespace rtgw::http;
  rtgw::auth::Principal key;
  EXPECT_NO_THROW(check_token_route(key, true));
  EXPECT_NO_THROW(check_token_route(key, false));
  rtgw::auth::Principal translation_token;
  translation_token.token_model = "gpt-realtime-translate";
  translation_token.token_session_json = R"({"type":"translation"})";
  EXPECT_NO_THROW(check_token_route(translation_token, true));
  try {
    check_token_route(translation_token, false);
    FAIL() << "a translation token must not redeem on a realtime route";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_NE(e.body().find("invalid_api_key"), std::string::npos);
  }
  rtgw::auth::Principal realtime_token;
  realtime_token.token_model = "gpt-realtime";
  realtime_token.token_session_json = R"({"type":"realtime","model":"gpt-realtime"})";
  EXPECT_NO_THROW(check_token_route(realtime_token, false));
  EXPECT_THROW(check_token_route(realtime_token, true), HttpError);
}
