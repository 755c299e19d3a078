// SPDX-License-Identifier: MIT
// Small JSON helpers over json-glib.
//
// Owns: parsing text into a JsonNode, serializing a node, and typed member access used by the
// config loader, the HTTP routes and the event bridge.
//
// Threads: any (pure helpers, no shared state).
#pragma once

#include <json-glib/json-glib.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/ref.h"
#include "rtevents/vocab.h"

namespace rtgw::json {

// Deepest nesting of arrays and objects that parse() accepts (the SPEC's bound): the one bound of
// the event vocabulary (plugins/rtevents/vocab.h), shared with the strict validator and the
// event reader.
inline constexpr int kMaxDepth = rtevents::kJsonMaxDepth;

// Parses `text`, which must be strict JSON (RFC 8259, checked first by the one validator,
// plugins/rtevents/json_strict.h: no comments, single quotes, trailing commas, NaN, leading
// zeros, raw control characters, invalid UTF-8 or trailing bytes) nested at most kMaxDepth deep,
// with numbers within a double's range, integers within 64 bits and no `\u0000` (json-glib would
// read those as other values). Every route, session, token, the config and the beta
// translation read JSON through here. On failure returns an empty Ref and writes why (with the
// byte offset) to `error`.
Ref<JsonNode> parse(std::string_view text, std::string* error = nullptr);

// Serializes a node compactly (no pretty printing).
std::string to_string(JsonNode* node);
std::string to_string(JsonObject* object);

// Member access that tolerates missing members and wrong types (returns nullopt).
std::optional<std::string> get_string(JsonObject* object, const char* member);
JsonObject* get_object(JsonObject* object, const char* member);

// Builds `{"type": ..., "code": ..., "message": ...}` style objects without json-glib ceremony.
class ObjectBuilder {
 public:
  ObjectBuilder();
  ObjectBuilder& set(const char* member, std::string_view value);
  ObjectBuilder& set(const char* member, const char* value) {
    return set(member, std::string_view(value));
  }
  ObjectBuilder& set(const char* member, gint64 value);
  ObjectBuilder& set(const char* member, int value) { return set(member, gint64{value}); }
  ObjectBuilder& set(const char* member, double value);
  ObjectBuilder& set(const char* member, bool value);
  ObjectBuilder& set_null(const char* member);
  ObjectBuilder& set_node(const char* member, Ref<JsonNode> node);  // node copied if shared
  ObjectBuilder& set_object(const char* member, ObjectBuilder&& child);
  JsonObject* object() const { return object_; }
  Ref<JsonNode> node() const;
  std::string str() const;

 private:
  Ref<JsonNode> node_;
  JsonObject* object_;  // owned by node_
};

}  // namespace rtgw::json
