// SPDX-License-Identifier: MIT
// Upstream dialects (workers/providers/): given a worker's config and an offer, each dialect
// builds exactly this URL, these headers and this body; given an answer, it yields this SDP or
// this failure. Then the same, recorded at the HTTP level: a `Worker` sends what its dialect
// built to a loopback SoupServer, and the config reader runs each dialect's own checks.
//
// A new dialect adds its block here: its URLs, its auth header, and its config checks.
#include <glib.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "common/ref.h"
#include "config/config.h"
#include "config/worker_dialect.h"
#include "workers/providers/registry.h"
#include "workers/worker.h"

namespace {

using rtgw::Ref;
using rtgw::config::WorkerConfig;
using rtgw::workers::OfferRequest;
using rtgw::workers::UpstreamAnswer;
using rtgw::workers::UpstreamFailure;
using rtgw::workers::UpstreamResult;
using rtgw::workers::providers::Header;
using rtgw::workers::providers::Provider;
namespace providers = rtgw::workers::providers;

constexpr const char* kOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
constexpr const char* kAnswer = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

WorkerConfig worker(const std::string& provider, const std::string& url,
                    const std::string& key = "sk-worker") {
  WorkerConfig w;
  w.name = provider;
  w.provider = provider;
  w.url = url;
  w.api_key = key;
  return w;
}

WorkerConfig azure_worker(const std::string& url) {
  WorkerConfig w = worker("azure", url, "az-key");
  w.deployment = "my realtime";  // a space: escaped in path and query alike
  w.api_version = "2025-08-28";
  return w;
}

// The fields of a multipart/form-data body, as a server reads them.
std::map<std::string, std::string> form_fields(const std::string& content_type,
                                               const std::string& body) {
  auto headers = std::unique_ptr<SoupMessageHeaders, decltype(&soup_message_headers_unref)>(
      soup_message_headers_new(SOUP_MESSAGE_HEADERS_REQUEST), soup_message_headers_unref);
  soup_message_headers_replace(headers.get(), "Content-Type", content_type.c_str());
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(body.data(), body.size()));
  SoupMultipart* multipart = soup_multipart_new_from_message(headers.get(), bytes.get());
  if (!multipart) return {};
  // soup_form_decode_multipart takes the multipart.
  auto fields = Ref<GHashTable>::adopt(
      soup_form_decode_multipart(multipart, nullptr, nullptr, nullptr, nullptr));
  std::map<std::string, std::string> out;
  if (!fields) return out;
  GHashTableIter it;
  gpointer k = nullptr;
  gpointer v = nullptr;
  g_hash_table_iter_init(&it, fields.get());
  while (g_hash_table_iter_next(&it, &k, &v))
    out[static_cast<const char*>(k)] = static_cast<const char*>(v);
  return out;
}

// ------------------------------------------------------------------------------ the registry

TEST(Providers, RegistryNamesEveryDialectOnce) {
  std::vector<std::string> names;
  for (const Provider* p : providers::all()) names.push_back(p->name());
  EXPECT_EQ(names, (std::vector<std::string>{"openai", "azure", "generic", "echo"}));
  for (const auto& name : names) EXPECT_EQ(providers::find(name)->name(), name);
  EXPECT_EQ(providers::find("nope"), nullptr);
  EXPECT_THROW(providers::get("nope"), std::invalid_argument);
  EXPECT_EQ(rtgw::config::worker_dialect_names(), "openai, azure, generic, echo");
  EXPECT_EQ(rtgw::config::find_worker_dialect("azure"), &providers::azure());
  EXPECT_EQ(rtgw::config::find_worker_dialect("Azure"), nullptr);  // names are exact
}

// ------------------------------------------------------------------------------ openai

TEST(Providers, OpenAiUrlsAndBearerKey) {
  const Provider& p = providers::openai();
  WorkerConfig w = worker("openai", "https://api.openai.com");
  EXPECT_TRUE(p.remote());
  EXPECT_EQ(p.calls_url(w, "gpt-realtime"),
            "https://api.openai.com/v1/realtime/calls?model=gpt-realtime");
  EXPECT_EQ(p.calls_url(w, "org/model v2&x"),
            "https://api.openai.com/v1/realtime/calls?model=org%2Fmodel%20v2%26x");
  EXPECT_EQ(p.hangup_url(w, "rtc_1/2"),
            "https://api.openai.com/v1/realtime/calls/rtc_1%2F2/hangup");
  EXPECT_EQ(p.realtime_url(w, "gpt-realtime", false),
            "https://api.openai.com/v1/realtime?model=gpt-realtime");
  EXPECT_EQ(p.realtime_url(w, "gpt-realtime", true),
            "https://api.openai.com/v1/realtime?intent=transcription");
  EXPECT_EQ(p.translation_calls_url(w), "https://api.openai.com/v1/realtime/translations/calls");
  EXPECT_EQ(p.translation_socket_url(w, "gpt-realtime-translate"),
            "https://api.openai.com/v1/realtime/translations?model=gpt-realtime-translate");
  EXPECT_EQ(p.auth_headers(w), (std::vector<Header>{{"Authorization", "Bearer sk-worker"}}));
  EXPECT_TRUE(p.auth_headers(worker("openai", "https://api.openai.com", "")).empty());
  EXPECT_EQ(p.default_health_path(w), "/v1/models");
}

TEST(Providers, GenericSpeaksOpenAiPathsUnderItsOwnUrl) {
  const Provider& p = providers::generic();
  WorkerConfig w = worker("generic", "http://10.0.0.5:8000/prefix");
  EXPECT_STREQ(p.name(), "generic");
  EXPECT_TRUE(p.remote());
  EXPECT_EQ(p.calls_url(w, "local"), "http://10.0.0.5:8000/prefix/v1/realtime/calls?model=local");
  EXPECT_EQ(p.hangup_url(w, "c1"), "http://10.0.0.5:8000/prefix/v1/realtime/calls/c1/hangup");
  EXPECT_EQ(p.realtime_url(w, "local", false),
            "http://10.0.0.5:8000/prefix/v1/realtime?model=local");
  EXPECT_EQ(p.translation_calls_url(w),
            "http://10.0.0.5:8000/prefix/v1/realtime/translations/calls");
  EXPECT_EQ(p.translation_socket_url(w, "t"),
            "http://10.0.0.5:8000/prefix/v1/realtime/translations?model=t");
  EXPECT_EQ(p.auth_headers(w), (std::vector<Header>{{"Authorization", "Bearer sk-worker"}}));
  EXPECT_EQ(p.default_health_path(w), "/v1/models");
}

// ------------------------------------------------------------------------------ azure

TEST(Providers, AzureUrlsNameTheDeploymentNotTheModel) {
  const Provider& p = providers::azure();
  WorkerConfig w = azure_worker("https://res.openai.azure.com");
  EXPECT_TRUE(p.remote());
  EXPECT_EQ(p.calls_url(w, "ignored"),
            "https://res.openai.azure.com/openai/deployments/my%20realtime/realtime/calls"
            "?api-version=2025-08-28");
  EXPECT_EQ(p.hangup_url(w, "rtc_9"),
            "https://res.openai.azure.com/openai/deployments/my%20realtime/realtime/calls/rtc_9/"
            "hangup?api-version=2025-08-28");
  EXPECT_EQ(p.realtime_url(w, "ignored", false),
            "https://res.openai.azure.com/openai/realtime?api-version=2025-08-28"
            "&deployment=my%20realtime");
  EXPECT_EQ(p.realtime_url(w, "ignored", true),
            "https://res.openai.azure.com/openai/realtime?api-version=2025-08-28"
            "&intent=transcription&deployment=my%20realtime");
  EXPECT_EQ(p.translation_calls_url(w),
            "https://res.openai.azure.com/openai/deployments/my%20realtime/realtime/translations/"
            "calls?api-version=2025-08-28");
  EXPECT_EQ(p.translation_socket_url(w, "ignored"),
            "https://res.openai.azure.com/openai/realtime/translations?api-version=2025-08-28"
            "&deployment=my%20realtime");
  EXPECT_EQ(p.auth_headers(w), (std::vector<Header>{{"api-key", "az-key"}}));
  EXPECT_EQ(p.default_health_path(w), "/openai/models?api-version=2025-08-28");
}

// ------------------------------------------------------------------------------ echo

TEST(Providers, EchoIsInProcessWithNoUrlsKeyOrHealthCheck) {
  const Provider& p = providers::echo();
  WorkerConfig w = worker("echo", "");
  EXPECT_FALSE(p.remote());
  EXPECT_EQ(p.calls_url(w, "echo"), "");
  EXPECT_EQ(p.hangup_url(w, "x"), "");
  EXPECT_EQ(p.realtime_url(w, "echo", false), "");
  EXPECT_EQ(p.translation_calls_url(w), "");
  EXPECT_EQ(p.translation_socket_url(w, "echo"), "");
  EXPECT_TRUE(p.auth_headers(w).empty());
  EXPECT_EQ(p.default_health_path(w), "");
}

// ------------------------------------------------------------------------------ offer, answer

TEST(Providers, OfferIsSdpAloneOrMultipartWithTheSession) {
  for (const Provider* p : {&providers::openai(), &providers::azure(), &providers::generic()}) {
    SCOPED_TRACE(p->name());
    OfferRequest plain{kOffer, "m", std::nullopt};
    auto body = p->encode_offer(plain);
    EXPECT_EQ(body.content_type, "application/sdp");
    EXPECT_EQ(body.bytes, kOffer);

    const std::string session = R"({"type":"realtime","instructions":"be brief"})";
    OfferRequest with_session{kOffer, "m", session};
    body = p->encode_offer(with_session);
    EXPECT_EQ(body.content_type.rfind("multipart/form-data; boundary=", 0), 0u)
        << body.content_type;
    auto fields = form_fields(body.content_type, body.bytes);
    EXPECT_EQ(fields, (std::map<std::string, std::string>{{"sdp", kOffer}, {"session", session}}));
  }
}

TEST(Providers, AnswerDecodesToSdpAndCallIdOrAFailure) {
  const Provider& p = providers::openai();
  UpstreamResult r = p.decode_answer(201, kAnswer, "/v1/realtime/calls/rtc_abc");
  ASSERT_TRUE(std::holds_alternative<UpstreamAnswer>(r));
  EXPECT_EQ(std::get<UpstreamAnswer>(r).sdp, kAnswer);
  EXPECT_EQ(std::get<UpstreamAnswer>(r).upstream_call_id, "rtc_abc");

  r = p.decode_answer(200, kAnswer, nullptr);  // no Location: no upstream call to hang up
  ASSERT_TRUE(std::holds_alternative<UpstreamAnswer>(r));
  EXPECT_EQ(std::get<UpstreamAnswer>(r).upstream_call_id, "");

  const std::string error = R"({"error":{"type":"invalid_request_error","code":"bad"}})";
  r = p.decode_answer(400, error, nullptr);
  ASSERT_TRUE(std::holds_alternative<UpstreamFailure>(r));
  EXPECT_EQ(std::get<UpstreamFailure>(r).kind, UpstreamFailure::Kind::kStatus);
  EXPECT_EQ(std::get<UpstreamFailure>(r).status, 400);
  EXPECT_EQ(std::get<UpstreamFailure>(r).body, error);  // passed through to the client
  EXPECT_EQ(std::get<UpstreamFailure>(r).message, "the worker answered 400");

  r = p.decode_answer(401, "{}", nullptr);
  ASSERT_TRUE(std::holds_alternative<UpstreamFailure>(r));
  EXPECT_TRUE(rtgw::workers::is_auth_failure(std::get<UpstreamFailure>(r)));

  r = p.decode_answer(201, R"({"sdp":"v=0"})", "/v1/realtime/calls/x");
  ASSERT_TRUE(std::holds_alternative<UpstreamFailure>(r));
  EXPECT_EQ(std::get<UpstreamFailure>(r).kind, UpstreamFailure::Kind::kProtocol);
  EXPECT_EQ(std::get<UpstreamFailure>(r).body, "");
}

// ------------------------------------------------------------------------------ config checks

void expect_config_error(const std::string& workers, const std::string& path,
                         const std::string& reason) {
  std::string text = R"({"models": [{"name": "m", "workers": [)" + workers + "]}]}";
  try {
    rtgw::config::load_from_text(text, "f.json", {},
                                 [](const std::string&) { return std::optional<std::string>(); });
    ADD_FAILURE() << "accepted: " << text;
  } catch (const rtgw::config::ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("f.json: " + path + ": " + reason), std::string::npos) << what;
  }
}

WorkerConfig loaded(const std::string& worker_json) {
  auto c = rtgw::config::load_from_text(
      R"({"models": [{"name": "m", "workers": [)" + worker_json + "]}]}", "f.json", {},
      [](const std::string&) { return std::optional<std::string>(); });
  return c.models.at(0).workers.at(0);
}

TEST(Providers, EachDialectChecksItsOwnConfig) {
  expect_config_error(R"({"provider": "nope"})", "$.models[0].workers[0].provider",
                      "must be one of openai, azure, generic, echo");
  for (const char* remote : {"openai", "azure", "generic"})
    expect_config_error(std::string(R"({"provider": ")") + remote + R"("})",
                        "$.models[0].workers[0].url",
                        std::string("required for provider ") + remote);
  expect_config_error(R"({"provider": "azure", "url": "https://r.example"})",
                      "$.models[0].workers[0].deployment", "required for provider azure");

  // Azure's health path follows its api_version unless the file names one.
  WorkerConfig az = loaded(
      R"({"provider": "azure", "url": "https://r.example/", "deployment": "d",
          "api_version": "2030-01-01"})");
  EXPECT_EQ(az.url, "https://r.example");
  EXPECT_EQ(az.health_path, "/openai/models?api-version=2030-01-01");
  az = loaded(
      R"({"provider": "azure", "url": "https://r.example", "deployment": "d",
          "health_path": "/ping"})");
  EXPECT_EQ(az.health_path, "/ping");
  EXPECT_EQ(loaded(R"({"provider": "generic", "url": "http://h:1"})").health_path, "/v1/models");
  EXPECT_EQ(loaded(R"({"url": "http://h:1", "health_path": ""})").health_path, "");

  // The echo worker is served in process: its `url` is not read.
  WorkerConfig echo = loaded(R"({"provider": "echo", "url": "not a url"})");
  EXPECT_EQ(echo.provider, "echo");
  EXPECT_EQ(echo.url, "");
}

// ------------------------------------------------------------------------------ recorded at HTTP

// One request as a loopback SoupServer received it.
struct Recorded {
  std::string method;
  std::string path;
  std::string query;
  std::map<std::string, std::string> headers;
  std::string body;
};

class RecordingServer {
 public:
  RecordingServer() {
    server_ = Ref<SoupServer>::adopt(soup_server_new(nullptr, nullptr));
    soup_server_add_handler(server_.get(), nullptr, &RecordingServer::handle, this, nullptr);
    rtgw::UniqueError err;
    if (!soup_server_listen_local(server_.get(), 0, SOUP_SERVER_LISTEN_IPV4_ONLY,
                                  rtgw::ErrorOut(err)))
      throw std::runtime_error(err ? err->message : "listen failed");
    GSList* uris = soup_server_get_uris(server_.get());
    url_ = "http://127.0.0.1:" + std::to_string(g_uri_get_port(static_cast<GUri*>(uris->data)));
    g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  }
  ~RecordingServer() { soup_server_disconnect(server_.get()); }

  const std::string& url() const { return url_; }
  std::vector<Recorded> requests;
  // What the next requests are answered with.
  guint status = 201;
  std::string content_type = "application/sdp";
  std::string body = kAnswer;
  std::string location = "/v1/realtime/calls/rtc_recorded";

 private:
  static void handle(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*,
                     gpointer self_ptr) {
    auto* self = static_cast<RecordingServer*>(self_ptr);
    Recorded r;
    r.method = soup_server_message_get_method(msg);
    GUri* uri = soup_server_message_get_uri(msg);
    r.path = g_uri_get_path(uri);
    r.query = g_uri_get_query(uri) ? g_uri_get_query(uri) : "";
    SoupMessageHeadersIter it;
    soup_message_headers_iter_init(&it, soup_server_message_get_request_headers(msg));
    const char* name = nullptr;
    const char* value = nullptr;
    while (soup_message_headers_iter_next(&it, &name, &value)) r.headers[name] = value;
    auto bytes =
        Ref<GBytes>::adopt(soup_message_body_flatten(soup_server_message_get_request_body(msg)));
    gsize len = 0;
    const char* data = static_cast<const char*>(g_bytes_get_data(bytes.get(), &len));
    r.body.assign(data ? data : "", len);
    self->requests.push_back(std::move(r));
    soup_server_message_set_status(msg, self->status, nullptr);
    if (!self->location.empty())
      soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Location",
                                   self->location.c_str());
    soup_server_message_set_response(msg, self->content_type.c_str(), SOUP_MEMORY_COPY,
                                     self->body.data(), self->body.size());
  }

  Ref<SoupServer> server_;
  std::string url_;
};

// Runs the default main context until `done` or 10 s.
template <typename Done>
bool spin_until(Done done) {
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while (!done() && g_get_monotonic_time() < deadline) g_main_context_iteration(nullptr, FALSE);
  return done();
}

UpstreamResult exchange(rtgw::workers::Worker& w, const OfferRequest& offer) {
  std::optional<UpstreamResult> result;
  w.exchange(offer, nullptr, [&](UpstreamResult r) { result = std::move(r); });
  EXPECT_TRUE(spin_until([&] { return result.has_value(); })) << "no answer in 10 s";
  return result ? std::move(*result) : UpstreamResult{UpstreamFailure{}};
}

TEST(Providers, AzureWorkerSendsWhatItsDialectBuilds) {
  RecordingServer server;
  server.location = "/openai/deployments/my%20realtime/realtime/calls/rtc_az";
  WorkerConfig config = azure_worker(server.url());
  config.health_path.clear();
  rtgw::workers::Worker w(config);
  EXPECT_EQ(&w.provider(), &providers::azure());

  const std::string session = R"({"type":"realtime","voice":"marin"})";
  UpstreamResult r = exchange(w, OfferRequest{kOffer, "gpt-realtime", session});
  ASSERT_TRUE(std::holds_alternative<UpstreamAnswer>(r));
  EXPECT_EQ(std::get<UpstreamAnswer>(r).sdp, kAnswer);
  EXPECT_EQ(std::get<UpstreamAnswer>(r).upstream_call_id, "rtc_az");

  ASSERT_EQ(server.requests.size(), 1u);
  const Recorded& call = server.requests[0];
  EXPECT_EQ(call.method, "POST");
  // SoupServer hands the path decoded; the dialect test above pins its encoding.
  EXPECT_EQ(call.path, "/openai/deployments/my realtime/realtime/calls");
  EXPECT_EQ(call.query, "api-version=2025-08-28");
  EXPECT_EQ(call.headers.at("api-key"), "az-key");
  EXPECT_EQ(call.headers.count("Authorization"), 0u);
  EXPECT_EQ(call.headers.at("Accept"), "application/sdp, application/json");
  EXPECT_EQ(call.headers.at("User-Agent"), std::string("realtime-gateway/") + RTGW_TEST_VERSION);
  EXPECT_EQ(form_fields(call.headers.at("Content-Type"), call.body),
            (std::map<std::string, std::string>{{"sdp", kOffer}, {"session", session}}));

  w.hangup("rtc_az");
  ASSERT_TRUE(spin_until([&] { return server.requests.size() == 2; }));
  EXPECT_EQ(server.requests[1].method, "POST");
  EXPECT_EQ(server.requests[1].path,
            "/openai/deployments/my realtime/realtime/calls/rtc_az/hangup");
  EXPECT_EQ(server.requests[1].query, "api-version=2025-08-28");
  EXPECT_EQ(server.requests[1].headers.at("api-key"), "az-key");
}

TEST(Providers, OpenAiWorkerSendsSdpWithBearerAndPassesErrorsThrough) {
  RecordingServer server;
  WorkerConfig config = worker("openai", server.url());
  config.health_path.clear();
  rtgw::workers::Worker w(config);

  UpstreamResult r = exchange(w, OfferRequest{kOffer, "gpt-realtime", std::nullopt});
  ASSERT_TRUE(std::holds_alternative<UpstreamAnswer>(r));
  EXPECT_EQ(std::get<UpstreamAnswer>(r).upstream_call_id, "rtc_recorded");
  ASSERT_EQ(server.requests.size(), 1u);
  EXPECT_EQ(server.requests[0].path, "/v1/realtime/calls");
  EXPECT_EQ(server.requests[0].query, "model=gpt-realtime");
  EXPECT_EQ(server.requests[0].headers.at("Authorization"), "Bearer sk-worker");
  EXPECT_EQ(server.requests[0].headers.count("api-key"), 0u);
  EXPECT_EQ(server.requests[0].headers.at("Content-Type"), "application/sdp");
  EXPECT_EQ(server.requests[0].body, kOffer);

  server.status = 429;
  server.content_type = "application/json";
  server.body = R"({"error":{"type":"rate_limit_exceeded"}})";
  server.location.clear();
  r = exchange(w, OfferRequest{kOffer, "gpt-realtime", std::nullopt});
  ASSERT_TRUE(std::holds_alternative<UpstreamFailure>(r));
  EXPECT_EQ(std::get<UpstreamFailure>(r).kind, UpstreamFailure::Kind::kStatus);
  EXPECT_EQ(std::get<UpstreamFailure>(r).status, 429);
  EXPECT_EQ(std::get<UpstreamFailure>(r).body, server.body);
}

}  // namespace
