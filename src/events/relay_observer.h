// SPDX-License-Identifier: MIT
// The one report path of both transports: what an EventRelay reports about a call or session.
//
// Owns nothing. An EventRelay (events/event_relay.h) reports each metered turn, priced and
// carrying the call's or session's ids, and each policy decision of its filter, straight to one
// RelayObserver (the accounting, accounting/call_accounting.h); the transport adapters (a Call, a
// WebSocketSession) and their registries do not forward reports.
//
// Threads: main loop only (the relay reports from the main loop).
#pragma once

#include "events/element_messages.h"
#include "usage/usage_ledger.h"

namespace rtgw::events {

class RelayObserver {
 public:
  virtual ~RelayObserver() = default;
  // A metered turn: its record carries the ids (call or session id, transport, key, model,
  // worker) and the cost the relay priced; the observer records it as is.
  virtual void OnRelayTurn(const usage::UsageRecord& record) = 0;
  // A policy decision of the filter (a block or a change).
  virtual void OnRelayDecision(const PolicyDecision& decision) = 0;
};

}  // namespace rtgw::events
