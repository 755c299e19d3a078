// SPDX-License-Identifier: MIT
// Transcripts, opt-in (`transcripts`, SPEC "Telemetry, recording, transcripts").
//
// Owns: which calls and sessions are transcribed (their key OR model matches a pattern), the
// capture of one call's transcription events (TranscriptCapture: the user's input transcription
// and the model's output transcript, numbered by turn), where entries go (the PostgreSQL ledger's
// writer, table `transcripts`, when usage.postgres_url is set; else one JSON line per entry in
// the transcripts log), reading a call's transcript back for GET .../transcript, and the owner of
// each call transcribed by this process (call id -> key and model, kept for the last
// kRememberedCalls calls; older calls, and calls of an earlier run, are found by the key_name their
// entries carry).
//
// A call that is not transcribed has no capture: its relay holds a null pointer and checks it
// once per upstream event; nothing is parsed, stored or remembered.
//
// Threads: main loop only, except the JSONL scan of a read, which runs on a GLib worker thread
// and answers on the main loop.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace rtgw::usage {
class PostgresLedger;
}

namespace rtgw::transcripts {

// One stored line of a transcript.
struct Entry {
  std::string call_id;
  std::string key_name;
  std::string model;
  std::int64_t turn = 0;  // the response's index in the call, from 1
  std::string role;       // "user" | "assistant"
  std::string item_id;
  std::string response_id;  // assistant only
  std::string text;
  double at = 0;  // unix seconds, when the gateway relayed the event
};

// The JSONL line of an entry (no newline) and back (nullopt: not an entry line).
std::string to_json_line(const Entry& entry);
std::optional<Entry> parse_json_line(std::string_view line);

class TranscriptStore;

// One call's (or session's) capture. Turns: each response.created opens the next turn; an
// assistant transcript carries its response's turn; a user's input transcription carries the turn
// its committed item leads to (the turn after the last response created when it was committed).
class TranscriptCapture {
 public:
  TranscriptCapture(std::shared_ptr<TranscriptStore> store, std::string call_id,
                    std::string key_name, std::string model);
  // An upstream event (GA or beta names) that passed the meter, on its way to the client.
  void on_upstream_event(const std::string& text);

 private:
  std::shared_ptr<TranscriptStore> store_;
  std::string call_id_;
  std::string key_name_;
  std::string model_;
  std::int64_t responses_ = 0;
  // Bounded: a long call forgets the oldest ids (their entries then take the current turn).
  std::deque<std::pair<std::string, std::int64_t>> response_turns_;
  std::deque<std::pair<std::string, std::int64_t>> item_turns_;
};

// A read's answer: the transcript, or why there is none.
struct Transcript {
  bool found = false;  // the call is known as transcribed and the caller may see it
  std::string model;
  std::vector<Entry> entries;
  std::string unavailable;  // non-empty: the store could not be read (503)
};

class TranscriptStore : public std::enable_shared_from_this<TranscriptStore> {
 public:
  static constexpr std::size_t kRememberedCalls = 10000;
  static constexpr std::size_t kRememberedIds = 256;  // per capture, response and item ids each

  // `log_path`: the JSONL file ("" = none: entries are kept nowhere without a database).
  TranscriptStore(config::TranscriptsConfig config, std::string log_path);
  ~TranscriptStore();
  TranscriptStore(const TranscriptStore&) = delete;
  TranscriptStore& operator=(const TranscriptStore&) = delete;
  // The JSONL path `transcripts.log` names, else `{usage.log}.transcripts.jsonl`, else "".
  static std::string log_path_for(const config::Config& config);

  // The ledger from now on (entries go to its table; reads come from it); creates the table.
  void set_ledger(usage::PostgresLedger* ledger);

  bool wants(const std::string& key_name, const std::string& model) const;
  // A capture for this call when it is transcribed, else null.
  std::shared_ptr<TranscriptCapture> capture_for(const std::string& call_id,
                                                 const std::string& key_name,
                                                 const std::string& model);
  const config::TranscriptsConfig& config() const { return config_; }

  void add(Entry entry);
  // The call's transcript for a caller whose access is `may_access(owner key)`; `done` runs on the
  // main loop (perhaps before this returns).
  void read(const std::string& call_id, std::function<bool(const std::string&)> may_access,
            std::function<void(Transcript)> done);
  // This process transcribed the call (its owner is remembered).
  bool knows(const std::string& call_id) const { return owners_.count(call_id) != 0; }
  // Entries go to (and are read from) the PostgreSQL table every instance shares.
  bool shared() const { return ledger_ != nullptr; }

  // The statements of the PostgreSQL table.
  static const char* table_sql();
  static const char* insert_sql();
  static const char* select_sql();

 private:
  struct Owner {
    std::string key_name;
    std::string model;
  };
  void remember(const std::string& call_id, const std::string& key_name, const std::string& model);

  config::TranscriptsConfig config_;
  std::string log_path_;
  int log_fd_ = -1;  // O_APPEND, opened at the first entry
  usage::PostgresLedger* ledger_ = nullptr;
  std::map<std::string, Owner> owners_;
  std::deque<std::string> owner_order_;  // oldest first
  std::uint64_t dropped_ = 0;
};

// `transcripts.enable_input_transcription`: the session the worker gets with input transcription
// switched on (`audio.input.transcription.model` = `transcription_model`) when `session_json` (GA,
// already for the upstream) names none; a bare offer (nullopt) gets a minimal realtime session
// naming `upstream_model`. nullopt (unchanged) when the session has `audio.input.transcription`
// (even null: the client chose), or is not a JSON object, or its audio or input is not an object.
std::optional<std::string> with_input_transcription(const std::optional<std::string>& session_json,
                                                    const std::string& upstream_model,
                                                    const std::string& transcription_model);

}  // namespace rtgw::transcripts
