// SPDX-License-Identifier: MIT
#include "http/call_request.h"

#include <libsoup/soup.h>

#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/ref.h"
#include "http/http_error.h"

namespace rtgw::http {
namespace {

struct HeadersDeleter {
  void operator()(SoupMessageHeaders* h) const { soup_message_headers_unref(h); }
};
struct HashTableDeleter {
  void operator()(GHashTable* t) const { g_hash_table_unref(t); }
};

struct FormField {
  std::string name;  // the Content-Disposition `name` ("" when the part has none)
  std::string_view value;
};

// The `name` of a part's Content-Disposition header, from the part's header block (CRLF lines).
std::string disposition_name(std::string_view header_block) {
  std::size_t at = 0;
  while (at < header_block.size()) {
    std::size_t eol = header_block.find("\r\n", at);
    if (eol == std::string_view::npos) eol = header_block.size();
    std::string_view line = header_block.substr(at, eol - at);
    at = eol + 2;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string field(line.substr(0, colon));
    if (g_ascii_strcasecmp(g_strstrip(field.data()), "content-disposition") != 0) continue;
    std::string value(line.substr(colon + 1));
    if (value.find('\0') != std::string::npos) return "";
    std::unique_ptr<SoupMessageHeaders, HeadersDeleter> headers(
        soup_message_headers_new(SOUP_MESSAGE_HEADERS_MULTIPART));
    soup_message_headers_replace(headers.get(), "Content-Disposition", g_strstrip(value.data()));
    char* disposition = nullptr;
    GHashTable* params = nullptr;
    if (!soup_message_headers_get_content_disposition(headers.get(), &disposition, &params))
      return "";
    UniqueStr disposition_owned(disposition);
    std::unique_ptr<GHashTable, HashTableDeleter> params_owned(params);
    auto* name = static_cast<const char*>(g_hash_table_lookup(params, "name"));
    return name ? name : "";
  }
  return "";
}

// Splits a multipart/form-data body (RFC 7578, RFC 2046 section 5.1.1) into its fields, every
// offset checked against the body. Ours because libsoup 3.2's soup_multipart_new_from_message
// reads past the body and makes parts of negative length on malformed input (found by
// tests/fuzz multipart). nullopt: not a multipart body.
std::optional<std::vector<FormField>> split_form_data(std::string_view body,
                                                      const std::string& boundary) {
  const std::string delimiter = "--" + boundary;
  const std::string next_delimiter = "\r\n" + delimiter;
  // The first delimiter opens the body or a line (anything before it is preamble).
  std::size_t at = body.rfind(delimiter, 0) == 0 ? 0 : body.find(next_delimiter);
  if (at == std::string_view::npos) return std::nullopt;
  if (at != 0) at += 2;
  std::vector<FormField> fields;
  for (;;) {
    at += delimiter.size();
    if (body.substr(at, 2) == "--") return fields;                           // the close delimiter
    while (at < body.size() && (body[at] == ' ' || body[at] == '\t')) ++at;  // LWSP padding
    if (body.substr(at, 2) != "\r\n") return std::nullopt;
    at += 2;
    // The part runs up to the CRLF before the next delimiter; its headers end at a blank line.
    const std::size_t end = body.find(next_delimiter, at);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view part = body.substr(at, end - at);
    std::size_t blank = part.rfind("\r\n", 0) == 0 ? 0 : part.find("\r\n\r\n");
    if (blank == std::string_view::npos) return std::nullopt;
    std::size_t content = blank == 0 ? 2 : blank + 4;
    fields.push_back({disposition_name(part.substr(0, blank)), part.substr(content)});
    at = end + 2;
  }
}

std::string media_type(const char* content_type) {
  std::string type = content_type ? content_type : "";
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  UniqueStr lower(g_ascii_strdown(type.c_str(), -1));
  return lower.get();
}

}  // namespace

CallRequest parse_call_request(const char* content_type, const std::string& body,
                               bool realtime_session) {
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
  GHashTable* params = nullptr;
  soup_message_headers_get_content_type(headers.get(), &params);
  std::unique_ptr<GHashTable, HashTableDeleter> params_owned(params);
  auto* boundary =
      params ? static_cast<const char*>(g_hash_table_lookup(params, "boundary")) : nullptr;
  std::optional<std::vector<FormField>> fields;
  if (boundary && *boundary && strlen(boundary) <= 200) fields = split_form_data(body, boundary);
  if (!fields)
    throw errors::bad_request("invalid_multipart", "the multipart body could not be parsed");

  bool have_sdp = false;
  for (const FormField& field : *fields) {
    const std::string& name = field.name;
    std::string value(field.value);
    if (name == "sdp") {
      request.sdp = std::move(value);
      have_sdp = true;
    } else if (name == "session") {
      // Not strict JSON (comments, single quotes, nested deeper than 64, ...): invalid_json;
      // JSON but no object: the form is wrong.
      std::string error;
      auto node = json::parse(value, &error);
      if (!node)
        throw errors::bad_request("invalid_json",
                                  "the `session` field is not valid JSON: " + error);
      if (JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
        throw errors::bad_request("invalid_multipart", "the `session` field must be a JSON object");
      if (realtime_session) {
        request.shape = session_shape(json_node_get_object(node.get()));
        request.session_model = request.shape.model;
      }
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
