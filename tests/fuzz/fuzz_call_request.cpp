// SPDX-License-Identifier: MIT
// Fuzz target `call_request`: http::parse_call_request with any Content-Type (the first line of
// the input; the rest is the body), then session_for_upstream on the accepted session and on the
// raw body. Only HttpError (400) may be thrown; session_for_upstream never throws and, given a
// JSON object, returns a JSON object whose `model` is the upstream's.
#include "common/json.h"
#include "fuzz_util.h"
#include "http/call_request.h"
#include "http/http_error.h"

using namespace rtgw;

namespace {

void check_session(const std::string& session_json) {
  const std::string upstream = http::session_for_upstream(session_json, "gpt-realtime-upstream");
  auto in = json::parse(session_json);
  if (!in || JSON_NODE_TYPE(in.get()) != JSON_NODE_OBJECT) return;  // returned as it came
  auto out = json::parse(upstream);
  if (!out || JSON_NODE_TYPE(out.get()) != JSON_NODE_OBJECT)
    fuzz::fail("session_for_upstream: not a JSON object", upstream);
  if (json::get_string(json_node_get_object(out.get()), "model") != "gpt-realtime-upstream")
    fuzz::fail("session_for_upstream: model not replaced", upstream);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  std::size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return 0;
  std::string content_type(in.substr(0, nl));
  // A header value never holds NUL, CR or LF.
  if (content_type.find_first_of(std::string_view("\0\r", 2)) != std::string::npos) return 0;
  const std::string body(in.substr(nl + 1));
  // "-" stands for a request without a Content-Type header.
  const char* header = content_type == "-" ? nullptr : content_type.c_str();
  try {
    http::CallRequest request = http::parse_call_request(header, body);
    if (request.session_json) check_session(*request.session_json);
  } catch (const http::HttpError& e) {
    if (e.status() != 400) fuzz::fail("parse_call_request: not a 400", e.what());
  }
  check_session(body);
  return 0;
}
