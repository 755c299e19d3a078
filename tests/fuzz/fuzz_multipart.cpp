// SPDX-License-Identifier: MIT
// Fuzz target `multipart`: `POST /v1/realtime/calls` bodies in multipart/form-data through
// http::parse_call_request. The first byte picks the Content-Type: even = a fixed boundary
// ("RTGWfuzz") with the rest as the body, odd = the first line of the rest is the Content-Type's
// parameters (after "multipart/form-data; ") and what follows is the body. Only HttpError may be
// thrown; an accepted `session` is a JSON object that session_for_upstream rewrites.
#include "common/json.h"
#include "fuzz_util.h"
#include "http/call_request.h"
#include "http/http_error.h"

using namespace rtgw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in = fuzz::as_view(data + 1, size - 1);
  std::string content_type = "multipart/form-data; boundary=RTGWfuzz";
  std::string body(in);
  if (data[0] & 1) {
    std::size_t nl = in.find('\n');
    if (nl == std::string_view::npos) return 0;
    content_type = "multipart/form-data; " + std::string(in.substr(0, nl));
    // A header value never holds NUL, CR or LF.
    if (content_type.find_first_of(std::string_view("\0\r", 2)) != std::string::npos) return 0;
    body = std::string(in.substr(nl + 1));
  }
  try {
    http::CallRequest request = http::parse_call_request(content_type.c_str(), body);
    if (request.session_json) {
      std::string upstream = http::session_for_upstream(*request.session_json, "gpt-realtime");
      auto node = json::parse(upstream);
      if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
        fuzz::fail("session_for_upstream made something that is not a JSON object", upstream);
    }
  } catch (const http::HttpError& e) {
    if (e.status() != 400) fuzz::fail("parse_call_request: not a 400", e.what());
  }
  return 0;
}
