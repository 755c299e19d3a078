// SPDX-License-Identifier: MIT
// The realtime protocol the built-in `echo` worker speaks, whatever carries it.
//
// Owns: one echo session's protocol state: `session.created` at the start, `session.updated` for
// `session.update`, `response.created` + a text delta + `response.done` (with `usage` computed
// from the audio heard since the previous response) for `response.create`, an `error` for
// events it does not know. Audio is heard as RTP (the WebRTC path counts it and reports it
// through `heard_ms`) or as `input_audio_buffer.append` (PCM16 24 kHz, counted here).
//
// Input transcription: in a transcription session (`type: "transcription"`), or a realtime
// session with `audio.input.transcription` configured, `input_audio_buffer.commit` is answered
// with `input_audio_buffer.committed` and `conversation.item.input_audio_transcription.completed`
// whose `usage` is computed from the audio committed: token-billed (`{"type":"tokens",...}`, 10
// audio tokens per second in, the transcript's text tokens out) unless the transcription model's
// name contains "whisper" (OpenAI bills whisper-1 by duration): then `{"type":"duration",
// "seconds":S}`. A transcription session's committed audio is consumed by its transcription; a
// realtime session's stays for the next response's usage.
//
// Translation (a session of `type: "translation"`, SPEC "Translation sessions"): no responses.
// Every kTranslationReportMs while audio comes in it reports what it heard since the previous
// report, as a translation worker streams: `session.input_transcript.delta`, on a WebSocket
// `session.output_audio.delta` (200 ms of PCM16 silence: the WebRTC path echoes the RTP itself),
// and `session.output_transcript.delta` carrying `usage` (continuous usage: `seconds` of audio,
// 10 audio tokens per second in and out, the transcript's text tokens out). It takes
// `session.input_audio_buffer.append` (PCM16 24 kHz), `session.update` and `session.close`
// (the rest reported, then `session.closed`); anything else is an `error`.
//
// Threads: main loop only.
#pragma once

#include <json-glib/json-glib.h>

#include <functional>
#include <string>

#include "common/ref.h"

namespace rtgw::workers {

class EchoProtocol {
 public:
  using Send = std::function<void(const std::string& text)>;
  // `heard_ms`: audio heard over RTP since the previous call (nullptr: none).
  EchoProtocol(Send send, std::function<double()> heard_ms = nullptr);

  // The session the worker was given at set-up (a call's multipart `session`), before start().
  void configure(const std::string& session_json);
  void start();
  void on_event(const std::string& text);

 private:
  void apply_session(JsonObject* session);
  double pending_ms();  // audio heard since the previous response (or transcription session commit)
  void commit();
  void respond();
  void send_error(const std::string& code, const std::string& message);
  void on_translation_event(const std::string& type, JsonObject* event);
  void report_translation();
  void start_reports();  // what was heard since the previous report, with its usage

  Send send_;
  std::function<double()> heard_ms_;
  std::string session_id_;
  double appended_ms_ = 0;   // audio heard (appended, or RTP taken from heard_ms_) not yet billed
  double committed_ms_ = 0;  // of appended_ms_, already transcribed (realtime sessions)
  bool transcription_session_ = false;
  std::string transcription_model_;  // non-empty: input transcription is on
  bool translation_session_ = false;
  std::string model_ = "echo";  // the session's model (translation sessions name theirs)
  double translated_ms_ = 0;    // a translation's elapsed audio (its events' elapsed_ms)
  SourceGuard report_timer_;    // translation: the periodic report; last, so destroyed first
};

// How often a translation session reports (ms).
inline constexpr unsigned kTranslationReportMs = 1000;

}  // namespace rtgw::workers
