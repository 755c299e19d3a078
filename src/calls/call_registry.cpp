// SPDX-License-Identifier: MIT
#include "calls/call_registry.h"

#include "common/main_thread.h"
#include "common/random.h"

namespace rtgw::calls {
namespace {
constexpr size_t kEndedCallsKept = 256;
}

CallRegistry::~CallRegistry() {
  // Calls report their end through post_to_main; at destruction nobody listens any more.
  for (auto& [id, entry] : calls_) entry.call->hang_up("gateway stopped");
  calls_.clear();
}

std::string CallRegistry::new_call_id() { return random_id("rtc_", 32); }

Call& CallRegistry::start_call(CallIdentity identity, CallSettings settings,
                               workers::WorkerLease lease, sdp::CheckedOffer offer,
                               std::optional<std::string> session_json, AnswerCallback on_answer) {
  std::string id = identity.call_id;
  settings.relay_observer = relay_observer_;
  auto call =
      std::make_unique<Call>(std::move(identity), std::move(settings), std::move(lease), this);
  Call& ref = *call;
  calls_[id] = Entry{std::move(call), std::move(on_answer)};
  try {
    ref.start(std::move(offer), std::move(session_json));
  } catch (...) {
    auto entry = std::move(calls_[id]);
    calls_.erase(id);
    entry.call->hang_up("pipeline could not start");
    throw;
  }
  return ref;
}

Call* CallRegistry::find(const std::string& id) const {
  auto it = calls_.find(id);
  return it == calls_.end() ? nullptr : it->second.call.get();
}

const std::pair<std::string, std::string>* CallRegistry::find_ended(const std::string& id) const {
  auto it = ended_.find(id);
  return it == ended_.end() ? nullptr : &it->second;
}

int CallRegistry::live_calls_for_key(const std::string& key_name) const {
  int n = 0;
  for (const auto& [id, entry] : calls_) n += entry.call->identity().key_name == key_name;
  return n;
}

int CallRegistry::setups() const {
  int n = 0;
  for (const auto& [id, entry] : calls_) n += entry.call->setting_up();
  return n;
}

int CallRegistry::setups_for_key(const std::string& key_name) const {
  int n = 0;
  for (const auto& [id, entry] : calls_)
    n += entry.call->setting_up() && entry.call->identity().key_name == key_name;
  return n;
}

int CallRegistry::end_key(const std::string& key_name, const std::string& code,
                          const std::string& message) {
  // Collected first: ending may change the map.
  std::vector<Call*> of_key;
  for (auto& [id, entry] : calls_)
    if (entry.call->identity().key_name == key_name) of_key.push_back(entry.call.get());
  for (Call* c : of_key) c->end_key_revoked(code, message);
  return static_cast<int>(of_key.size());
}

void CallRegistry::hang_up_all(const std::string& reason) {
  std::vector<Call*> live;
  for (auto& [id, entry] : calls_) live.push_back(entry.call.get());
  for (Call* c : live) c->hang_up(reason);
}

void CallRegistry::OnCallAnswered(Call& call, const std::string& answer_sdp) {
  if (observer_) observer_->OnCallAnswered(call);
  auto it = calls_.find(call.id());
  if (it == calls_.end() || !it->second.on_answer) return;
  auto cb = std::move(it->second.on_answer);
  it->second.on_answer = nullptr;
  cb(answer_sdp);
}

void CallRegistry::OnCallSetupFailed(Call& call, const SetupFailure& failure) {
  auto it = calls_.find(call.id());
  if (it == calls_.end()) return;
  if (observer_) observer_->OnCallSetupFailed(call, failure);
  auto cb = std::move(it->second.on_answer);
  it->second.on_answer = nullptr;
  if (cb) cb(failure);
  // Never delete a call from inside its own callback.
  std::string id = call.id();
  post_to_main([this, id] { drop(id); });
}

void CallRegistry::OnCallEnded(Call& call) { drop(call.id()); }

void CallRegistry::drop(const std::string& id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Entry entry = std::move(it->second);
  calls_.erase(it);
  entry.call->hang_up("dropped");
  ended_[id] = {entry.call->identity().key_name, entry.call->describe().str()};
  ended_order_.push_back(id);
  while (ended_order_.size() > kEndedCallsKept) {
    ended_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
  if (observer_ && entry.call->answered()) observer_->OnCallEnded(*entry.call);
  entry.call.reset();
  if (calls_.empty() && on_empty_) on_empty_();
}

}  // namespace rtgw::calls
