// SPDX-License-Identifier: MIT
// Recent errors and refusals, for the operator console.
//
// Owns: a ring of the last kCapacity entries (HTTP errors answered to clients, admission
// refusals, blocked events, calls and sessions that failed or ended abnormally), each with a
// sequence number so a reader can tell new ones from ones it has shown. Memory is bounded: the
// ring, and each text cut to kMaxText bytes. Nothing is persisted.
//
// Threads: main loop only.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

namespace rtgw::console {

struct ErrorEntry {
  std::uint64_t seq = 0;  // 1, 2, ... in the order noted
  double unix_time = 0;
  std::string kind;  // "http", "refusal", "policy", "call", "session"
  std::string code;  // the error code or outcome
  std::string message;
  std::string id;   // call or session id, or "METHOD /path"
  std::string key;  // key name, when known
};

class RecentErrors {
 public:
  static constexpr std::size_t kCapacity = 100;
  static constexpr std::size_t kMaxText = 300;

  void note(ErrorEntry entry);
  const std::deque<ErrorEntry>& entries() const { return entries_; }  // oldest first
  std::uint64_t last_seq() const { return seq_; }

 private:
  std::deque<ErrorEntry> entries_;
  std::uint64_t seq_ = 0;
};

}  // namespace rtgw::console
