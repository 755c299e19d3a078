// SPDX-License-Identifier: MIT
// The event path of one WebSocket session: the same elements as a call's, without media.
//
// Owns: a GstPipeline built from the session description (pipelines/session.pipeline):
// appsrc -> rteventfilter -> rtusagemeter -> appsink for client events, appsrc -> rtusagemeter ->
// appsink for upstream events; its bus watch; and decoding what the elements post (policy
// decisions, metered turns) for its listener. Events come out on the main loop, in order per
// direction.
//
// Threads: main loop only (the appsinks post to it).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <memory>
#include <string>

#include "calls/element_messages.h"
#include "common/ref.h"
#include "usage/usage_ledger.h"

namespace rtgw::relay {

class EventPath {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // An event left the path: to the upstream (a client event that passed the filter) or to the
    // client (an upstream event, metered).
    virtual void OnPathEvent(bool to_upstream, std::string text) = 0;
    virtual void OnPathDecision(const calls::PolicyDecision& decision) = 0;
    // A metered turn; the record's ids are left to the listener.
    virtual void OnPathTurn(usage::UsageRecord record) = 0;
  };

  struct Policy {
    std::string policy_json;  // rteventfilter `policy` ("" = none)
    std::string key_name;
    std::string model;
    bool budget_exceeded = false;
  };

  // Builds and starts the pipeline. Throws std::runtime_error when the description does not
  // build or lacks a named element (an operator error).
  EventPath(const std::string& description, const std::string& name, const Policy& policy,
            Listener* listener);
  ~EventPath();
  EventPath(const EventPath&) = delete;
  EventPath& operator=(const EventPath&) = delete;

  void push_from_client(const std::string& text);
  void push_from_upstream(const std::string& text);
  void set_budget_exceeded(bool exceeded);
  // Responses the meter saw created and not yet done.
  guint open_turns() const;
  // Upstream events pushed that have not come out towards the client yet.
  std::uint64_t in_flight_to_client() const { return from_upstream_ - to_client_; }

 private:
  Ref<GstElement> element(const char* name) const;
  void on_bus_message(GstMessage* message);

  Listener* listener_;
  Ref<GstElement> pipeline_;
  Ref<GstElement> client_in_;
  Ref<GstElement> upstream_in_;
  SourceGuard bus_watch_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::uint64_t from_upstream_ = 0;
  std::uint64_t to_client_ = 0;
};

// Builds the session description once and checks its named elements. Throws
// std::runtime_error.
void check_session_description(const std::string& description);

}  // namespace rtgw::relay
