// SPDX-License-Identifier: MIT
#include "http/key_routes.h"

#include "common/json.h"
#include "http/http_error.h"
#include "keys/admin_request.h"
#include "keys/key_manager.h"
#include "keys/key_secret.h"

namespace rtgw::http {
namespace {

std::string body_of(SoupServerMessage* msg) {
  SoupMessageBody* body = soup_server_message_get_request_body(msg);
  if (!body || !body->data) return {};
  return std::string(body->data, static_cast<size_t>(body->length));
}

std::optional<std::string> query_of(GHashTable* query, const char* name) {
  if (!query) return std::nullopt;
  auto* v = static_cast<const char*>(g_hash_table_lookup(query, name));
  if (!v) return std::nullopt;
  return std::string(v);
}

keys::RowRef row_ref(const keys::KeyRef& ref) {
  if (ref.key) return keys::RowRef{keys::hash_key(*ref.key), std::nullopt};
  return keys::RowRef{std::nullopt, ref.alias};
}

// The key's public view, with the secret first when it was just made.
Ref<JsonNode> key_view(const keys::VirtualKey& key, const std::string& secret = "") {
  auto node = json::parse(keys::to_json(key));
  if (!secret.empty()) {
    json::ObjectBuilder out;
    out.set("key", secret);
    JsonObject* o = json_node_get_object(node.get());
    GList* members = json_object_get_members(o);
    for (GList* l = members; l; l = l->next) {
      const char* name = static_cast<const char*>(l->data);
      out.set_node(name, Ref<JsonNode>::adopt(json_node_copy(json_object_get_member(o, name))));
    }
    g_list_free(members);
    return out.node();
  }
  return node;
}

HttpError store_error(const keys::StoreResult& r) {
  switch (r.status) {
    case keys::StoreResult::kNotFound:
      return errors::not_found("key_not_found", r.detail.empty()
                                                    ? "no such key"
                                                    : "no key with key_alias '" + r.detail + "'");
    case keys::StoreResult::kAliasTaken:
      return errors::bad_request("key_alias_exists",
                                 "the key_alias '" + r.detail + "' is taken by another key");
    default:
      g_warning("key store: %s", r.detail.c_str());
      return errors::unavailable("key_store_unavailable",
                                 "the key store (PostgreSQL) is unavailable: retry in a moment");
  }
}

// Pauses `msg` until the store answers; `ok` makes the 200 body from its rows.
keys::KeyStore::Done answer_when_done(SoupServerMessage* msg,
                                      std::function<std::string(const keys::StoreResult&)> ok) {
  soup_server_message_pause(msg);
  auto pending = Ref<SoupServerMessage>::retain(msg);
  return [pending, ok = std::move(ok)](keys::StoreResult r) {
    if (r.status == keys::StoreResult::kOk) {
      respond_json(pending.get(), 200, ok(r));
    } else {
      HttpError e = store_error(r);
      respond_json(pending.get(), e.status(), e.body());
    }
    soup_server_message_unpause(pending.get());
  };
}

void refuse_config_name(const keys::KeyManager& keys, const std::optional<std::string>& alias) {
  if (alias && keys.directory().config_name(*alias))
    throw errors::bad_request("key_alias_exists",
                              "the key_alias '" + *alias + "' is a config key's name");
}

}  // namespace

void handle_key_route(const Services& services, SoupServerMessage* msg, const std::string& method,
                      const std::string& path, GHashTable* query) {
  const std::string route = path.substr(std::string(kKeyRoutesPrefix).size());
  const bool post =
      route == "generate" || route == "update" || route == "delete" || route == "regenerate";
  const bool get = route == "info" || route == "list";
  if (!post && !get) throw errors::not_found("not_found", "no route for " + method + " " + path);
  if ((post && method != "POST") || (get && method != "GET"))
    throw HttpError(405, "invalid_request_error", "method_not_allowed",
                    std::string("use ") + (post ? "POST" : "GET"));
  keys::KeyManager* keys = services.key_manager;
  if (!keys)
    throw HttpError(501, "invalid_request_error", "key_store_not_configured",
                    "virtual keys need a key store: set auth.key_store to \"postgres\"");
  auth::Principal principal = services.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  if (!principal.admin) throw errors::forbidden("admin_required", "an admin key is required");
  const std::string& actor = principal.key_name;

  if (route == "info") {
    keys::KeyRef ref = keys::parse_info_query(
        query_of(query, "key"),
        query_of(query, "key_alias") ? query_of(query, "key_alias") : query_of(query, "alias"));
    const keys::KeyDirectory::Entry* entry =
        ref.key ? keys->directory().find_hash(keys::hash_key(*ref.key))
                : keys->directory().find_alias(*ref.alias);
    if (!entry) throw errors::not_found("key_not_found", "no such key (" + ref.describe() + ")");
    respond_json(msg, 200, json::to_string(key_view(entry->key).get()));
    return;
  }
  if (route == "list") {
    keys::ListQuery q = keys::parse_list_query(query_of(query, "page"), query_of(query, "size"));
    auto data = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
    JsonArray* array = json_array_new();
    for (const auto* entry : keys->directory().page(q.page, q.size))
      json_array_add_element(array, key_view(entry->key).release());
    json_node_take_array(data.get(), array);
    auto total = static_cast<gint64>(keys->directory().size());
    json::ObjectBuilder out;
    out.set("object", "list")
        .set("page", q.page)
        .set("size", q.size)
        .set("total", total)
        .set("total_pages", static_cast<gint64>((total + q.size - 1) / q.size))
        .set_node("data", data);
    respond_json(msg, 200, out.str());
    return;
  }
  if (route == "generate") {
    keys::GenerateRequest request = keys::parse_generate(body_of(msg));
    refuse_config_name(*keys, request.fields.key_alias);
    keys::VirtualKey row;
    row.alias = request.fields.key_alias.value_or(keys::generated_alias());
    keys::apply_fields(row, request.fields, g_get_real_time() / G_USEC_PER_SEC);
    std::string secret = keys::generate_key();
    row.hash = keys::hash_key(secret);
    keys->generate(std::move(row), actor,
                   answer_when_done(msg, [secret](const keys::StoreResult& r) {
                     return json::to_string(key_view(r.rows.front(), secret).get());
                   }));
    return;
  }
  if (route == "update") {
    keys::UpdateRequest request = keys::parse_update(body_of(msg));
    refuse_config_name(*keys, request.fields.key_alias);
    keys->update(row_ref(request.ref), std::move(request.fields), actor,
                 answer_when_done(msg, [](const keys::StoreResult& r) {
                   return json::to_string(key_view(r.rows.front()).get());
                 }));
    return;
  }
  if (route == "delete") {
    keys::DeleteRequest request = keys::parse_delete(body_of(msg));
    std::vector<keys::RowRef> refs;
    for (const auto& ref : request.refs) refs.push_back(row_ref(ref));
    keys->remove(std::move(refs), actor, answer_when_done(msg, [](const keys::StoreResult& r) {
                   auto list = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
                   JsonArray* array = json_array_new();
                   for (const auto& row : r.rows)
                     json_array_add_string_element(array, row.alias.c_str());
                   json_node_take_array(list.get(), array);
                   json::ObjectBuilder out;
                   out.set_node("deleted_key_aliases", list);
                   return out.str();
                 }));
    return;
  }
  // regenerate
  keys::RegenerateRequest request = keys::parse_regenerate(body_of(msg));
  std::string secret = keys::generate_key();
  keys->regenerate(row_ref(request.ref), keys::hash_key(secret), actor,
                   answer_when_done(msg, [secret](const keys::StoreResult& r) {
                     return json::to_string(key_view(r.rows.front(), secret).get());
                   }));
}

}  // namespace rtgw::http
