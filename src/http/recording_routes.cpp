// SPDX-License-Identifier: MIT
// GET /v1/realtime/calls/{id}/recording?direction=client|upstream: a recorded call's Ogg/Opus
// file of one direction (recording/call_recorder.h), to admins and the key that created the call.
//
// The owner is the live call's key, or after the call ended the sidecar's ({dir}/{call_id}.json,
// kept as long as the files: recording.retention_days). Anyone else gets 404, as for a call that
// does not exist. Cluster mode: a call live on another instance is forwarded to it; a finished
// call is answered from this instance's folder only (a shared folder serves every instance's).
//
// Threads: main loop. The file is mapped, not read: its pages go out as libsoup writes them.
#include "common/api_error.h"
#include "common/ref.h"
#include "http/http_error.h"
#include "http/server.h"
#include "recording/recording_plan.h"
#include "recording/sidecar.h"

namespace rtgw::http {
namespace {

constexpr const char* kPrefix = "/v1/realtime/calls/";
constexpr const char* kSuffix = "/recording";

}  // namespace

std::optional<std::string> recording_route_call_id(const char* method, const char* path) {
  if (g_strcmp0(method, "GET") != 0) return std::nullopt;
  std::string p = path ? path : "";
  const std::string prefix = kPrefix, suffix = kSuffix;
  if (p.size() <= prefix.size() + suffix.size() || p.rfind(prefix, 0) != 0 ||
      p.compare(p.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  std::string id = p.substr(prefix.size(), p.size() - prefix.size() - suffix.size());
  if (id.find('/') != std::string::npos) return std::nullopt;
  return id;
}

void Server::handle_recording(SoupServerMessage* msg, const std::string& id, GHashTable* query) {
  auth::Principal principal = services_.auth.authenticate(
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"));
  const bool from_peer = internal_request(msg);
  const char* raw_direction =
      query ? static_cast<const char*>(g_hash_table_lookup(query, "direction")) : nullptr;
  std::string direction = raw_direction ? raw_direction : "";
  if (!recording::valid_direction(direction))
    throw errors::bad_request(
        "invalid_direction",
        "direction must be \"client\" or \"upstream\", got \"" + direction + "\"");
  auto none = [&id] {
    return errors::not_found("recording_not_found", "no recording of call " + id + " for this key");
  };
  if (!recording::valid_call_id(id)) throw none();
  const std::string& dir = services_.config.current().recording.dir;

  std::optional<std::string> owner;
  if (calls::Call* call = services_.calls.find(id))
    owner = call->identity().key_name;
  else if (!dir.empty())
    if (auto sidecar = recording::read_sidecar(dir, id)) owner = sidecar->key_name;
  if (!owner) {
    if (services_.cluster && !from_peer && !services_.calls.find_ended(id)) {
      forward_to_owner(msg, id, "GET",
                       std::string(kPrefix) + id + kSuffix + "?direction=" + direction);
      return;
    }
    throw none();
  }
  if (!principal.may_access(*owner) || dir.empty()) throw none();

  std::string path = recording::audio_path(dir, id, direction);
  UniqueError err;
  GMappedFile* raw = g_mapped_file_new(path.c_str(), FALSE, ErrorOut(err));
  if (!raw) throw none();
  std::unique_ptr<GMappedFile, decltype(&g_mapped_file_unref)> mapped(raw, &g_mapped_file_unref);
  auto bytes = Ref<GBytes>::adopt(g_mapped_file_get_bytes(mapped.get()));
  // Empty: no audio that way (yet, or ever: a call that ended before its media flowed).
  if (g_bytes_get_size(bytes.get()) == 0) throw none();
  soup_server_message_set_status(msg, 200, nullptr);
  soup_message_headers_set_content_type(soup_server_message_get_response_headers(msg), "audio/ogg",
                                        nullptr);
  soup_message_body_append_bytes(soup_server_message_get_response_body(msg), bytes.get());
}

}  // namespace rtgw::http
