// SPDX-License-Identifier: MIT
// The operator console's routes (docs/operations.md "The operator console"):
//   GET /console (or /console/)              the page, data/console/index.html
//   GET /console/console.js, /console.css    its script and style
//   GET /console/stream[?watch=<call id>]    the live stream (http/console_streams.h), admin only
// The page and its assets carry no data and need no key; everything the page shows comes from
// the stream and the JSON endpoints, each asked with the admin key the operator typed.
//
// Threads: main loop only.
#include <array>
#include <string_view>

#include "http/http_error.h"
#include "http/server.h"

namespace rtgw::http {

namespace {

struct Asset {
  std::string_view path;
  const char* file;
  const char* content_type;
};
constexpr std::array<Asset, 4> kAssets{{
    {"/console", "index.html", "text/html; charset=utf-8"},
    {"/console/", "index.html", "text/html; charset=utf-8"},
    {"/console/console.js", "console.js", "text/javascript; charset=utf-8"},
    {"/console/console.css", "console.css", "text/css; charset=utf-8"},
}};

// The page loads only its own files and talks only to this gateway.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

std::string query_param(SoupServerMessage* msg, const char* name) {
  GUri* uri = soup_server_message_get_uri(msg);
  const char* query = uri ? g_uri_get_query(uri) : nullptr;
  if (!query) return {};
  GHashTable* params = g_uri_parse_params(query, -1, "&", G_URI_PARAMS_NONE, nullptr);
  if (!params) return {};
  auto* v = static_cast<const char*>(g_hash_table_lookup(params, name));
  std::string out = v ? v : "";
  g_hash_table_unref(params);
  return out;
}

}  // namespace

bool Server::handle_console(SoupServerMessage* msg, const std::string& method,
                            const std::string& path) {
  if (path != "/console" && path.rfind("/console/", 0) != 0) return false;
  if (method != "GET" && method != "HEAD")
    throw HttpError(405, "invalid_request_error", "method_not_allowed", "use GET");

  if (path == "/console/stream") {
    if (method != "GET")
      throw HttpError(405, "invalid_request_error", "method_not_allowed", "use GET");
    auth::Principal principal = services_.auth.authenticate(soup_message_headers_get_one(
        soup_server_message_get_request_headers(msg), "Authorization"));
    if (!principal.admin)
      throw errors::forbidden("admin_required", "the console needs an admin key");
    std::string watch = query_param(msg, "watch");
    if (watch.size() > 128)
      throw errors::bad_request("invalid_request_error", "'watch' is not a call id");
    if (!console_streams_)
      console_streams_ =
          std::make_unique<ConsoleStreams>(services_.calls, services_.sessions, console_feed_);
    console_streams_->open(msg, connections_->socket_of(msg), std::move(watch));
    return true;
  }

  for (const auto& asset : kAssets) {
    if (path != asset.path) continue;
    // Read per request, as the tester page: an operator may edit data/console without a restart.
    std::string file = services_.data_dir + "/console/" + asset.file;
    gchar* contents = nullptr;
    gsize length = 0;
    if (!g_file_get_contents(file.c_str(), &contents, &length, nullptr))
      throw errors::not_found("not_found", "the console is not installed (" + file + ")");
    UniqueStr owned(contents);
    SoupMessageHeaders* headers = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(headers, "Content-Security-Policy", kContentSecurityPolicy);
    soup_message_headers_replace(headers, "X-Content-Type-Options", "nosniff");
    soup_message_headers_replace(headers, "Cache-Control", "no-cache");
    respond(msg, 200, asset.content_type, std::string(contents, length));
    return true;
  }
  throw errors::not_found("not_found", "no route for " + method + " " + path);
}

}  // namespace rtgw::http
