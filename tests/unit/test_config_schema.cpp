// SPDX-License-Identifier: MIT
// The config schema (config/schema.h): every key has a row, and every scalar row round-trips
// file -> variable -> describe() -> --help / docs; booleans are strict everywhere.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "config/config.h"
#include "config/schema.h"

namespace {

using rtgw::config::Config;
using rtgw::config::ConfigError;
using rtgw::config::EnvLookup;
using rtgw::config::Row;
using rtgw::config::Type;

EnvLookup env_of(std::map<std::string, std::string> vars, std::set<std::string>* asked = nullptr) {
  return [vars, asked](const std::string& name) -> std::optional<std::string> {
    if (asked) asked->insert(name);
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const char* kModels = R"("models": [{"name": "e", "workers": [{"provider": "echo"}]}])";

// What other keys need so that a row's example validates: cluster mode on (its URL and secret),
// a TURN server (ice_transport_policy "relay"), both UDP port bounds around the examples, a
// database (auth.key_store "postgres").
std::map<std::string, std::string> base_env() {
  return {{"RTGW_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379"},
          {"RTGW_USAGE_POSTGRES_URL", "postgresql://base@127.0.0.1/base"},
          {"RTGW_CLUSTER_SECRET", "base-secret-0123456789"},
          {"RTGW_WEBRTC_TURN_SERVERS", "turn://u:p@127.0.0.1:3478"},
          {"RTGW_WEBRTC_UDP_PORT_MIN", "30000"},
          {"RTGW_WEBRTC_UDP_PORT_MAX", "50000"},
          {"RTGW_TLS_CERT_FILE", "/base/cert.pem"},
          {"RTGW_TLS_KEY_FILE", "/base/key.pem"}};
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// The row's example (written as its variable would be) as a JSON value.
std::string example_json(const Row& row) {
  std::string v = row.example;
  switch (row.type) {
    case Type::kString:
    case Type::kSecret:
      return json_quote(v);
    case Type::kStringList: {
      std::string out = "[";
      std::stringstream ss(v);
      std::string item;
      bool first = true;
      while (std::getline(ss, item, ',')) {
        out += (first ? "" : ",") + json_quote(item);
        first = false;
      }
      return out + "]";
    }
    default:
      return v;
  }
}

// {"a": {"b": VALUE}} for the path "a.b".
std::string nest(const std::string& path, const std::string& value) {
  auto dot = path.find('.');
  if (dot == std::string::npos) return json_quote(path) + ": " + value;
  return json_quote(path.substr(0, dot)) + ": {" + nest(path.substr(dot + 1), value) + "}";
}

std::string value_of(const Row& row, Config c, bool mask) {
  return rtgw::config::show_value(row, c, mask);
}

TEST(ConfigSchema, RowsAreWellFormed) {
  std::set<std::string> paths, envs;
  for (const auto& row : rtgw::config::rows()) {
    SCOPED_TRACE(row.path);
    EXPECT_TRUE(paths.insert(row.path).second) << "two rows for one path";
    if (*row.env) {
      EXPECT_TRUE(envs.insert(row.env).second) << "two rows for " << row.env;
      EXPECT_EQ(std::string(row.env).rfind("RTGW_", 0), 0u);
    }
    EXPECT_NE(std::string(row.help), "");
    // Its parent object has a row too, so the docs and the unknown-key check know it.
    std::string path = row.path;
    auto dot = path.rfind('.');
    if (dot != std::string::npos) {
      std::string parent = path.substr(0, dot);
      if (parent.size() > 2 && parent.compare(parent.size() - 2, 2, "[]") == 0)
        parent.resize(parent.size() - 2);
      EXPECT_NE(rtgw::config::find_row(parent), nullptr) << "no row for " << parent;
    }
    bool scalar = row.type != Type::kSection && row.type != Type::kArray;
    bool member = path.find("[]") != std::string::npos;
    // A top-level or section scalar is read by the table alone: it needs a slot and an example;
    // an array member is read by its structured reader.
    if (scalar && !member) {
      EXPECT_NE(row.slot, nullptr);
      EXPECT_NE(std::string(row.example), "");
    }
    if (row.type == Type::kArray && !member) {  // an array member is its owner's to read
      EXPECT_NE(row.read, nullptr);
    }
    if (row.type == Type::kInteger || row.type == Type::kNumber) {
      EXPECT_LT(row.min, row.max);
    }
  }
}

// A variable the loader reads without a row would not be in --help or docs/config.md.
TEST(ConfigSchema, EveryVariableTheLoaderReadsHasARow) {
  std::set<std::string> asked;
  auto env = base_env();
  rtgw::config::load_from_text(std::string("{") + kModels + "}", "f", {}, env_of(env, &asked));
  std::set<std::string> documented;
  for (const auto& row : rtgw::config::rows())
    if (*row.env) documented.insert(row.env);
  for (const auto& name : asked) EXPECT_TRUE(documented.count(name)) << name << " has no row";
  for (const auto& name : documented) EXPECT_TRUE(asked.count(name)) << name << " is never read";
}

// file -> variable -> describe() -> --help -> docs, for every scalar row.
TEST(ConfigSchema, EveryScalarRowRoundTrips) {
  const std::string help = rtgw::config::env_help();
  const std::string reference = rtgw::config::reference_markdown();
  const Config defaults =
      rtgw::config::load_from_text(std::string("{") + kModels + "}", "f", {}, env_of(base_env()));
  int checked = 0;
  for (const auto& row : rtgw::config::rows()) {
    if (!row.slot) continue;
    SCOPED_TRACE(row.path);
    auto env = base_env();
    if (*row.env) env.erase(row.env);
    std::string text = "{" + std::string(kModels) + ", " + nest(row.path, example_json(row)) + "}";
    Config from_file;
    try {
      from_file = rtgw::config::load_from_text(text, "f", {}, env_of(env));
    } catch (const ConfigError& e) {
      ADD_FAILURE() << "file " << text << ": " << e.what();
      continue;
    }
    const std::string file_value = value_of(row, from_file, false);
    EXPECT_NE(file_value, value_of(row, defaults, false)) << "the example is the default";
    const std::string shown = value_of(row, from_file, true);
    EXPECT_NE(rtgw::config::describe(from_file).find("  " + std::string(row.path) + "=" + shown),
              std::string::npos)
        << "describe() does not show " << row.path << "=" << shown;
    EXPECT_NE(reference.find("| `" + std::string(row.path) + "` |"), std::string::npos);
    if (*row.env) {
      env[row.env] = row.example;
      try {
        Config from_env =
            rtgw::config::load_from_text(std::string("{") + kModels + "}", "f", {}, env_of(env));
        EXPECT_EQ(value_of(row, from_env, false), file_value) << row.env;
      } catch (const ConfigError& e) {
        ADD_FAILURE() << row.env << "=" << row.example << ": " << e.what();
      }
      EXPECT_NE(help.find("  " + std::string(row.env) + " = " + row.path + " ("), std::string::npos)
          << "--help does not list " << row.env;
    }
    checked++;
  }
  EXPECT_GE(checked, 50);
}

// Issue 23: RTGW_LOG_JSON, RTGW_WEBRTC_ICE_TCP and RTGW_WEBRTC_ICE_IPV6 read any unknown value
// as false. Every boolean is strict now, in the variable and in the file.
TEST(ConfigSchema, BooleansAreStrict) {
  const std::string plain = std::string("{") + kModels + "}";
  for (const char* name : {"RTGW_LOG_JSON", "RTGW_WEBRTC_ICE_TCP", "RTGW_WEBRTC_ICE_IPV6",
                           "RTGW_WEBRTC_JITTERBUFFER"}) {
    for (const char* bad : {"yes", "on", "TRUE", "off", "", " 1", "2"}) {
      try {
        rtgw::config::load_from_text(plain, "f", {}, env_of({{name, bad}}));
        ADD_FAILURE() << name << "='" << bad << "' accepted";
      } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), std::string("environment: ") + name +
                                             ": expected true, false, 1 or 0, got '" + bad + "'");
      }
    }
  }
  // And the good spellings still work, both ways.
  auto ice_tcp = [&](const char* v) {
    return rtgw::config::load_from_text(plain, "f", {}, env_of({{"RTGW_WEBRTC_ICE_TCP", v}}))
        .webrtc.ice_tcp;
  };
  EXPECT_TRUE(ice_tcp("true"));
  EXPECT_TRUE(ice_tcp("1"));
  EXPECT_FALSE(ice_tcp("false"));
  EXPECT_FALSE(ice_tcp("0"));
  for (const auto& row : rtgw::config::rows()) {
    if (row.type != Type::kBoolean || !row.slot) continue;
    std::string text = "{" + std::string(kModels) + ", " + nest(row.path, "\"true\"") + "}";
    try {
      rtgw::config::load_from_text(text, "f.json", {}, env_of({}));
      ADD_FAILURE() << row.path << ": \"true\" (a string) accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                "f.json: $." + std::string(row.path) + ": expected true or false");
    }
  }
}

// Ranges come from the rows, the same in the file and the variable.
TEST(ConfigSchema, RangesAreCheckedInTheFileAndTheVariable) {
  const Row* row = rtgw::config::find_row("limits.max_sidebands_per_call");
  ASSERT_NE(row, nullptr);
  std::string text =
      std::string("{") + kModels + R"(, "limits": {"max_sidebands_per_call": 1001}})";
  try {
    rtgw::config::load_from_text(text, "f.json", {}, env_of({}));
    ADD_FAILURE() << "1001 accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "f.json: $.limits.max_sidebands_per_call: must be between 0 and 1000");
  }
  try {
    rtgw::config::load_from_text(std::string("{") + kModels + "}", "f", {},
                                 env_of({{"RTGW_MAX_SIDEBANDS_PER_CALL", "1001"}}));
    ADD_FAILURE() << "1001 accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "environment: RTGW_MAX_SIDEBANDS_PER_CALL: expected an integer between 0 and 1000, "
              "got '1001'");
  }
}

// A member without a row is an unknown key, in sections and in the structured arrays alike.
TEST(ConfigSchema, AKeyWithoutARowIsRefused) {
  const std::map<std::string, std::string> cases = {
      {R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}], "limits": {"max_callz": 1}})",
       "$.limits.max_callz"},
      {R"({"models": [{"name": "e", "workers": [{"provider": "echo", "tls_verfy": true}]}]})",
       "$.models[0].workers[0].tls_verfy"},
      {R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}],
           "auth": {"keys": [{"name": "a", "key": "12345678", "budget": 1}]}})",
       "$.auth.keys[0].budget"},
      {R"({"models": [{"name": "e", "workers": [{"provider": "echo"}]}], "lissten": "x"})",
       "$.lissten"}};
  for (const auto& [text, path] : cases) {
    try {
      rtgw::config::load_from_text(text, "f.json", {}, env_of({}));
      ADD_FAILURE() << path << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), "f.json: " + path + ": unknown key");
    }
  }
  // The policy object is open: its keys belong to the rtevents filter.
  auto c = rtgw::config::load_from_text(
      std::string("{") + kModels + R"(, "policy": {"blocked_events": ["x"]}})", "f", {},
      env_of({}));
  EXPECT_NE(c.policy_json.find("blocked_events"), std::string::npos);
}

// Members of models[], models[].workers[] and auth.keys[] are checked against their rows' ranges.
TEST(ConfigSchema, ArrayMembersUseTheirRowsRanges) {
  int checked = 0;
  for (const auto& row : rtgw::config::rows()) {
    if (row.type != Type::kInteger && row.type != Type::kNumber) continue;
    std::string path = row.path;
    auto cut = path.rfind("[].");
    if (cut == std::string::npos) continue;
    std::string owner = path.substr(0, cut + 2), name = path.substr(cut + 3);
    if (name.find('.') != std::string::npos) continue;  // pricing: a nested object
    SCOPED_TRACE(path);
    auto doc = [&](const std::string& value) {
      std::string m = json_quote(name) + ": " + value;
      if (owner == "models[].workers[]")
        return R"({"models": [{"name": "e", "workers": [{"provider": "echo", )" + m + "}]}]}";
      if (owner == "models[]")
        return R"({"models": [{"name": "e", )" + m + R"(, "workers": [{"provider": "echo"}]}]})";
      return std::string(kModels).insert(0, "{") + R"(, "auth": {"keys": [{"name": "a", )" +
             R"("key": "12345678", )" + m + "}]}}";
    };
    const bool big = row.max > 1e15;  // budget_tokens: 2^63-1 has no JSON integer above it
    std::ostringstream max, over;
    max.precision(17);
    over.precision(17);
    if (row.type == Type::kInteger) {
      max << (big ? INT64_MAX : static_cast<std::int64_t>(row.max));
      if (!big) over << static_cast<std::int64_t>(row.max) + 1;
    } else {
      max << row.max;
      over << row.max * 2;
    }
    EXPECT_NO_THROW(rtgw::config::load_from_text(doc(max.str()), "f.json", {}, env_of({})))
        << doc(max.str());
    if (!big) {
      try {
        rtgw::config::load_from_text(doc(over.str()), "f.json", {}, env_of({}));
        ADD_FAILURE() << doc(over.str()) << " accepted";
      } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("." + name + ": must be"), std::string::npos)
            << e.what();
      }
    }
    checked++;
  }
  EXPECT_GE(checked, 10);
}

}  // namespace
