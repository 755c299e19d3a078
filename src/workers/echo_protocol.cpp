// SPDX-License-Identifier: MIT
#include "workers/echo_protocol.h"

#include <glib.h>

#include <cmath>

#include "common/json.h"
#include "common/random.h"
#include "common/ref.h"

namespace rtgw::workers {
namespace {

constexpr double kAudioTokensPerSecond = 10.0;  // OpenAI's realtime audio rate: 1 token / 100 ms
constexpr double kPcmBytesPerMs = 48.0;         // input_audio_buffer.append: PCM16, 24 kHz, mono

// Decoded size of base64 text without decoding it.
std::size_t base64_decoded_size(const std::string& text) {
  std::size_t n = text.size();
  while (n > 0 && (text[n - 1] == '=' || g_ascii_isspace(text[n - 1]))) n--;
  return n * 3 / 4;
}

}  // namespace

EchoProtocol::EchoProtocol(Send send, std::function<double()> heard_ms)
    : send_(std::move(send)), heard_ms_(std::move(heard_ms)) {}

void EchoProtocol::start() {
  session_id_ = random_id("sess_", 24);
  json::ObjectBuilder session;
  session.set("id", session_id_)
      .set("object", "realtime.session")
      .set("type", "realtime")
      .set("model", "echo");
  json::ObjectBuilder created;
  created.set("type", "session.created")
      .set("event_id", random_id("event_", 24))
      .set_object("session", std::move(session));
  send_(created.str());
}

void EchoProtocol::on_event(const std::string& text) {
  auto node = json::parse(text);
  if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT) {
    send_error("invalid_json", "the echo worker expects JSON events");
    return;
  }
  JsonObject* event = json_node_get_object(node.get());
  std::string type = json::get_string(event, "type").value_or("");
  if (type == "session.update") {
    json::ObjectBuilder updated;
    updated.set("type", "session.updated").set("event_id", random_id("event_", 24));
    if (json::get_object(event, "session")) {
      auto copy = Ref<JsonNode>::adopt(json_node_copy(json_object_get_member(event, "session")));
      json_object_set_string_member(json_node_get_object(copy.get()), "id", session_id_.c_str());
      updated.set_node("session", copy);
    }
    send_(updated.str());
  } else if (type == "response.create") {
    respond();
  } else if (type == "input_audio_buffer.append") {
    appended_ms_ +=
        static_cast<double>(base64_decoded_size(json::get_string(event, "audio").value_or(""))) /
        kPcmBytesPerMs;
  } else if (type == "input_audio_buffer.clear" || type == "conversation.item.create" ||
             type == "response.cancel" || type == "input_audio_buffer.commit") {
    // Accepted without a reply beyond what the real API would send that matters here.
  } else {
    send_error("unknown_event", "the echo worker does not handle '" + type + "'");
  }
}

void EchoProtocol::respond() {
  double heard_ms = appended_ms_ + (heard_ms_ ? heard_ms_() : 0.0);
  appended_ms_ = 0;
  auto audio_tokens = static_cast<gint64>(std::llround(heard_ms / 1000.0 * kAudioTokensPerSecond));
  std::string response_id = random_id("resp_", 24);

  json::ObjectBuilder response;
  response.set("id", response_id).set("object", "realtime.response").set("status", "in_progress");
  json::ObjectBuilder created;
  created.set("type", "response.created")
      .set("event_id", random_id("event_", 24))
      .set_object("response", std::move(response));
  send_(created.str());

  std::string transcript =
      "echo: heard " + std::to_string(static_cast<gint64>(heard_ms)) + " ms of audio";
  json::ObjectBuilder delta;
  delta.set("type", "response.output_text.delta")
      .set("event_id", random_id("event_", 24))
      .set("response_id", response_id)
      .set("delta", transcript);
  send_(delta.str());

  gint64 text_tokens = static_cast<gint64>((transcript.size() + 3) / 4);
  json::ObjectBuilder input_details;
  input_details.set("text_tokens", gint64{0})
      .set("audio_tokens", audio_tokens)
      .set("image_tokens", gint64{0})
      .set("cached_tokens", gint64{0});
  json::ObjectBuilder output_details;
  output_details.set("text_tokens", text_tokens).set("audio_tokens", audio_tokens);
  json::ObjectBuilder usage;
  usage.set("total_tokens", audio_tokens * 2 + text_tokens)
      .set("input_tokens", audio_tokens)
      .set("output_tokens", audio_tokens + text_tokens)
      .set_object("input_token_details", std::move(input_details))
      .set_object("output_token_details", std::move(output_details));
  json::ObjectBuilder done_response;
  done_response.set("id", response_id)
      .set("object", "realtime.response")
      .set("status", "completed")
      .set_object("usage", std::move(usage));
  json::ObjectBuilder done;
  done.set("type", "response.done")
      .set("event_id", random_id("event_", 24))
      .set_object("response", std::move(done_response));
  send_(done.str());
}

void EchoProtocol::send_error(const std::string& code, const std::string& message) {
  json::ObjectBuilder error;
  error.set("type", "invalid_request_error").set("code", code).set("message", message);
  json::ObjectBuilder event;
  event.set("type", "error")
      .set("event_id", random_id("event_", 24))
      .set_object("error", std::move(error));
  send_(event.str());
}

}  // namespace rtgw::workers
