// SPDX-License-Identifier: MIT
// The event path: the GStreamer elements every realtime event crosses, for both transports.
//
// Owns: the path's named elements (the same in pipelines/call.pipeline and
// pipelines/session.pipeline): source -> rteventfilter -> rtusagemeter -> appsink for client
// events, source -> rtusagemeter -> appsink for upstream events, where a source is rteventsrc
// (or any element with appsrc's push-buffer action signal); pushing events in, pulling them
// out, the filter's settings, and decoding what the elements post on the bus (policy
// decisions, metered turns) for its listener. A WebRTC call's path lives in the call's pipeline
// (the call runs and stops it); a WebSocket session's path has a pipeline of its own, built,
// started and stopped (off the main loop) here.
//
// Pulling events out: the appsinks call back on streaming threads; a DirectSink set with
// set_direct() may send an event right there; otherwise, and for the bookkeeping of what it sent,
// events come out on the main loop, in order per direction.
//
// Threads: main loop only, except `push_event`, which any thread may call, and the DirectSinks.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/main_thread.h"
#include "common/ref.h"
#include "events/element_messages.h"
#include "usage/usage_ledger.h"

namespace rtgw::events {

// The path's named elements.
constexpr const char* kClientEventsIn = "client_events_in";            // rteventsrc
constexpr const char* kUpstreamEventsOut = "upstream_events_out";      // appsink
constexpr const char* kUpstreamEventsIn = "upstream_events_in";        // rteventsrc
constexpr const char* kClientEventsOut = "client_events_out";          // appsink
constexpr const char* kClientEventsFilter = "client_events_filter";    // rteventfilter
constexpr const char* kUpstreamEventsMeter = "upstream_events_meter";  // rtusagemeter

// Sends an event that left the path from the streaming thread it came out on, skipping the main
// loop (a call's data channel: calls/channel_sender.h).
class DirectSink {
 public:
  virtual ~DirectSink() = default;
  // Streaming thread: true when `text` was sent now (the listener then hears OnPathEventSent).
  // False: the event goes to the main loop as before (OnPathEvent), after which `settled()` is
  // called there, once per false.
  virtual bool try_send(const std::string& text) = 0;
  virtual void settled() = 0;
};

// Pushes one event (a JSON text) into a source (rteventsrc: downstream in the calling thread;
// appsrc: into its queue) as one buffer. Thread safe.
void push_event(GstElement* source, const char* data, gsize length);
// Throws std::runtime_error when either named source cannot be pushed to (no push-buffer action
// signal): an operator's pipeline file error, caught at start-up.
void check_sources(GstElement* pipeline);
// What left the path at an appsink, on the main loop.
struct PathOut {
  std::string text;
  GstClockTime pts = GST_CLOCK_TIME_NONE;  // the running time its source stamped
  bool sent = false;                       // a DirectSink sent it on the streaming thread
  std::int64_t sent_ns = -1;               // then: its time inside the path until sent
};
// Where pull_events() finds its DirectSink (none: everything goes to the main loop). Filled
// before the pipeline runs; read on the streaming thread.
struct DirectSlot {
  std::shared_ptr<DirectSink> sink;
};
// Hands every event that reaches `appsink` to `on_event` on the main loop (the appsink calls
// back on a streaming thread), as long as `alive` holds, after offering it to the slot's sink.
void pull_events(GstElement* appsink, Liveness alive, std::shared_ptr<const DirectSlot> direct,
                 std::function<void(PathOut)> on_event);

class EventPath {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // An event left the path: to the upstream (a client event that passed the filter) or to the
    // client (an upstream event, metered), `relay_ns` after its source took it (-1: unknown).
    virtual void OnPathEvent(bool to_upstream, std::string text, std::int64_t relay_ns) = 0;
    // The same, for an event a DirectSink (set_direct) already sent from the streaming thread:
    // what is left is bookkeeping. In order with OnPathEvent per direction.
    virtual void OnPathEventSent(bool to_upstream, std::string text, std::int64_t relay_ns) {
      (void)to_upstream, (void)text, (void)relay_ns;
    }
    virtual void OnPathDecision(const PolicyDecision& decision) = 0;
    // A metered turn; the record's ids are left to the listener.
    virtual void OnPathTurn(usage::UsageRecord record) = 0;
  };

  struct Policy {
    std::string policy_json;  // rteventfilter `policy` ("" = none)
    std::string key_name;
    std::string model;
    bool budget_exceeded = false;
    // rteventfilter `allowed-models`: the key's model patterns (and the session's own upstream
    // model name, which the gateway itself sends); empty: any model.
    std::vector<std::string> allowed_models;
  };

  // The path inside `pipeline` (a call's), which its owner runs, watches (it hands element
  // messages to handle_message()) and stops. Throws std::runtime_error when an element is missing.
  EventPath(GstElement* pipeline, const Policy& policy, Listener* listener);
  // A path with a pipeline of its own built from `description`, watched and started here.
  // Throws std::runtime_error when the description does not build or lacks a named element (an
  // operator error).
  static std::unique_ptr<EventPath> start_own(const std::string& description,
                                              const std::string& name, const Policy& policy,
                                              Listener* listener);
  ~EventPath();
  EventPath(const EventPath&) = delete;
  EventPath& operator=(const EventPath&) = delete;

  // Decodes a decision or a turn for the listener; false when the message is neither.
  bool handle_message(GstMessage* message);

  void push_from_client(const std::string& text);
  void push_from_upstream(const std::string& text);
  // Where a transport may push client events itself (a data channel, on webrtcbin's thread).
  const Ref<GstElement>& client_in() const { return client_in_; }
  void set_budget_exceeded(bool exceeded);
  // Events leaving the path towards the upstream (or the client) are offered to `sink` on the
  // streaming thread first. Before the pipeline runs.
  void set_direct(bool to_upstream, std::shared_ptr<DirectSink> sink);
  // Responses the meter saw created and not yet done.
  guint open_turns() const;
  // Upstream events pushed that have not come out towards the client yet.
  std::uint64_t in_flight_to_client() const { return from_upstream_ - to_client_; }

 private:
  Ref<GstElement> element(const char* name) const;
  void on_own_bus_message(GstMessage* message);
  // Nanoseconds since the running time `pts` (-1 without a clock or a PTS).
  std::int64_t since(GstClockTime pts);

  Listener* listener_;
  Ref<GstElement> pipeline_;
  bool owns_pipeline_ = false;
  Ref<GstElement> client_in_;
  Ref<GstElement> upstream_in_;
  Ref<GstElement> filter_;
  Ref<GstElement> meter_;
  Ref<GstClock> clock_;    // the pipeline's, once it runs
  SourceGuard bus_watch_;  // own pipeline only
  std::uint64_t from_upstream_ = 0;
  std::uint64_t to_client_ = 0;
  std::shared_ptr<DirectSlot> direct_to_upstream_ = std::make_shared<DirectSlot>();
  std::shared_ptr<DirectSlot> direct_to_client_ = std::make_shared<DirectSlot>();
  Lifetime lifetime_;  // checked by the appsinks' posts
};

// Builds the session description once and checks its named elements. Throws
// std::runtime_error.
void check_session_description(const std::string& description);

}  // namespace rtgw::events
