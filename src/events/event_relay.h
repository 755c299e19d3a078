// SPDX-License-Identifier: MIT
// What the two transports (WebRTC calls, WebSocket sessions) do alike with realtime events.
//
// Owns, for one call or session: the bounded queue of events waiting for a side to open, the
// event statistics (relayed, refused, blocked, filtered), the filter's decisions (a block becomes
// an error event for the client; an `end_call` rule ends the call), the metered turns (the
// record's ids filled in, the turn priced from the model's table: the only place a turn is
// priced, for both transports; summed into the call's usage), and the late-usage wait at hang-up
// (the client left mid-response: the response is cancelled upstream and the relay waits, bounded,
// for its response.done so the tokens already spent are metered), and the budget reservation of
// each response.create it let through (taken before the event goes upstream, released when its
// turn is metered, its request refused, or the call ends).
//
// The transport adapter (calls::Call, relay::WebSocketSession) moves bytes and decides how its
// call ends; it implements `Transport` and feeds the relay what its EventPath reports. Turns and
// decisions go from the relay to its RelayObserver (events/relay_observer.h), the one report path
// of both transports; the adapter only hears what it must act on (a policy end, the wait's end).
//
// Threads: main loop only.
#pragma once

#include <glib.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/ref.h"
#include "events/element_messages.h"
#include "events/relay_observer.h"
#include "usage/budget_reservations.h"
#include "usage/pricing.h"
#include "usage/usage_ledger.h"

namespace rtgw::transcripts {
class TranscriptCapture;
}

namespace rtgw::events {

// How long a call or session whose client left mid-response waits for that response's late
// response.done (its usage) before it ends without it: the one bound both transports use.
constexpr int kLateUsageWaitMs = 3000;

// Worth parsing as a possible response.create: the name in clear, or any \u escape (which could
// spell it). Such an event must reach EventRelay::admit_to_upstream before it goes upstream.
// Pure, any thread.
bool may_be_create(const std::string& text);

// Events waiting for a side to open, bounded in bytes.
class PendingQueue {
 public:
  explicit PendingQueue(std::int64_t max_bytes) : max_bytes_(max_bytes) {}
  // False (nothing queued) when `text` would pass the bound.
  bool push(std::string text);
  // Takes every queued event, oldest first.
  std::deque<std::string> take();
  void clear();
  std::int64_t bytes() const { return bytes_; }
  bool empty() const { return queue_.empty(); }

 private:
  std::int64_t max_bytes_;
  std::int64_t bytes_ = 0;
  std::deque<std::string> queue_;
};

// How long events spend inside the gateway in one direction: from the moment the event source
// took an event (the data channel's or the socket's callback) to its hand-off to the other side
// on the main loop (filter, meter, the appsink's post and the main loop's wake-up included), or
// to its send on the streaming thread when the event path sent it directly
// (calls/channel_sender.h). The last kSamples events are kept; percentiles are over those.
class RelayTimes {
 public:
  void record(std::int64_t ns);
  // {"count", "p50", "p90", "max"} in microseconds over the kept samples (count: all events).
  json::ObjectBuilder json() const;
  static constexpr std::size_t kSamples = 256;

 private:
  std::vector<std::int64_t> samples_;  // a ring once full
  std::size_t next_ = 0;
  std::uint64_t count_ = 0;
};

// The ids a metered turn's record carries.
struct TurnIds {
  std::string call_id;
  std::string transport;  // "webrtc" | "websocket"
  std::string key_name;
  std::string model;
  std::string worker_name;
};

class EventRelay {
 public:
  class Transport {
   public:
    virtual ~Transport() = default;
    // An error event for the client (a block, a refused event).
    virtual void send_error_to_client(const std::string& event) = 0;
    // The cancel of an open response when the client left; false when the upstream is not open.
    virtual bool send_cancel_upstream(const std::string& event) = 0;
    // An `end_call` rule fired: the error event is already queued for the client.
    virtual void OnRelayPolicyEnd(const std::string& reason) = 0;
    // The late-usage wait is over (the usage came, or the bound passed): end now.
    virtual void OnRelayWaitOver(const std::string& reason) = 0;
  };

  // `pricing`: the model's price table (each turn's cost_usd, which the observer's usage record,
  // ledger, spend and budgets take as is; the running cost); none: turns carry cost_usd null.
  // `observer`: where turns and decisions are reported (none: nowhere).
  EventRelay(int late_usage_wait_ms, Transport* transport,
             std::optional<usage::Pricing> pricing = std::nullopt,
             RelayObserver* observer = nullptr)
      : late_usage_wait_ms_(late_usage_wait_ms),
        transport_(transport),
        observer_(observer),
        pricing_(std::move(pricing)) {}
  EventRelay(const EventRelay&) = delete;
  EventRelay& operator=(const EventRelay&) = delete;

  // Budget reservations (usage/budget_reservations.h): every response.create the filter let
  // through asks `gate` for the call's key and model before it goes upstream. No gate: none.
  void set_response_gate(usage::ResponseGate gate, std::string key_name, std::string model);
  // A client event about to go upstream. False when it is a response.create the budget has no
  // room for: the client got the `insufficient_quota` error event and nothing goes upstream.
  bool admit_to_upstream(const std::string& text);
  // An upstream event on its way to the client: a response.created binds the oldest reservation
  // not yet bound to its response; an `error` naming a reserved request's event_id releases it.
  void note_from_upstream(const std::string& text);
  // Telemetry with include_content (telemetry/tracer.h): each response.done's transcript text
  // from the worker goes to `fn` with its response id. Unset (the default): nothing is read.
  using ResponseContentFn = std::function<void(const std::string& response_id, std::string text)>;
  void set_response_content(ResponseContentFn fn) { response_content_ = std::move(fn); }
  // The event admit_to_upstream() just let through was not relayed after all (a full queue, a
  // closed or stuck channel): its reservation, if it took one, is released.
  void not_relayed_upstream(const std::string& text);
  std::size_t open_reservations() const { return reservations_.size(); }

  // Transcripts (transcripts/transcript_store.h): each upstream event note_from_upstream() sees
  // goes to `capture` too. Null (the call is not transcribed): nothing more than that check.
  void set_transcript_capture(std::shared_ptr<transcripts::TranscriptCapture> capture) {
    transcript_ = std::move(capture);
  }

  // What the event path reported.
  void on_decision(const PolicyDecision& decision);
  void on_turn(usage::UsageRecord record, const TurnIds& ids);

  // The client left with `open_turns` responses open. True: the response is cancelled upstream and
  // the relay waits (bounded) for its usage, then calls OnRelayWaitOver; false: end now.
  bool begin_late_usage_wait(const std::string& reason, guint open_turns);
  bool waiting_for_usage() const { return waiting_; }
  // Why the client left (what begin_late_usage_wait() was given).
  const std::string& wait_reason() const { return wait_reason_; }
  // The call ends: no wait any more, and every budget reservation it held is released.
  void stop();

  void count_from_client() { from_client_++; }
  void count_from_upstream() { from_upstream_++; }
  void count_refused() { refused_++; }
  // An event left the event path after `ns` inside the gateway (RelayTimes).
  void record_relay_time(bool to_upstream, std::int64_t ns) {
    (to_upstream ? to_upstream_times_ : to_client_times_).record(ns);
  }
  std::uint64_t from_client() const { return from_client_; }
  std::uint64_t from_upstream() const { return from_upstream_; }

  // {"from_client","from_upstream"[,"refused"],"blocked","filtered"} for describe().
  json::ObjectBuilder events_json(bool with_refused) const;
  // {"to_upstream": RelayTimes, "to_client": RelayTimes} for describe()'s timings.
  json::ObjectBuilder relay_times_json() const;
  // The summed tokens, "turns", the running "cost_usd" (null without a price table) and
  // "turn_costs" (the last kRecentTurnCosts turns: {"id", "cost_usd"}, newest last).
  json::ObjectBuilder usage_json() const;
  static constexpr std::size_t kRecentTurnCosts = 32;

 private:
  void report_response_content(const std::string& text);
  int late_usage_wait_ms_;
  Transport* transport_;
  RelayObserver* observer_;
  std::uint64_t from_client_ = 0;
  std::uint64_t from_upstream_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t blocked_ = 0;
  std::uint64_t filtered_ = 0;
  std::uint64_t turns_ = 0;
  RelayTimes to_upstream_times_;
  RelayTimes to_client_times_;
  usage::UsageRecord usage_total_;
  std::optional<usage::Pricing> pricing_;
  // The last turns' costs (response or item id, cost), newest last, bounded.
  std::deque<std::pair<std::string, std::optional<double>>> recent_turn_costs_;
  bool waiting_ = false;
  std::string wait_reason_;
  SourceGuard wait_timeout_;

  // Budget reservations of the response.create requests let through, oldest first.
  struct OpenReservation {
    usage::Reservation reservation;
    std::string event_id;     // the client's, "" when it sent none
    std::string response_id;  // "" until its response.created
    gint64 created_us = 0;
  };
  void release_reservation_of(const usage::UsageRecord& record);
  void drop_unstarted_reservations();
  usage::ResponseGate gate_;
  std::string gate_key_;
  std::string gate_model_;
  std::deque<OpenReservation> reservations_;
  ResponseContentFn response_content_;
  std::shared_ptr<transcripts::TranscriptCapture> transcript_;  // null: not transcribed
};

}  // namespace rtgw::events
