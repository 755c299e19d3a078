// SPDX-License-Identifier: MIT
#include "events/event_relay.h"

#include <algorithm>

#include "common/main_thread.h"

namespace rtgw::events {

bool PendingQueue::push(std::string text) {
  auto size = static_cast<std::int64_t>(text.size());
  if (bytes_ + size > max_bytes_) return false;
  bytes_ += size;
  queue_.push_back(std::move(text));
  return true;
}

std::deque<std::string> PendingQueue::take() {
  bytes_ = 0;
  return std::exchange(queue_, {});
}

void PendingQueue::clear() {
  queue_.clear();
  bytes_ = 0;
}

void RelayTimes::record(std::int64_t ns) {
  count_++;
  if (samples_.size() < kSamples) {
    samples_.push_back(ns);
    return;
  }
  samples_[next_] = ns;
  next_ = (next_ + 1) % kSamples;
}

json::ObjectBuilder RelayTimes::json() const {
  json::ObjectBuilder out;
  out.set("count", static_cast<gint64>(count_));
  if (samples_.empty()) {
    out.set_null("p50").set_null("p90").set_null("max");
    return out;
  }
  std::vector<std::int64_t> sorted = samples_;
  std::sort(sorted.begin(), sorted.end());
  auto us = [](std::int64_t ns) { return static_cast<double>(ns / 100) / 10.0; };
  auto at = [&sorted](double q) {
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * sorted.size()))];
  };
  out.set("p50", us(at(0.5))).set("p90", us(at(0.9))).set("max", us(sorted.back()));
  return out;
}

void EventRelay::on_decision(const PolicyDecision& d) {
  if (d.action == "block") {
    blocked_++;
    transport_->send_error_to_client(
        make_error_event("invalid_request_error", d.error_code(), d.message, d.event_id));
  } else {
    filtered_++;
  }
  transport_->OnRelayDecision(d);
  if (d.end_call) transport_->OnRelayPolicyEnd("policy: " + d.message);
}

void EventRelay::on_turn(usage::UsageRecord record, const TurnIds& ids) {
  record.call_id = ids.call_id;
  record.transport = ids.transport;
  record.key_name = ids.key_name;
  record.model = ids.model;
  record.worker = ids.worker_name;
  // The one place a turn is priced: the record leaves with its cost (null without a price table
  // or when the table lacks a price the turn needs), and the owner records it as is.
  record.cost_usd = usage::price_turn(record, pricing_ ? &*pricing_ : nullptr);
  turns_++;
  usage_total_.add_tokens(record);
  recent_turn_costs_.emplace_back(
      record.kind == "transcription" ? record.item_id : record.response_id, record.cost_usd);
  if (recent_turn_costs_.size() > kRecentTurnCosts) recent_turn_costs_.pop_front();
  transport_->OnRelayTurn(record);
  if (waiting_) {
    stop();
    transport_->OnRelayWaitOver(wait_reason_ + " (late usage metered)");
  }
}

bool EventRelay::begin_late_usage_wait(const std::string& reason, guint open_turns) {
  if (waiting_) return true;
  if (open_turns == 0 || !transport_->send_cancel_upstream(R"({"type":"response.cancel"})"))
    return false;
  // Nobody will hear the rest: it is cancelled at once, and its response.done awaited (bounded)
  // so the tokens already spent are metered.
  waiting_ = true;
  wait_reason_ = reason;
  wait_timeout_ = run_after_ms(static_cast<guint>(late_usage_wait_ms_), [this] {
    waiting_ = false;
    transport_->OnRelayWaitOver(wait_reason_ + " (no late response.done)");
  });
  return true;
}

void EventRelay::stop() {
  waiting_ = false;
  wait_timeout_.cancel();
}

json::ObjectBuilder EventRelay::events_json(bool with_refused) const {
  json::ObjectBuilder events;
  events.set("from_client", static_cast<gint64>(from_client_))
      .set("from_upstream", static_cast<gint64>(from_upstream_));
  if (with_refused) events.set("refused", static_cast<gint64>(refused_));
  events.set("blocked", static_cast<gint64>(blocked_))
      .set("filtered", static_cast<gint64>(filtered_));
  return events;
}

json::ObjectBuilder EventRelay::relay_times_json() const {
  json::ObjectBuilder times;
  times.set_object("to_upstream", to_upstream_times_.json())
      .set_object("to_client", to_client_times_.json());
  return times;
}

json::ObjectBuilder EventRelay::usage_json() const {
  json::ObjectBuilder usage = usage_total_.tokens_json();
  usage.set("turns", static_cast<gint64>(turns_));
  if (usage_total_.cost_usd)
    usage.set("cost_usd", *usage_total_.cost_usd);
  else
    usage.set_null("cost_usd");
  auto turn_costs = Ref<JsonNode>::adopt(json_node_new(JSON_NODE_ARRAY));
  json_node_take_array(turn_costs.get(), json_array_new());
  for (const auto& [turn_id, cost] : recent_turn_costs_) {
    json::ObjectBuilder turn;
    turn.set("id", turn_id);
    if (cost)
      turn.set("cost_usd", *cost);
    else
      turn.set_null("cost_usd");
    json_array_add_element(json_node_get_array(turn_costs.get()), turn.node().release());
  }
  usage.set_node("turn_costs", turn_costs);
  return usage;
}

}  // namespace rtgw::events
