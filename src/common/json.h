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

namespace rtgw::json {

// Deepest nesting of arrays and objects that parse() accepts (the SPEC's bound).
inline constexpr int kMaxDepth = 64;

// Offset of the first `[` or `{` that opens level `max_depth + 1`, if any. Linear, no recursion.
std::optional<std::size_t> nesting_beyond(std::string_view text, int max_depth);

// Parses `text` (refused when nested deeper than kMaxDepth); on failure returns an empty Ref
// and writes the parser's message to `error`.
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
