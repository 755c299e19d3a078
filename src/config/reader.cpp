// SPDX-License-Identifier: MIT
#include "config/reader.h"

#include <sstream>

namespace rtgw::config {

std::string shortest(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

JsonNode* member(JsonObject* obj, const char* name) {
  return json_object_has_member(obj, name) ? json_object_get_member(obj, name) : nullptr;
}

void Reader::fail(const std::string& path, const std::string& reason) const {
  throw ConfigError(file_, path, reason);
}

JsonObject* Reader::object(JsonNode* node, const std::string& path) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_OBJECT) fail(path, "expected an object");
  return json_node_get_object(node);
}

void Reader::only(JsonObject* obj, const std::string& path,
                  const std::set<std::string>& known) const {
  GList* members = json_object_get_members(obj);
  std::string bad;
  for (GList* l = members; l; l = l->next) {
    auto* name = static_cast<const char*>(l->data);
    // "//" members are comments (the packaged example config explains itself with them).
    if (g_str_has_prefix(name, "//")) continue;
    if (!known.count(name) && bad.empty()) bad = name;
  }
  g_list_free(members);
  if (!bad.empty()) fail(path + "." + bad, "unknown key");
}

std::string Reader::string(JsonNode* node, const std::string& path) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
      json_node_get_value_type(node) != G_TYPE_STRING)
    fail(path, "expected a string");
  return json_node_get_string(node);
}

std::string Reader::secret(JsonNode* node, const std::string& path) const {
  std::string value = string(node, path);
  if (value.rfind("env:", 0) == 0) {
    std::string name = value.substr(4);
    auto resolved = env_(name);
    if (!resolved || resolved->empty()) fail(path, "environment variable " + name + " is not set");
    return *resolved;
  }
  return value;
}

std::int64_t Reader::integer(JsonNode* node, const std::string& path, std::int64_t min,
                             std::int64_t max) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
      json_node_get_value_type(node) != G_TYPE_INT64)
    fail(path, "expected an integer");
  std::int64_t v = json_node_get_int(node);
  if (v < min || v > max)
    fail(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return v;
}

double Reader::number(JsonNode* node, const std::string& path, double min, double max) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE) fail(path, "expected a number");
  GType t = json_node_get_value_type(node);
  double v;
  if (t == G_TYPE_INT64)
    v = static_cast<double>(json_node_get_int(node));
  else if (t == G_TYPE_DOUBLE)
    v = json_node_get_double(node);
  else
    fail(path, "expected a number");
  // NaN fails too (the comparisons below are false for it).
  if (!(v >= min && v <= max))
    fail(path, "must be a number between " + shortest(min) + " and " + shortest(max));
  return v;
}

bool Reader::boolean(JsonNode* node, const std::string& path) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_VALUE ||
      json_node_get_value_type(node) != G_TYPE_BOOLEAN)
    fail(path, "expected true or false");
  return json_node_get_boolean(node);
}

std::vector<std::string> Reader::strings(JsonNode* node, const std::string& path) const {
  if (!node || JSON_NODE_TYPE(node) != JSON_NODE_ARRAY) fail(path, "expected an array of strings");
  std::vector<std::string> out;
  JsonArray* arr = json_node_get_array(node);
  for (guint i = 0; i < json_array_get_length(arr); i++)
    out.push_back(string(json_array_get_element(arr, i), path + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace rtgw::config
