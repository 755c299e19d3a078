// SPDX-License-Identifier: MIT
// Turn metering of SPEC "Usage metering", independent of GStreamer. `rtusagemeter` wraps it.
//
// A call has two event paths. On the client→upstream path (after the policy filter),
// `note_client_event()` records each `response.create` (time, service tier actually sent, event_id)
// and the last `session.service_tier` sent, into a `UsageLink`. On the upstream→client path,
// `TurnTracker` opens a turn on `response.created` (taking the oldest pending request from the link
// as the turn's request time and tier), notes the first `response.*delta`, and closes the turn on
// `response.done` with a `TurnRecord`.
//
// Rules worth knowing:
// - The first event seen of a response (`response.created`, a delta or `response.done`) opens its
//   turn. A `response.done` with nothing before it is therefore still metered: its request time is
//   the oldest pending request if there is one, else the `response.done` itself (duration 0).
// - With no pending request (server-initiated responses, e.g. server VAD) the request time is the
//   arrival of the response's first event and the tier is the session's last sent tier.
// - Pending requests older than `kStaleRequestUs` are discarded; an upstream `error` whose
//   `error.event_id` names a pending `response.create` removes it (that request got no response).
// - Tiers are reported normalized (see normalize_tier); "" when none was sent.
// - Token counts are JSON numbers: an integer reads as itself, a fraction or exponent form
//   rounded up; non-numbers (strings, null, objects) and negative counts read as 0. A count over
//   10^9 (usage::kMaxTurnTokens, usage/saturating.h), or an integer too large for 64 bits, reads
//   as 10^9 and sets `Usage::clamped`: invalid usage, counted at the cap so that it can never
//   wrap a total or read as free. `usage_present` is true whenever `response.usage` is an object.
// - `conversation.item.input_audio_transcription.completed` with a `usage` object is a turn of
//   kind transcription (item_id, token- or duration-billed usage; duration 0, no tier, no
//   first-token latency); it has nothing to do with pending response.create requests.
// - Translation sessions (SPEC "Translation sessions") have no responses: their usage is
//   continuous. Any `session.*` server event that carries a `usage` object (the worker reports it
//   as it goes, e.g. on `session.output_transcript.delta`, or on `session.closed` for the rest)
//   is a turn of kind translation: its token counts as above, and `usage.seconds` (audio the
//   worker translated, a non-negative number, whatever `usage.type`) in `Usage::seconds`; its
//   `item_id` is the event's `event_id` (one record per report). No realtime or transcription
//   server event of that family carries `usage`.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "json.h"
#include "usage_fields.h"

namespace rtgw::rtevents {

// A turn's usage: its token counts (the field table's, usage_fields.h) and what is not a count.
struct Usage : TokenCounts {
  bool present = false;
  // Duration-billed transcription (`usage.type == "duration"`): `usage.seconds`, else 0. A
  // translation report: the audio seconds it covers (`usage.seconds`, any type).
  double seconds = 0;
  // A token count was over usage::kMaxTurnTokens and reads as that cap (invalid usage).
  bool clamped = false;
};

// Reads `usage` from a response object (`response.done`'s `response`) or from any object holding
// a `usage` member (a transcription event). `holder` may be null. Token-billed usage
// (`{"type":"tokens",...}` or no type) fills the token counts; duration-billed usage
// (`{"type":"duration","seconds":N}`) fills `seconds` (a non-negative JSON number).
Usage extract_usage(const json::Value* holder);

struct PendingRequest {
  std::int64_t time_us = 0;  // g_get_monotonic_time() when the response.create went out
  std::string tier;          // normalized tier sent ("" = none)
  std::string event_id;      // the client's event_id ("" = none)
};

// State shared by the two meters of one call. Every method takes the link's own mutex; none calls
// out while holding it.
class UsageLink {
 public:
  static constexpr std::size_t kMaxPending = 64;
  static constexpr std::int64_t kStaleRequestUs = 60'000'000;

  void push_request(PendingRequest r);
  // The oldest request younger than kStaleRequestUs at `now_us` (older ones are discarded).
  std::optional<PendingRequest> pop_request(std::int64_t now_us);
  // Drops the pending request with this event_id (it was answered with an error).
  void forget_request(std::string_view event_id);
  void set_session_tier(std::string tier);
  std::string session_tier() const;
  std::size_t pending() const;
  // Forgets pending requests and the session tier.
  void clear();

 private:
  mutable std::mutex mu_;
  std::deque<PendingRequest> queue_;  // guarded by mu_
  std::string session_tier_;          // guarded by mu_
};

// Client→upstream direction: records response.create requests and session tiers in `link`.
void note_client_event(const json::Value& root, std::int64_t now_us, UsageLink& link);

struct TurnRecord {
  enum class Kind { kResponse, kTranscription, kTranslation };
  Kind kind = Kind::kResponse;
  std::string response_id;  // kResponse
  std::string item_id;      // kTranscription: the transcribed item; kTranslation: the event_id
  std::string status;
  Usage usage;
  std::string service_tier;
  double first_token_latency_ms = -1;  // -1: no output delta seen
  double turn_duration_ms = 0;
};

// Upstream→client direction. Not thread-safe: one streaming thread (and reset() while stopped).
class TurnTracker {
 public:
  static constexpr std::size_t kMaxOpenTurns = 32;

  // Feeds one upstream event; returns the finished turn on `response.done`, and a transcription
  // turn on every `conversation.item.input_audio_transcription.completed` that carries `usage`
  // (any session: realtime sessions with input transcription as well as transcription sessions).
  std::optional<TurnRecord> on_upstream_event(const json::Value& root, std::int64_t now_us,
                                              UsageLink* link);
  std::size_t open_turns() const { return turns_.size(); }
  void reset() { turns_.clear(); }

 private:
  struct Turn {
    std::string response_id;
    std::int64_t start_us = 0;
    std::int64_t first_delta_us = -1;
    std::string tier;
  };
  // The open turn of `response_id`, else a new one. An empty id means "the latest open turn" when
  // `latest_if_no_id`, else always opens a new turn.
  Turn& find_or_open(const std::string& response_id, bool latest_if_no_id, std::int64_t now_us,
                     UsageLink* link);

  std::vector<Turn> turns_;  // oldest first
};

bool is_output_delta(std::string_view type);

}  // namespace rtgw::rtevents
