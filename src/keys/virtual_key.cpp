// SPDX-License-Identifier: MIT
#include "keys/virtual_key.h"

#include "usage/budget_period.h"

#include <glib.h>

#include "common/json.h"

namespace rtgw::keys {
namespace {

Ref<JsonNode> object_or_null(const std::optional<std::string>& text) {
  if (!text) return Ref<JsonNode>::adopt(json_node_new(JSON_NODE_NULL));
  auto node = json::parse(*text);
  return node ? node : Ref<JsonNode>::adopt(json_node_new(JSON_NODE_NULL));
}

}  // namespace

std::string to_json(const VirtualKey& k) {
  json::ObjectBuilder out;
  out.set("key_alias", k.alias);
  auto models = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  JsonArray* array = json_array_new();
  for (const auto& m : k.models) json_array_add_string_element(array, m.c_str());
  json_node_take_array(models.get(), array);
  out.set_node("models", models);
  if (k.max_concurrent_calls)
    out.set("max_concurrent_calls", *k.max_concurrent_calls);
  else
    out.set_null("max_concurrent_calls");
  if (k.budget_usd)
    out.set("budget_usd", *k.budget_usd);
  else
    out.set_null("budget_usd");
  if (k.budget_tokens)
    out.set("budget_tokens", static_cast<gint64>(*k.budget_tokens));
  else
    out.set_null("budget_tokens");
  if (k.budget_duration)
    out.set("budget_duration", *k.budget_duration);
  else
    out.set_null("budget_duration");
  if (k.expires_at)
    out.set("expires_at", static_cast<gint64>(*k.expires_at));
  else
    out.set_null("expires_at");
  out.set_node("policy", object_or_null(k.policy_json));
  out.set_node("metadata", object_or_null(k.metadata_json));
  out.set("created_at", static_cast<gint64>(k.created_at));
  out.set("updated_at", static_cast<gint64>(k.updated_at));
  if (k.revoked_at)
    out.set("revoked_at", static_cast<gint64>(*k.revoked_at));
  else
    out.set_null("revoked_at");
  out.set("revoked", k.revoked_at.has_value());
  return out.str();
}

config::KeyConfig to_key_config(const VirtualKey& k, int default_max_calls) {
  config::KeyConfig c;
  c.name = k.alias;
  c.models = k.models;
  c.max_concurrent_calls = k.max_concurrent_calls.value_or(default_max_calls);
  c.admin = false;  // admin rights come from the config file only
  c.budget_tokens = k.budget_tokens;
  c.budget_usd = k.budget_usd;
  c.expires_at = k.expires_at;
  // Checked when written (admin_request.cpp), so a stored value parses.
  if (k.budget_duration)
    c.budget_duration_seconds = usage::parse_budget_duration(*k.budget_duration);
  c.virtual_key = true;
  if (k.policy_json)
    if (auto node = json::parse(*k.policy_json); node && JSON_NODE_HOLDS_OBJECT(node.get())) {
      JsonObject* o = json_node_get_object(node.get());
      JsonNode* end = json_object_get_member(o, "end_calls_over_budget");
      if (end && JSON_NODE_HOLDS_VALUE(end) && json_node_get_value_type(end) == G_TYPE_BOOLEAN)
        c.end_calls_over_budget = json_node_get_boolean(end);
    }
  return c;
}

}  // namespace rtgw::keys
