// SPDX-License-Identifier: MIT
#include "recording/sidecar.h"

#include <gio/gio.h>

#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"

namespace rtgw::recording {

std::string sidecar_json(const Sidecar& s) {
  json::ObjectBuilder out;
  out.set("call_id", s.call_id)
      .set("key", s.key_name)
      .set("model", s.model)
      .set("started_unix_ms", s.started_unix_ms)
      .set("ended_unix_ms", s.ended_unix_ms);
  return out.str();
}

std::optional<Sidecar> parse_sidecar(const std::string& text) {
  auto parser = Ref<JsonParser>::adopt(json_parser_new());
  if (text.size() > 64 * 1024 ||
      !json_parser_load_from_data(parser.get(), text.data(), static_cast<gssize>(text.size()),
                                  nullptr))
    return std::nullopt;
  JsonNode* root = json_parser_get_root(parser.get());
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) return std::nullopt;
  JsonObject* o = json_node_get_object(root);
  auto str = [o](const char* name) -> std::optional<std::string> {
    JsonNode* n = json_object_get_member(o, name);
    if (!n || json_node_get_value_type(n) != G_TYPE_STRING) return std::nullopt;
    return std::string(json_node_get_string(n));
  };
  auto num = [o](const char* name) -> gint64 {
    JsonNode* n = json_object_get_member(o, name);
    return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : 0;
  };
  auto id = str("call_id");
  auto key = str("key");
  if (!id || !key) return std::nullopt;
  return Sidecar{*id, *key, str("model").value_or(""), num("started_unix_ms"),
                 num("ended_unix_ms")};
}

void write_sidecar(const RecordingPlan& plan, const Sidecar& sidecar) {
  std::string path = sidecar_path(plan.dir, plan.call_id);
  std::string text = sidecar_json(sidecar) + "\n";
  auto file = Ref<GFile>::adopt(g_file_new_for_path(path.c_str()));
  auto bytes = Ref<GBytes>::adopt(g_bytes_new(text.data(), text.size()));
  auto ready = async_ready([path](GObject* source, GAsyncResult* result) {
    UniqueError err;
    if (!g_file_replace_contents_finish(G_FILE(source), result, nullptr, ErrorOut(err)))
      g_warning("recording: cannot write %s: %s", path.c_str(), err ? err->message : "?");
  });
  g_file_replace_contents_bytes_async(file.get(), bytes.get(), nullptr, FALSE,
                                      G_FILE_CREATE_PRIVATE, nullptr, ready.callback,
                                      ready.user_data);
}

std::optional<Sidecar> read_sidecar(const std::string& dir, const std::string& call_id) {
  if (!valid_call_id(call_id)) return std::nullopt;
  gchar* contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(sidecar_path(dir, call_id).c_str(), &contents, &length, nullptr))
    return std::nullopt;
  UniqueStr owned(contents);
  auto sidecar = parse_sidecar(std::string(contents, length));
  if (sidecar && sidecar->call_id != call_id) return std::nullopt;
  return sidecar;
}

}  // namespace rtgw::recording
