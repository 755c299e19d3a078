// SPDX-License-Identifier: MIT
// Reading what the event elements post on the bus.
//
// Owns: decoding rteventfilter's `rtevent-decision` and rtusagemeter's `rtusage-turn` element
// messages into plain structs, and the error event the gateway answers with, for every transport
// that runs the elements (WebRTC calls, WebSocket sessions).
//
// Threads: any (pure functions).
#pragma once

#include <gst/gst.h>

#include <optional>
#include <string>
#include <string_view>

#include "usage/usage_ledger.h"

namespace rtgw::events {

inline constexpr const char* kQuotaError = "insufficient_quota";

// What rteventfilter decided about one client event.
struct PolicyDecision {
  std::string action;  // "filter" | "block" | "lower" (reasoning effort rewritten to its cap)
  // "service_tier" | "denied_event" | "too_large" | "budget" | "invalid_json" |
  // "model_not_allowed" | "reasoning_effort"
  std::string reason;
  std::string rule;
  std::string event_type;
  std::string event_id;
  std::string tier;
  std::string model;
  std::string message;
  bool end_call = false;

  // The `error.type` and `error.code` of the error event the client gets for a block.
  const char* error_type() const {
    return reason == "budget" ? kQuotaError : "invalid_request_error";
  }
  const char* error_code() const {
    if (reason == "too_large") return "event_too_large";
    if (reason == "invalid_json") return "invalid_json";
    if (reason == "model_not_allowed") return "model_not_allowed";
    if (reason == "budget") return kQuotaError;
    return "policy_violation";
  }
};

// A worker's event is strict JSON (RFC 8259, rtevents/json_strict.h; any depth: the event path
// builds no tree of it) and an object. What is not would break the client's parser, or be read
// differently by it: the transports send an error event in its place.
bool is_json_object(std::string_view text);
// A budget's refusal, as clients see it (SPEC "Errors agents act on"): error type and code both
// `insufficient_quota`, as OpenAI's own, which agent frameworks take as "do not reconnect". The
// reason `budget_exceeded` stays in the gateway's logs and call state.
std::string make_quota_error_event(const std::string& message,
                                   const std::string& client_event_id = {});

// An `error` server event as OpenAI sends them: {"type":"error","event_id":"evt_<32 hex>",
// "error":{"type","code","message"[,"event_id": the client event it is about]}}.
std::string make_error_event(const std::string& type, const std::string& code,
                             const std::string& message, const std::string& client_event_id = {});

// nullopt when the structure is not an `rtevent-decision`.
std::optional<PolicyDecision> parse_decision(const GstStructure* s);
// nullopt when the structure is not an `rtusage-turn`. The record's ids (call, key, model,
// worker, transport) are left for the caller.
std::optional<usage::UsageRecord> parse_turn(const GstStructure* s);

}  // namespace rtgw::events
