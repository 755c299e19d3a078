// SPDX-License-Identifier: MIT
// Fuzz target `json_differential`: the strict validator against json-glib and json::parse.
// - Whatever the validator refuses (json-glib profile), json::parse (the one entry every route,
//   session, token, the config and the beta translation use) refuses too.
// - Whatever it accepts, json-glib 1.6 parses, and to the same tree as the independent reading
//   of the span-preserving event reader (rtevents/json.h): same types, same array elements, same
//   object members (the last of duplicates, as json-glib keeps), the same decoded strings, the
//   same integers and doubles (g_ascii_strtod of the literal). Compared by serializing both
//   trees canonically. json::parse then accepts it too, unless a number is beyond a double (its
//   documented refusal).
#include <glib.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include "common/json.h"
#include "fuzz_util.h"
#include "rtevents/json.h"
#include "rtevents/json_strict.h"

using namespace rtgw;
namespace strict = rtevents::strict_json;
using rtevents::json::Type;
using rtevents::json::Value;

namespace {

void quote(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void number(std::string& out, bool is_int, std::int64_t i, double d) {
  char buf[64];
  if (is_int)
    std::snprintf(buf, sizeof buf, "i%lld", static_cast<long long>(i));
  else
    std::snprintf(buf, sizeof buf, "d%.17g", d);
  out += buf;
}

// The event reader's tree, canonical: objects keep the last of duplicate keys, sorted by key.
bool write_lenient(std::string& out, const Value& v, int depth) {
  switch (v.type) {
    case Type::kNull:
      out += "null";
      return true;
    case Type::kBool:
      out += v.boolean ? "true" : "false";
      return true;
    case Type::kString:
      quote(out, *v.as_string());
      return true;
    case Type::kNumber: {
      const std::string raw(v.raw);
      const bool is_int = raw.find_first_of(".eE") == std::string::npos;
      if (is_int) {
        const auto i = v.as_int();
        if (!i) return false;  // beyond 64 bits: the json-glib profile refuses it
        number(out, true, *i, 0);
      } else {
        number(out, false, 0, g_ascii_strtod(raw.c_str(), nullptr));
      }
      return true;
    }
    case Type::kArray:
      out += '[';
      for (const Value& item : v.items) {
        if (!write_lenient(out, item, depth + 1)) return false;
        out += ',';
      }
      out += ']';
      return true;
    case Type::kObject: {
      std::map<std::string, const Value*> last;
      for (const auto& m : v.members) last[m.key] = &m.value;
      out += '{';
      for (const auto& [key, value] : last) {
        quote(out, key);
        out += ':';
        if (!write_lenient(out, *value, depth + 1)) return false;
        out += ',';
      }
      out += '}';
      return true;
    }
    case Type::kOpaque:
      return false;  // deeper than the reader builds: not compared
  }
  return false;
}

void write_glib(std::string& out, JsonNode* node) {
  switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_NULL:
      out += "null";
      return;
    case JSON_NODE_VALUE:
      switch (json_node_get_value_type(node)) {
        case G_TYPE_BOOLEAN:
          out += json_node_get_boolean(node) ? "true" : "false";
          return;
        case G_TYPE_STRING:
          quote(out, json_node_get_string(node));
          return;
        case G_TYPE_INT64:
          number(out, true, json_node_get_int(node), 0);
          return;
        case G_TYPE_DOUBLE:
          number(out, false, 0, json_node_get_double(node));
          return;
        default:
          out += "?";
          return;
      }
    case JSON_NODE_ARRAY: {
      JsonArray* array = json_node_get_array(node);
      out += '[';
      for (guint i = 0, n = json_array_get_length(array); i < n; ++i) {
        write_glib(out, json_array_get_element(array, i));
        out += ',';
      }
      out += ']';
      return;
    }
    case JSON_NODE_OBJECT: {
      std::map<std::string, JsonNode*> members;
      JsonObjectIter iter;
      json_object_iter_init(&iter, json_node_get_object(node));
      const char* name = nullptr;
      JsonNode* member = nullptr;
      while (json_object_iter_next(&iter, &name, &member)) members[name] = member;
      out += '{';
      for (const auto& [key, value] : members) {
        quote(out, key);
        out += ':';
        write_glib(out, value);
        out += ',';
      }
      out += '}';
      return;
    }
  }
}

bool has_infinite(JsonNode* node) {
  std::string s;
  write_glib(s, node);
  return s.find("dinf") != std::string::npos || s.find("d-inf") != std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_view(data, size);
  const auto r = strict::check(text, strict::kMaxDepth, /*json_glib=*/true);
  std::string error;
  auto parsed = json::parse(text, &error);
  if (!r.ok) {
    if (parsed) fuzz::fail("json::parse accepted what the validator refuses", text);
    return 0;
  }
  const std::string_view clean = r.repaired ? std::string_view(*r.repaired) : text;
  // json-glib on its own, on the text the validator passed.
  auto parser = Ref<JsonParser>::adopt(json_parser_new());
  if (!json_parser_load_from_data(parser.get(), clean.data(), static_cast<gssize>(clean.size()),
                                  nullptr))
    fuzz::fail("json-glib refuses what the validator accepts", text);
  JsonNode* root = json_parser_get_root(parser.get());
  if (!root) fuzz::fail("json-glib has no root for accepted text", text);
  if (!parsed) {
    if (has_infinite(root)) return 0;  // json::parse's documented refusal (1e999)
    fuzz::fail("json::parse refused what the validator accepts", error);
  }
  const auto lenient = rtevents::json::parse(clean);
  if (!lenient.root) fuzz::fail("the event reader refuses accepted text", text);
  std::string expected, actual;
  if (!write_lenient(expected, *lenient.root, 0)) return 0;
  write_glib(actual, root);
  if (expected != actual) fuzz::fail("json-glib read another tree", expected + "\n" + actual);
  std::string through_parse;
  write_glib(through_parse, parsed.get());
  if (through_parse != actual) fuzz::fail("json::parse returned another tree", text);
  return 0;
}
