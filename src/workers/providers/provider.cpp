// SPDX-License-Identifier: MIT
#include "workers/providers/provider.h"

#include <glib.h>
#include <libsoup/soup.h>

#include <memory>

#include "common/ref.h"

namespace rtgw::workers::providers {

std::string escape(const std::string& value) {
  UniqueStr escaped(g_uri_escape_string(value.c_str(), nullptr, FALSE));
  return escaped.get();
}

RequestBody Provider::encode_offer(const OfferRequest& request) const {
  if (!request.session_json) return {"application/sdp", request.offer_sdp};
  // libsoup writes the multipart body and its Content-Type (with a fresh boundary) into headers:
  // a scratch set here, so the dialect stays a pure function of the request.
  auto multipart = std::unique_ptr<SoupMultipart, decltype(&soup_multipart_free)>(
      soup_multipart_new("multipart/form-data"), soup_multipart_free);
  soup_multipart_append_form_string(multipart.get(), "sdp", request.offer_sdp.c_str());
  soup_multipart_append_form_string(multipart.get(), "session", request.session_json->c_str());
  auto headers = std::unique_ptr<SoupMessageHeaders, decltype(&soup_message_headers_unref)>(
      soup_message_headers_new(SOUP_MESSAGE_HEADERS_REQUEST), soup_message_headers_unref);
  GBytes* body_raw = nullptr;
  soup_multipart_to_message(multipart.get(), headers.get(), &body_raw);
  auto body = Ref<GBytes>::adopt(body_raw);
  gsize len = 0;
  const char* data = static_cast<const char*>(g_bytes_get_data(body.get(), &len));
  const char* type = soup_message_headers_get_one(headers.get(), "Content-Type");
  return {type ? type : "multipart/form-data", std::string(data ? data : "", len)};
}

UpstreamResult Provider::decode_answer(int status, std::string body, const char* location) const {
  if (status < 200 || status >= 300)
    return UpstreamFailure{UpstreamFailure::Kind::kStatus, status, std::move(body),
                           "the worker answered " + std::to_string(status)};
  if (body.rfind("v=0", 0) != 0)
    return UpstreamFailure{
        UpstreamFailure::Kind::kProtocol, status, {}, "the worker's answer is not an SDP"};
  UpstreamAnswer answer;
  answer.sdp = std::move(body);
  answer.upstream_call_id = call_id_from_location(location);
  return answer;
}

std::string Provider::call_id_from_location(const char* location) const {
  if (!location) return {};
  std::string loc = location;
  auto slash = loc.find_last_of('/');
  return slash == std::string::npos ? loc : loc.substr(slash + 1);
}

}  // namespace rtgw::workers::providers
