// SPDX-License-Identifier: MIT
// The realtime protocol the built-in `echo` worker speaks, whatever carries it.
//
// Owns: one echo session's protocol state: `session.created` at the start, `session.updated` for
// `session.update`, `response.created` + a text delta + `response.done` (with `usage` computed
// from the audio heard since the previous response) for `response.create`, an `error` for
// events it does not know. Audio is heard as RTP (the WebRTC path counts it and reports it
// through `heard_ms`) or as `input_audio_buffer.append` (PCM16 24 kHz, counted here).
//
// Threads: main loop only.
#pragma once

#include <functional>
#include <string>

namespace rtgw::workers {

class EchoProtocol {
 public:
  using Send = std::function<void(const std::string& text)>;
  // `heard_ms`: audio heard over RTP since the previous call (nullptr: none).
  EchoProtocol(Send send, std::function<double()> heard_ms = nullptr);

  void start();
  void on_event(const std::string& text);

 private:
  void respond();
  void send_error(const std::string& code, const std::string& message);

  Send send_;
  std::function<double()> heard_ms_;
  std::string session_id_;
  double appended_ms_ = 0;  // input_audio_buffer.append audio since the previous response
};

}  // namespace rtgw::workers
