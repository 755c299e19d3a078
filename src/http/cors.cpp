// SPDX-License-Identifier: MIT
#include "http/cors.h"

#include <glib.h>

#include <sstream>
#include <string_view>

#include "common/ref.h"

namespace rtgw::http {
namespace {

constexpr const char* kAllowedMethods = "GET, POST, OPTIONS";
constexpr const char* kExposedHeaders = "Location, Content-Type";
constexpr const char* kMaxAgeSeconds = "600";

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(g_ascii_tolower(c));
  return s;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

bool CorsPolicy::is_token(const std::string& name) {
  // RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
  // "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
  static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  if (name.empty()) return false;
  for (char c : name)
    if (!g_ascii_isalnum(c) && kSymbols.find(c) == std::string_view::npos) return false;
  return true;
}

std::optional<std::string> CorsPolicy::allowed_headers(const std::string& requested) {
  std::stringstream in(requested);
  std::string item, allowed;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;  // "a,,b" and a trailing comma are tolerated, as browsers send
    if (!is_token(item)) return std::nullopt;
    allowed += (allowed.empty() ? "" : ", ") + lower(item);
  }
  return allowed;
}

bool CorsPolicy::origin_allowed(const std::string& origin, const char* host) const {
  if (host && (origin == std::string("http://") + host || origin == std::string("https://") + host))
    return true;  // same origin
  for (const auto& allowed : allowed_)
    if (allowed == "*" || allowed == origin) return true;
  return false;
}

CorsPolicy::Verdict CorsPolicy::apply(SoupServerMessage* msg) const {
  SoupMessageHeaders* req = soup_server_message_get_request_headers(msg);
  const char* origin = soup_message_headers_get_one(req, "Origin");
  if (!origin) return Verdict::kNoOrigin;
  if (!origin_allowed(origin, soup_message_headers_get_one(req, "Host"))) return Verdict::kRefused;
  SoupMessageHeaders* res = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(res, "Access-Control-Allow-Origin", origin);
  soup_message_headers_append(res, "Vary", "Origin");
  soup_message_headers_replace(res, "Access-Control-Expose-Headers", kExposedHeaders);
  return Verdict::kAllowed;
}

bool CorsPolicy::answer_preflight(SoupServerMessage* msg, Verdict verdict) const {
  if (g_strcmp0(soup_server_message_get_method(msg), "OPTIONS") != 0) return false;
  SoupMessageHeaders* req = soup_server_message_get_request_headers(msg);
  SoupMessageHeaders* res = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(res, "Allow", kAllowedMethods);
  if (verdict == Verdict::kAllowed) {
    soup_message_headers_replace(res, "Access-Control-Allow-Methods", kAllowedMethods);
    soup_message_headers_replace(res, "Access-Control-Max-Age", kMaxAgeSeconds);
    // Every header the allowed origin asks for (SPEC: SDKs add their own, new ones with new
    // versions), echoed back as long as the list is a valid token list; a malformed list is not
    // echoed at all (the browser then refuses the request).
    if (const char* wanted = soup_message_headers_get_one(req, "Access-Control-Request-Headers")) {
      if (auto allowed = allowed_headers(wanted); allowed && !allowed->empty())
        soup_message_headers_replace(res, "Access-Control-Allow-Headers", allowed->c_str());
    }
  }
  soup_server_message_set_status(msg, 204, nullptr);
  return true;
}

}  // namespace rtgw::http
