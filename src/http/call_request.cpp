// SPDX-License-Identifier: MIT
#include "http/call_request.h"

#include <libsoup/soup.h>

#include "common/json.h"
#include "common/ref.h"
#include "http/http_error.h"

namespace rtgw::http {
namespace {

struct MultipartDeleter {
  void operator()(SoupMultipart* m) const { soup_multipart_free(m); }
};
struct HeadersDeleter {
  void operator()(SoupMessageHeaders* h) const { soup_message_headers_unref(h); }
};
struct HashTableDeleter {
  void operator()(GHashTable* t) const { g_hash_table_unref(t); }
};

std::string media_type(const char* content_type) {
  std::string type = content_type ? content_type : "";
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  UniqueStr lower(g_ascii_strdown(type.c_str(), -1));
  return lower.get();
}

}  // namespace

CallRequest parse_call_request(const char* content_type, const std::string& body) {
  std::string type = media_type(content_type);
  CallRequest request;
  if (type == "application/sdp") {
    request.sdp = body;
    return request;
  }
  if (type != "multipart/form-data")
    throw errors::bad_request("invalid_content_type",
                              "Content-Type must be application/sdp or multipart/form-data");

  std::unique_ptr<SoupMessageHeaders, HeadersDeleter> headers(
      soup_message_headers_new(SOUP_MESSAGE_HEADERS_MULTIPART));
  soup_message_headers_replace(headers.get(), "Content-Type", content_type);
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(body.data(), body.size()));
  std::unique_ptr<SoupMultipart, MultipartDeleter> multipart(
      soup_multipart_new_from_message(headers.get(), bytes.get()));
  if (!multipart)
    throw errors::bad_request("invalid_multipart", "the multipart body could not be parsed");

  bool have_sdp = false;
  for (int i = 0; i < soup_multipart_get_length(multipart.get()); i++) {
    SoupMessageHeaders* part_headers = nullptr;
    GBytes* part_body = nullptr;
    if (!soup_multipart_get_part(multipart.get(), i, &part_headers, &part_body)) continue;
    char* disposition = nullptr;
    GHashTable* params = nullptr;
    if (!soup_message_headers_get_content_disposition(part_headers, &disposition, &params))
      continue;
    UniqueStr disposition_owned(disposition);
    std::unique_ptr<GHashTable, HashTableDeleter> params_owned(params);
    auto* name = static_cast<const char*>(g_hash_table_lookup(params, "name"));
    gsize len = 0;
    auto* data = static_cast<const char*>(g_bytes_get_data(part_body, &len));
    std::string value(data ? data : "", len);
    if (g_strcmp0(name, "sdp") == 0) {
      request.sdp = std::move(value);
      have_sdp = true;
    } else if (g_strcmp0(name, "session") == 0) {
      if (json::nesting_beyond(value, json::kMaxDepth))
        throw errors::bad_request("invalid_json", "the `session` field is nested deeper than " +
                                                      std::to_string(json::kMaxDepth) + " levels");
      std::string error;
      auto node = json::parse(value, &error);
      if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
        throw errors::bad_request("invalid_multipart",
                                  "the `session` field must be a JSON object" +
                                      (error.empty() ? std::string() : ": " + error));
      request.shape = session_shape(json_node_get_object(node.get()));
      request.session_model = request.shape.model;
      request.session_json = std::move(value);
    }
  }
  if (!have_sdp)
    throw errors::bad_request("invalid_multipart", "the multipart body has no `sdp` field");
  return request;
}

std::string session_for_upstream(const std::string& session_json,
                                 const std::string& upstream_model) {
  auto node = json::parse(session_json);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) return session_json;
  try {
    set_session_model(json_node_get_object(node.get()), upstream_model);
  } catch (const HttpError&) {
    return session_json;  // an unknown type was refused when the session came in
  }
  return json::to_string(node.get());
}

}  // namespace rtgw::http
