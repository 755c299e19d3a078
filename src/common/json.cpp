// SPDX-License-Identifier: MIT
#include "common/json.h"

#include <cmath>
#include <cstring>

#include "rtevents/json_strict.h"

namespace rtgw::json {

static_assert(kMaxDepth == rtevents::strict_json::kMaxDepth, "one depth bound");

namespace {

// Every double in the tree is finite (the tree is at most kMaxDepth deep: parse() checked it
// before json-glib built it, so the recursion is bounded).
bool numbers_finite(JsonNode* node) {
  switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_VALUE:
      return json_node_get_value_type(node) != G_TYPE_DOUBLE ||
             std::isfinite(json_node_get_double(node));
    case JSON_NODE_ARRAY: {
      JsonArray* array = json_node_get_array(node);
      for (guint i = 0, n = json_array_get_length(array); i < n; ++i)
        if (!numbers_finite(json_array_get_element(array, i))) return false;
      return true;
    }
    case JSON_NODE_OBJECT: {
      JsonObjectIter iter;
      json_object_iter_init(&iter, json_node_get_object(node));
      const char* name = nullptr;
      JsonNode* member = nullptr;
      while (json_object_iter_next(&iter, &name, &member))
        if (!numbers_finite(member)) return false;
      return true;
    }
    default:
      return true;
  }
}

}  // namespace

Ref<JsonNode> parse(std::string_view text, std::string* error) {
  // json-glib 1.6 is laxer than JSON (comments, single quotes, octal escapes) and recurses with
  // no depth bound: it only ever sees text the strict validator passed, nested at most kMaxDepth
  // deep, with lone surrogate escapes replaced.
  auto checked = rtevents::strict_json::check(text, kMaxDepth, /*json_glib=*/true);
  if (!checked.ok) {
    if (error) *error = checked.message();
    return {};
  }
  if (checked.repaired) text = *checked.repaired;
  auto parser = Ref<JsonParser>::adopt(json_parser_new());
  UniqueError err;
  if (!json_parser_load_from_data(parser.get(), text.data(), static_cast<gssize>(text.size()),
                                  ErrorOut(err))) {
    if (error) *error = err ? err->message : "invalid JSON";
    return {};
  }
  JsonNode* root = json_parser_get_root(parser.get());
  if (!root) {
    if (error) *error = "empty document";
    return {};
  }
  // json-glib reads a number beyond a double's range (`1e999`) as infinity, and writes it back as
  // `inf.0`, which is not JSON: such a document is refused here, so nothing we forward or answer
  // can carry one.
  if (!numbers_finite(root)) {
    if (error) *error = "a number is out of range (beyond a double's magnitude)";
    return {};
  }
  return Ref<JsonNode>::retain(root);
}

namespace {

// json-glib writes a double with g_ascii_dtostr and appends ".0" when that text has no '.', so
// 1e20 comes out as `1e+20.0`, which is not JSON (the fuzz target `beta` found it). Outside
// strings an 'e' after a digit can only be an exponent: the ".0" after its digits is dropped.
std::string repair_exponents(const std::string& text) {
  if (text.find_first_of("eE") == std::string::npos) return text;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    out += c;
    if (in_string) {
      if (c == '\\' && i + 1 < text.size())
        out += text[++i];
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if ((c != 'e' && c != 'E') || out.size() < 2 || !digit(out[out.size() - 2])) continue;
    std::size_t j = i + 1;
    if (j < text.size() && (text[j] == '+' || text[j] == '-')) out += text[j++];
    while (j < text.size() && digit(text[j])) out += text[j++];
    if (j + 1 < text.size() && text[j] == '.' && text[j + 1] == '0' &&
        (j + 2 == text.size() || !digit(text[j + 2])))
      j += 2;
    i = j - 1;
  }
  return out;
}

}  // namespace

std::string to_string(JsonNode* node) {
  auto gen = Ref<JsonGenerator>::adopt(json_generator_new());
  json_generator_set_root(gen.get(), node);
  gsize len = 0;
  UniqueStr data(json_generator_to_data(gen.get(), &len));
  return repair_exponents(std::string(data.get(), len));
}

std::string to_string(JsonObject* object) {
  auto node = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT));
  json_node_set_object(node.get(), object);
  return to_string(node.get());
}

std::optional<std::string> get_string(JsonObject* object, const char* member) {
  if (!object) return std::nullopt;
  JsonNode* node = json_object_get_member(object, member);
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
      json_node_get_value_type(node) != G_TYPE_STRING)
    return std::nullopt;
  return std::string(json_node_get_string(node));
}

JsonObject* get_object(JsonObject* object, const char* member) {
  if (!object) return nullptr;
  JsonNode* node = json_object_get_member(object, member);
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_OBJECT) return nullptr;
  return json_node_get_object(node);
}

ObjectBuilder::ObjectBuilder()
    : node_(Ref<JsonNode>::adopt(json_node_new(JSON_NODE_OBJECT))), object_(json_object_new()) {
  json_node_take_object(node_.get(), object_);
}

ObjectBuilder& ObjectBuilder::set(const char* member, std::string_view value) {
  json_object_set_string_member(object_, member, std::string(value).c_str());
  return *this;
}
ObjectBuilder& ObjectBuilder::set(const char* member, gint64 value) {
  json_object_set_int_member(object_, member, value);
  return *this;
}
ObjectBuilder& ObjectBuilder::set(const char* member, double value) {
  json_object_set_double_member(object_, member, value);
  return *this;
}
ObjectBuilder& ObjectBuilder::set(const char* member, bool value) {
  json_object_set_boolean_member(object_, member, value);
  return *this;
}
ObjectBuilder& ObjectBuilder::set_null(const char* member) {
  json_object_set_null_member(object_, member);
  return *this;
}
ObjectBuilder& ObjectBuilder::set_node(const char* member, Ref<JsonNode> node) {
  // json_object_set_member takes ownership of one reference.
  json_object_set_member(object_, member, node.release());
  return *this;
}
ObjectBuilder& ObjectBuilder::set_object(const char* member, ObjectBuilder&& child) {
  return set_node(member, child.node());
}
Ref<JsonNode> ObjectBuilder::node() const { return node_; }
std::string ObjectBuilder::str() const { return to_string(node_.get()); }

}  // namespace rtgw::json
