// SPDX-License-Identifier: MIT
// The config schema: one row per key.
//
// Owns: the table of every config key (JSON path, `RTGW_*` variable, type, range, default, help)
// and everything derived from it: reading a scalar key from the file and from its variable (one
// parser per type; booleans strictly), the unknown-key check of each object, the "settings"
// block of describe(), the variable list of --help and the markdown of --config-reference
// (docs/config.md is that output, checked by a test).
//
// A key is one row in schema.cpp's table plus its test. Scalars (string, secret, integer, number,
// boolean, list of strings) are read and overridden by the table alone. Arrays of objects
// (`models`, `auth.keys`) keep a structured reader (config.cpp), which the row names; their
// members have documentation rows (path with `[]`), which is also the member list that reader
// accepts.
//
// Threads: pure data and functions; used on the loading thread and by --help.
#pragma once

#include <json-glib/json-glib.h>

#include <cstdint>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "config/config.h"

namespace rtgw::config {

class Reader;

enum class Type {
  kString,
  kSecret,      // a string; in the file it may be "env:NAME"; masked by describe()
  kInteger,     // within [min, max]
  kNumber,      // within [min, max]
  kBoolean,     // JSON true/false; env exactly true, false, 1 or 0
  kStringList,  // JSON array of strings; env comma-separated
  kSection,     // an object whose members are rows
  kArray,       // an array of objects read by the row's `read`
};

// Where a scalar row's value lives in a Config.
using Slot =
    std::variant<std::string*, int*, std::int64_t*, double*, bool*, std::vector<std::string>*>;

struct Row {
  const char* path;  // dotted JSON path from the root: "limits.max_calls"; "[]" = array member
  const char* env;   // its RTGW_* override, or "" for none
  Type type;
  double min = 0;  // kInteger, kNumber: the inclusive range
  double max = 0;
  // What documentation says the default is when Config{}'s value is not the whole story
  // (sized caps, computed values); nullptr: shown from Config{} through `slot`.
  const char* default_note = nullptr;
  const char* help = "";
  // A valid value other than the default, as its env variable writes it: --config-reference
  // shows it, and the round-trip test loads it through the file and the variable.
  const char* example = "";
  Slot (*slot)(Config&) = nullptr;  // scalar rows
  // kArray, and kSection rows with more to do once their members are read (policy, cluster).
  void (*read)(const Reader&, JsonNode*, const std::string& json_path, Config&) = nullptr;
  // Also run when the value comes from the environment (RTGW_CLUSTER_REDIS_URL enables cluster).
  void (*on_env)(Config&) = nullptr;
  bool open = false;  // kSection: members without a row pass (the policy's own keys)
};

// Every row, in documentation order (sections after the top-level scalars they follow).
const std::vector<Row>& rows();
// The row at `path`, or nullptr.
const Row* find_row(const std::string& path);
// Member names of the object at `path` ("" = the root, "models[]", "limits"): the known keys.
std::set<std::string> members_of(const std::string& path);

// Reads the members of the object `obj` at `path` ("" = root) whose rows are scalar or sections,
// after rejecting members without a row; kArray rows go to their `read`.
void read_rows(const Reader& r, JsonObject* obj, const std::string& path, Config& c);
// Applies every row's RTGW_* variable that is set. Errors: "environment: RTGW_X: expected ...".
void apply_env_rows(const EnvLookup& env, Config& c);

// A scalar row's value in `c` as a JSON literal ("relay", 10, true, ["a"]); with `mask`, a
// secret shows as "(set)" or "(none)", as describe() shows it.
std::string show_value(const Row& row, Config& c, bool mask = true);
// The settings block of describe(): "path=value" for every scalar row.
std::string describe_settings(const Config& c);
// --help's list of variables: "RTGW_X  json.path (type, default): help".
std::string env_help();
// docs/config.md.
std::string reference_markdown();

}  // namespace rtgw::config
