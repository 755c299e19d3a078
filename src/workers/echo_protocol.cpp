// SPDX-License-Identifier: MIT
#include "workers/echo_protocol.h"

#include <glib.h>

#include <cmath>

#include "common/json.h"
#include "common/main_thread.h"
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

void EchoProtocol::configure(const std::string& session_json) {
  auto node = json::parse(session_json);
  if (node && JSON_NODE_TYPE(node.get()) == JSON_NODE_OBJECT)
    apply_session(json_node_get_object(node.get()));
}

void EchoProtocol::apply_session(JsonObject* session) {
  if (auto type = json::get_string(session, "type")) {
    transcription_session_ = *type == "transcription";
    translation_session_ = *type == "translation";
  }
  if (translation_session_)
    if (auto model = json::get_string(session, "model")) model_ = *model;
  JsonObject* audio = json::get_object(session, "audio");
  JsonObject* input = audio ? json::get_object(audio, "input") : nullptr;
  JsonObject* transcription = input ? json::get_object(input, "transcription") : nullptr;
  if (transcription) transcription_model_ = json::get_string(transcription, "model").value_or("");
  if (transcription_session_ && transcription_model_.empty()) transcription_model_ = "echo";
}

void EchoProtocol::start() {
  session_id_ = random_id("sess_", 24);
  if (translation_session_) {
    json::ObjectBuilder session;
    session.set("id", session_id_).set("type", "translation").set("model", model_);
    json::ObjectBuilder created;
    created.set("type", "session.created")
        .set("event_id", random_id("event_", 24))
        .set_object("session", std::move(session));
    send_(created.str());
    start_reports();
    return;
  }
  json::ObjectBuilder session;
  session.set("id", session_id_)
      .set("object", transcription_session_ ? "realtime.transcription_session" : "realtime.session")
      .set("type", transcription_session_ ? "transcription" : "realtime");
  if (!transcription_session_) session.set("model", "echo");
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
  if (translation_session_ && type != "session.update") {
    on_translation_event(type, event);
    return;
  }
  if (type == "session.update") {
    json::ObjectBuilder updated;
    updated.set("type", "session.updated").set("event_id", random_id("event_", 24));
    if (JsonObject* s = json::get_object(event, "session")) {
      apply_session(s);
      if (translation_session_ && !report_timer_) start_reports();
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
  } else if (type == "input_audio_buffer.commit" && !transcription_model_.empty()) {
    commit();
  } else if (type == "input_audio_buffer.clear" || type == "conversation.item.create" ||
             type == "response.cancel" || type == "input_audio_buffer.commit") {
    // Accepted without a reply beyond what the real API would send that matters here.
  } else {
    send_error("unknown_event", "the echo worker does not handle '" + type + "'");
  }
}

double EchoProtocol::pending_ms() {
  if (heard_ms_) appended_ms_ += heard_ms_();
  return appended_ms_;
}

void EchoProtocol::commit() {
  double heard_ms = pending_ms() - committed_ms_;
  if (transcription_session_) {
    appended_ms_ = 0;  // a transcription session bills its audio here, and only here
    committed_ms_ = 0;
  } else {
    committed_ms_ = appended_ms_;  // the response that follows still bills it
  }
  std::string item_id = random_id("item_", 24);
  json::ObjectBuilder committed;
  committed.set("type", "input_audio_buffer.committed")
      .set("event_id", random_id("event_", 24))
      .set_null("previous_item_id")
      .set("item_id", item_id);
  send_(committed.str());

  std::string transcript =
      "echo: transcribed " + std::to_string(static_cast<gint64>(heard_ms)) + " ms of audio";
  json::ObjectBuilder usage;
  if (transcription_model_.find("whisper") != std::string::npos) {
    usage.set("type", "duration").set("seconds", std::round(heard_ms) / 1000.0);
  } else {
    auto audio_tokens =
        static_cast<gint64>(std::llround(heard_ms / 1000.0 * kAudioTokensPerSecond));
    auto text_tokens = static_cast<gint64>((transcript.size() + 3) / 4);
    json::ObjectBuilder input_details;
    input_details.set("audio_tokens", audio_tokens).set("text_tokens", gint64{0});
    usage.set("type", "tokens")
        .set("input_tokens", audio_tokens)
        .set("output_tokens", text_tokens)
        .set("total_tokens", audio_tokens + text_tokens)
        .set_object("input_token_details", std::move(input_details));
  }
  json::ObjectBuilder completed;
  completed.set("type", "conversation.item.input_audio_transcription.completed")
      .set("event_id", random_id("event_", 24))
      .set("item_id", item_id)
      .set("content_index", gint64{0})
      .set("transcript", transcript)
      .set_object("usage", std::move(usage));
  send_(completed.str());
}

void EchoProtocol::respond() {
  double heard_ms = pending_ms();
  appended_ms_ = 0;
  committed_ms_ = 0;
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
  if (!transcription_model_.empty()) {
    // Input transcription on (a transcribed call, transcripts/): the turn's output transcript
    // too, as a model that speaks sends it, so both sides of a call can be stored.
    json::ObjectBuilder transcript_done;
    transcript_done.set("type", "response.output_audio_transcript.done")
        .set("event_id", random_id("event_", 24))
        .set("response_id", response_id)
        .set("item_id", random_id("item_", 24))
        .set("output_index", gint64{0})
        .set("content_index", gint64{0})
        .set("transcript", transcript);
    send_(transcript_done.str());
  }

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

void EchoProtocol::on_translation_event(const std::string& type, JsonObject* event) {
  if (type == "session.input_audio_buffer.append") {
    appended_ms_ +=
        static_cast<double>(base64_decoded_size(json::get_string(event, "audio").value_or(""))) /
        kPcmBytesPerMs;
  } else if (type == "session.close") {
    report_timer_ = SourceGuard();
    report_translation();
    json::ObjectBuilder closed;
    closed.set("type", "session.closed").set("event_id", random_id("event_", 24));
    send_(closed.str());
  } else {
    send_error("unknown_event", "a translation session does not handle '" + type + "'");
  }
}

void EchoProtocol::start_reports() {
  report_timer_ = run_every_ms(kTranslationReportMs, [this] {
    report_translation();
    return true;
  });
}

void EchoProtocol::report_translation() {
  double heard_ms = std::round(pending_ms());
  appended_ms_ = 0;
  if (heard_ms <= 0) return;
  translated_ms_ += heard_ms;
  const auto elapsed = static_cast<gint64>(translated_ms_);
  auto event = [&](const char* type) {
    json::ObjectBuilder e;
    e.set("type", type).set("event_id", random_id("event_", 24)).set("elapsed_ms", elapsed);
    return e;
  };
  const std::string heard = std::to_string(static_cast<gint64>(heard_ms));
  auto input = event("session.input_transcript.delta");
  input.set("delta", "echo: heard " + heard + " ms ");
  send_(input.str());
  if (!heard_ms_) {  // a WebSocket: the translated audio travels as events
    static const std::string silence = [] {
      std::string pcm(static_cast<std::size_t>(200 * kPcmBytesPerMs), '\0');
      UniqueStr b64(g_base64_encode(reinterpret_cast<const guchar*>(pcm.data()), pcm.size()));
      return std::string(b64.get());
    }();
    auto audio = event("session.output_audio.delta");
    audio.set("delta", silence).set("format", "pcm16").set("sample_rate", 24000).set("channels", 1);
    send_(audio.str());
  }
  const std::string transcript = "echo: translated " + heard + " ms ";
  const auto audio_tokens =
      static_cast<gint64>(std::llround(heard_ms / 1000.0 * kAudioTokensPerSecond));
  const auto text_tokens = static_cast<gint64>((transcript.size() + 3) / 4);
  json::ObjectBuilder input_details;
  input_details.set("audio_tokens", audio_tokens).set("text_tokens", gint64{0});
  json::ObjectBuilder output_details;
  output_details.set("audio_tokens", audio_tokens).set("text_tokens", text_tokens);
  json::ObjectBuilder usage;
  usage.set("input_tokens", audio_tokens)
      .set("output_tokens", audio_tokens + text_tokens)
      .set("total_tokens", audio_tokens * 2 + text_tokens)
      .set_object("input_token_details", std::move(input_details))
      .set_object("output_token_details", std::move(output_details))
      .set("seconds", heard_ms / 1000.0);
  auto output = event("session.output_transcript.delta");
  output.set("delta", transcript).set_object("usage", std::move(usage));
  send_(output.str());
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
