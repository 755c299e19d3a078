// SPDX-License-Identifier: MIT
#include "keys/admin_request.h"

#include "usage/budget_period.h"

#include <glib.h>

#include <cmath>
#include <set>

#include "common/api_error.h"
#include "common/json.h"
#include "common/random.h"

namespace rtgw::keys {
namespace {

ApiError bad(const std::string& member, const std::string& why) {
  return api_errors::bad_request("invalid_request_error", "'" + member + "' " + why);
}

struct Body {
  Ref<JsonNode> root;
  JsonObject* object = nullptr;
};

// The body as an object whose members are all in `allowed`.
Body object_body(const std::string& text, const std::set<std::string>& allowed) {
  std::string error;
  Body b;
  b.root = json::parse(text.empty() ? "{}" : text, &error);
  if (!b.root || !JSON_NODE_HOLDS_OBJECT(b.root.get()))
    throw api_errors::bad_request(
        "invalid_json", "the body must be a JSON object" + (error.empty() ? "" : ": " + error));
  b.object = json_node_get_object(b.root.get());
  GList* list = json_object_get_members(b.object);
  for (GList* l = list; l; l = l->next) {
    std::string name = static_cast<const char*>(l->data);
    if (!allowed.count(name)) {
      g_list_free(list);
      throw api_errors::bad_request("unknown_member", "unknown member '" + name + "'");
    }
  }
  g_list_free(list);
  return b;
}

bool is_null(JsonNode* n) { return JSON_NODE_HOLDS_NULL(n); }
bool is_string(JsonNode* n) {
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING;
}
bool is_bool(JsonNode* n) {
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_BOOLEAN;
}
bool is_int(JsonNode* n) {
  return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64;
}
bool is_number(JsonNode* n) {
  return JSON_NODE_HOLDS_VALUE(n) && (json_node_get_value_type(n) == G_TYPE_INT64 ||
                                      json_node_get_value_type(n) == G_TYPE_DOUBLE);
}

std::string string_member(JsonNode* n, const std::string& name) {
  if (!is_string(n)) throw bad(name, "must be a string");
  return json_node_get_string(n);
}

std::int64_t integer_member(JsonNode* n, const std::string& name, std::int64_t lo,
                            std::int64_t hi) {
  if (!is_int(n)) throw bad(name, "must be an integer");
  std::int64_t v = json_node_get_int(n);
  if (v < lo || v > hi)
    throw bad(name, "must be from " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}

std::string object_text(JsonNode* n, const std::string& name) {
  if (!JSON_NODE_HOLDS_OBJECT(n)) throw bad(name, "must be an object or null");
  return json::to_string(n);
}

// expires_at: unix seconds, or an ISO 8601 / RFC 3339 time with its offset.
std::int64_t time_member(JsonNode* n, const std::string& name) {
  if (is_int(n)) return integer_member(n, name, 0, 253402300799LL);  // up to year 9999
  if (is_string(n)) {
    GDateTime* t = g_date_time_new_from_iso8601(json_node_get_string(n), nullptr);
    if (!t) throw bad(name, "must be unix seconds or an ISO 8601 time with an offset");
    std::int64_t v = g_date_time_to_unix(t);
    g_date_time_unref(t);
    if (v < 0) throw bad(name, "must not be before 1970");
    return v;
  }
  throw bad(name, "must be unix seconds, an ISO 8601 time or null");
}

const std::set<std::string>& field_names() {
  static const std::set<std::string> names = {"key_alias",  "models",        "max_concurrent_calls",
                                              "budget_usd", "budget_tokens", "budget_duration",
                                              "expires_at", "policy",        "metadata"};
  return names;
}

KeyFields read_fields(JsonObject* o, bool update) {
  KeyFields f;
  if (JsonNode* n = json_object_get_member(o, "key_alias")) {
    std::string alias = string_member(n, "key_alias");
    if (!valid_alias(alias))
      throw bad("key_alias",
                "must be 1 to 64 of A-Z a-z 0-9 . _ : - and not start with sk- or ek_");
    f.key_alias = alias;
  }
  if (JsonNode* n = json_object_get_member(o, "models")) {
    if (!JSON_NODE_HOLDS_ARRAY(n)) throw bad("models", "must be an array of strings");
    JsonArray* a = json_node_get_array(n);
    std::vector<std::string> models;
    for (guint i = 0; i < json_array_get_length(a); i++) {
      JsonNode* e = json_array_get_element(a, i);
      std::string name = "models[" + std::to_string(i) + "]";
      std::string pattern = string_member(e, name);
      if (pattern.empty() || pattern.size() > 200) throw bad(name, "must be 1 to 200 characters");
      models.push_back(pattern);
    }
    if (models.size() > 1000) throw bad("models", "has more than 1000 patterns");
    f.models = models;
  }
  if (JsonNode* n = json_object_get_member(o, "max_concurrent_calls"))
    f.max_concurrent_calls = is_null(n) ? std::optional<int>()
                                        : std::optional<int>(static_cast<int>(integer_member(
                                              n, "max_concurrent_calls", 0, 1000000)));
  if (JsonNode* n = json_object_get_member(o, "budget_usd")) {
    if (is_null(n)) {
      f.budget_usd = std::optional<double>();
    } else {
      if (!is_number(n)) throw bad("budget_usd", "must be a number or null");
      double v = json_node_get_value_type(n) == G_TYPE_INT64
                     ? static_cast<double>(json_node_get_int(n))
                     : json_node_get_double(n);
      if (!std::isfinite(v) || v < 0 || v > 1e12) throw bad("budget_usd", "must be from 0 to 1e12");
      f.budget_usd = v;
    }
  }
  if (JsonNode* n = json_object_get_member(o, "budget_tokens"))
    f.budget_tokens =
        is_null(n) ? std::optional<std::int64_t>()
                   : std::optional<std::int64_t>(integer_member(n, "budget_tokens", 0, G_MAXINT64));
  if (JsonNode* n = json_object_get_member(o, "budget_duration")) {
    if (is_null(n)) {
      f.budget_duration = std::optional<std::string>();
    } else {
      std::string text = string_member(n, "budget_duration");
      if (!usage::parse_budget_duration(text))
        throw bad("budget_duration", "must be a count and a unit (s, m, h, d, w), e.g. \"30d\"");
      f.budget_duration = text;
    }
  }
  if (JsonNode* n = json_object_get_member(o, "expires_at"))
    f.expires_at = is_null(n) ? std::optional<std::int64_t>()
                              : std::optional<std::int64_t>(time_member(n, "expires_at"));
  if (JsonNode* n = json_object_get_member(o, "policy")) {
    if (is_null(n)) {
      f.policy_json = std::optional<std::string>();
    } else {
      std::string text = object_text(n, "policy");
      JsonObject* p = json_node_get_object(n);
      if (JsonNode* e = json_object_get_member(p, "end_calls_over_budget"); e && !is_bool(e))
        throw bad("policy.end_calls_over_budget", "must be a boolean");
      f.policy_json = text;
    }
  }
  if (JsonNode* n = json_object_get_member(o, "metadata"))
    f.metadata_json = is_null(n) ? std::optional<std::string>()
                                 : std::optional<std::string>(object_text(n, "metadata"));
  if (update)
    if (JsonNode* n = json_object_get_member(o, "revoked")) {
      if (!is_bool(n)) throw bad("revoked", "must be a boolean");
      f.revoked = json_node_get_boolean(n);
    }
  return f;
}

KeyRef read_ref(JsonObject* o, bool alias_names_it) {
  KeyRef ref;
  if (JsonNode* n = json_object_get_member(o, "key")) {
    ref.key = string_member(n, "key");
    if (ref.key->empty()) throw bad("key", "must not be empty");
  }
  if (alias_names_it && !ref.key)
    if (JsonNode* n = json_object_get_member(o, "key_alias"))
      ref.alias = string_member(n, "key_alias");
  if (!ref.key && !ref.alias)
    throw api_errors::bad_request("invalid_request_error", "name the key: 'key' or 'key_alias'");
  return ref;
}

std::vector<std::string> string_array(JsonObject* o, const char* name) {
  std::vector<std::string> out;
  JsonNode* n = json_object_get_member(o, name);
  if (!n) return out;
  if (!JSON_NODE_HOLDS_ARRAY(n)) throw bad(name, "must be an array of strings");
  JsonArray* a = json_node_get_array(n);
  for (guint i = 0; i < json_array_get_length(a); i++) {
    std::string member = std::string(name) + "[" + std::to_string(i) + "]";
    std::string v = string_member(json_array_get_element(a, i), member);
    if (v.empty()) throw bad(member, "must not be empty");
    out.push_back(v);
  }
  return out;
}

int page_value(const std::optional<std::string>& text, const char* name, int fallback, int max) {
  if (!text) return fallback;
  if (text->empty() || text->size() > 9)
    throw bad(name, "must be an integer from 1 to " + std::to_string(max));
  for (char c : *text)
    if (!g_ascii_isdigit(c)) throw bad(name, "must be an integer from 1 to " + std::to_string(max));
  int v = std::stoi(*text);
  if (v < 1 || v > max) throw bad(name, "must be an integer from 1 to " + std::to_string(max));
  return v;
}

}  // namespace

std::string KeyRef::describe() const {
  return alias ? "key_alias '" + *alias + "'" : std::string("the given key");
}

bool valid_alias(const std::string& alias) {
  if (alias.empty() || alias.size() > 64) return false;
  if (alias.rfind("sk-", 0) == 0 || alias.rfind("ek_", 0) == 0) return false;
  for (char c : alias)
    if (!g_ascii_isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  return true;
}

std::string generated_alias() { return random_id("vk-", 12); }

GenerateRequest parse_generate(const std::string& text) {
  Body b = object_body(text, field_names());
  return GenerateRequest{read_fields(b.object, /*update=*/false)};
}

UpdateRequest parse_update(const std::string& text) {
  std::set<std::string> allowed = field_names();
  allowed.insert("key");
  allowed.insert("revoked");
  Body b = object_body(text, allowed);
  UpdateRequest r;
  r.ref = read_ref(b.object, /*alias_names_it=*/true);
  r.fields = read_fields(b.object, /*update=*/true);
  if (!r.ref.key) r.fields.key_alias.reset();  // it names the key: no rename
  return r;
}

DeleteRequest parse_delete(const std::string& text) {
  Body b = object_body(text, {"keys", "key_aliases"});
  DeleteRequest r;
  for (auto& k : string_array(b.object, "keys")) r.refs.push_back(KeyRef{k, std::nullopt});
  for (auto& a : string_array(b.object, "key_aliases")) r.refs.push_back(KeyRef{std::nullopt, a});
  if (r.refs.empty())
    throw api_errors::bad_request("invalid_request_error",
                                  "name the keys to delete: 'keys' or 'key_aliases'");
  if (r.refs.size() > 1000) throw bad("keys", "names more than 1000 keys");
  return r;
}

RegenerateRequest parse_regenerate(const std::string& text) {
  Body b = object_body(text, {"key", "key_alias"});
  return RegenerateRequest{read_ref(b.object, /*alias_names_it=*/true)};
}

KeyRef parse_info_query(const std::optional<std::string>& key,
                        const std::optional<std::string>& key_alias) {
  if (key && key_alias)
    throw api_errors::bad_request("invalid_request_error", "give 'key' or 'key_alias', not both");
  if (key && !key->empty()) return KeyRef{key, std::nullopt};
  if (key_alias && !key_alias->empty()) return KeyRef{std::nullopt, key_alias};
  throw api_errors::bad_request("invalid_request_error", "name the key: ?key= or ?key_alias=");
}

ListQuery parse_list_query(const std::optional<std::string>& page,
                           const std::optional<std::string>& size) {
  ListQuery q;
  q.page = page_value(page, "page", 1, 1000000);
  q.size = page_value(size, "size", 50, kMaxPageSize);
  return q;
}

void apply_fields(VirtualKey& k, const KeyFields& f, std::int64_t now) {
  if (f.key_alias) k.alias = *f.key_alias;
  if (f.models) k.models = *f.models;
  if (f.max_concurrent_calls) k.max_concurrent_calls = *f.max_concurrent_calls;
  if (f.budget_usd) k.budget_usd = *f.budget_usd;
  if (f.budget_tokens) k.budget_tokens = *f.budget_tokens;
  if (f.budget_duration) k.budget_duration = *f.budget_duration;
  if (f.expires_at) k.expires_at = *f.expires_at;
  if (f.policy_json) k.policy_json = *f.policy_json;
  if (f.metadata_json) k.metadata_json = *f.metadata_json;
  if (f.revoked) {
    if (*f.revoked && !k.revoked_at) k.revoked_at = now;
    if (!*f.revoked) k.revoked_at.reset();
  }
}

}  // namespace rtgw::keys
