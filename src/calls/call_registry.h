// SPDX-License-Identifier: MIT
// All calls of this process, by id.
//
// Owns: the live calls (one `Call` each, holding its worker lease), who created them, recently
// ended calls' final state (bounded), capacity counts per key, hanging everything up at shutdown,
// and telling the gateway when the last call is gone (drain).
//
// Threads: main loop only.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>

#include "admission/local_counts.h"
#include "calls/call.h"

namespace rtgw::calls {

// What the rest of the gateway (usage, metrics) hears about calls. All no-ops by default.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void OnCallAnswered(const Call& call) {}
  virtual void OnCallSetupFailed(const Call& call, const SetupFailure& failure) {}
  virtual void OnCallEnded(const Call& call) {}
};

class CallRegistry : public CallListener, public admission::LocalCounts {
 public:
  using AnswerCallback = std::function<void(std::variant<std::string, SetupFailure>)>;

  CallRegistry() = default;
  ~CallRegistry() override;

  static std::string new_call_id();

  // Creates and starts a call; `on_answer` runs once on the main loop with the answer SDP or the
  // set-up failure. Throws std::runtime_error if the pipeline cannot be built.
  Call& start_call(CallIdentity identity, CallSettings settings, workers::WorkerLease lease,
                   sdp::CheckedOffer offer, std::optional<std::string> session_json,
                   AnswerCallback on_answer);

  Call* find(const std::string& id) const;
  // Final state of a recently ended call, as JSON text, if still remembered.
  const std::pair<std::string, std::string>* find_ended(const std::string& id) const;

  int live_calls() const { return static_cast<int>(calls_.size()); }
  int live_calls_for_key(const std::string& key_name) const;
  // Calls not connected yet (Call::setting_up()), all of them or one key's.
  int setups() const;
  int setups_for_key(const std::string& key_name) const;

  // admission::LocalCounts: calls are counted with their set-up phase.
  int live_count() const override { return live_calls(); }
  int live_count_for_key(const std::string& key_name) const override {
    return live_calls_for_key(key_name);
  }
  int setup_count() const override { return setups(); }
  int setup_count_for_key(const std::string& key_name) const override {
    return setups_for_key(key_name);
  }

  void hang_up_all(const std::string& reason);
  // Ends every live call of `key_name` (set-up ones too) with Call::end_key_revoked; returns how
  // many. The calls leave the registry later, as each hangs up.
  int end_key(const std::string& key_name, const std::string& code, const std::string& message);
  void set_on_empty(std::function<void()> fn) { on_empty_ = std::move(fn); }
  void set_observer(CallObserver* observer) { observer_ = observer; }
  // Every call started from now on reports its turns and decisions there (CallSettings).
  void set_relay_observer(events::RelayObserver* observer) { relay_observer_ = observer; }
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [id, entry] : calls_) fn(*entry.call);
  }

  // CallListener
  void OnCallAnswered(Call& call, const std::string& answer_sdp) override;
  void OnCallSetupFailed(Call& call, const SetupFailure& failure) override;
  void OnCallEnded(Call& call) override;

 private:
  struct Entry {
    std::unique_ptr<Call> call;
    AnswerCallback on_answer;
  };
  void drop(const std::string& id);

  std::map<std::string, Entry> calls_;
  // (owner key name, final describe() JSON) of ended calls, newest last.
  std::map<std::string, std::pair<std::string, std::string>> ended_;
  std::deque<std::string> ended_order_;
  std::function<void()> on_empty_;
  CallObserver* observer_ = nullptr;
  events::RelayObserver* relay_observer_ = nullptr;
};

}  // namespace rtgw::calls
