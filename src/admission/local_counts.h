// SPDX-License-Identifier: MIT
// What admission counts on this instance: the interface the call and session registries
// implement (calls/call_registry.h, sessions/session_registry.h), so admission reads their counts
// without knowing either. A new kind of live thing (a translation session) implements it too and
// is handed to `Admission` beside them.
//
// Threads: main loop only (the registries' maps are main-loop state).
#pragma once

#include <string>

namespace rtgw::admission {

class LocalCounts {
 public:
  virtual ~LocalCounts() = default;
  // Live ones (set up or connected), all of them or one key's: limits.max_calls and a key's
  // max_concurrent_calls bound their sum over every registry.
  virtual int live_count() const = 0;
  virtual int live_count_for_key(const std::string& key_name) const = 0;
  // Ones set up but not connected yet (limits.max_setups, max_setups_per_key); a kind without a
  // set-up phase (a WebSocket session) has none.
  virtual int setup_count() const { return 0; }
  virtual int setup_count_for_key(const std::string& /*key_name*/) const { return 0; }
};

}  // namespace rtgw::admission
