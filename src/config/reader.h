// SPDX-License-Identifier: MIT
// Typed reads from a parsed JSON config, each failing with "FILE: $.json.path: reason".
//
// Owns: the file's error vocabulary ("expected a string", "must be between 1 and 10", "unknown
// key", ...) and `env:NAME` secret resolution. The schema (config/schema.h) and the structured
// readers (models, keys) read through it, so a key says the same thing wherever it is read.
//
// Threads: the loading thread only (start-up, --check-config).
#pragma once

#include <json-glib/json-glib.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace rtgw::config {

class Reader {
 public:
  Reader(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}

  [[noreturn]] void fail(const std::string& path, const std::string& reason) const;

  JsonObject* object(JsonNode* node, const std::string& path) const;
  // Rejects members not in `known` so typos do not pass silently.
  void only(JsonObject* obj, const std::string& path, const std::set<std::string>& known) const;
  std::string string(JsonNode* node, const std::string& path) const;
  // A string that may be "env:NAME".
  std::string secret(JsonNode* node, const std::string& path) const;
  std::int64_t integer(JsonNode* node, const std::string& path, std::int64_t min,
                       std::int64_t max) const;
  double number(JsonNode* node, const std::string& path, double min, double max) const;
  bool boolean(JsonNode* node, const std::string& path) const;
  std::vector<std::string> strings(JsonNode* node, const std::string& path) const;

  template <typename Fn>
  void array(JsonNode* node, const std::string& path, Fn&& each) const {
    if (!node || JSON_NODE_TYPE(node) != JSON_NODE_ARRAY) fail(path, "expected an array");
    JsonArray* arr = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(arr); i++)
      each(json_array_get_element(arr, i), path + "[" + std::to_string(i) + "]");
  }

  const std::string& file() const { return file_; }
  const EnvLookup& env() const { return env_; }

 private:
  std::string file_;
  const EnvLookup& env_;
};

// The member `name` of `obj`, or nullptr.
JsonNode* member(JsonObject* obj, const char* name);

// A number as a person writes it (0.1, 600, 1e+12), for messages.
std::string shortest(double v);

}  // namespace rtgw::config
