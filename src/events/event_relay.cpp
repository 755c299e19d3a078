// SPDX-License-Identifier: MIT
#include "events/event_relay.h"

#include <algorithm>

#include "rtevents/json.h"

#include "common/main_thread.h"
#include "transcripts/transcript_store.h"
#include "usage/saturating.h"

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

void EventRelay::set_response_gate(usage::ResponseGate gate, std::string key_name,
                                   std::string model) {
  gate_ = std::move(gate);
  gate_key_ = std::move(key_name);
  gate_model_ = std::move(model);
}

bool may_be_create(const std::string& text) {
  return text.find("response.create") != std::string::npos || text.find("\\u") != std::string::npos;
}

namespace {

// The event's type and event_id when it is a JSON object.
struct EventHead {
  std::string type;
  std::string event_id;
  std::string response_id;     // response.created: response.id
  std::string error_event_id;  // error: error.event_id
  // Any of its `type` members is response.create: with duplicate keys a first-wins upstream
  // parser reads the first, a last-wins one the last (the policy filter considers all as well).
  bool create = false;
};

std::optional<EventHead> event_head(const std::string& text) {
  auto parsed = rtevents::json::parse(text);
  if (!parsed.root || !parsed.root->is_object()) return std::nullopt;
  const rtevents::json::Value& root = *parsed.root;
  EventHead head;
  head.type = root.last_string("type").value_or("");
  for (const auto& t : root.all_strings("type"))
    head.create = head.create || t == "response.create";
  head.event_id = root.last_string("event_id").value_or("");
  auto member_string = [&](std::string_view object, std::string_view key) -> std::string {
    const rtevents::json::Value* o = root.last(object);
    return o && o->is_object() ? o->last_string(key).value_or("") : "";
  };
  if (head.type == "response.created") head.response_id = member_string("response", "id");
  if (head.type == "error") head.error_event_id = member_string("error", "event_id");
  return head;
}

}  // namespace

bool EventRelay::admit_to_upstream(const std::string& text) {
  // Cheap test first: most events are audio appends.
  if (!gate_ || !may_be_create(text)) return true;
  auto head = event_head(text);
  if (!head || !head->create) return true;
  drop_unstarted_reservations();
  std::string why;
  std::optional<usage::Reservation> reservation = gate_(gate_key_, gate_model_, &why);
  if (!reservation) {
    blocked_++;
    // SPEC "Errors agents act on": the budget ends what this key may start.
    transport_->send_error_to_client(
        make_quota_error_event(why + ": response.create not relayed", head->event_id));
    return false;
  }
  if (!*reservation) return true;  // the key has no budget: nothing to hold
  reservations_.push_back(
      {std::move(*reservation), head->event_id, std::string(), g_get_monotonic_time()});
  return true;
}

void EventRelay::not_relayed_upstream(const std::string& text) {
  if (reservations_.empty() || !may_be_create(text)) return;
  auto head = event_head(text);
  if (!head || !head->create) return;
  // The newest unstarted reservation is this event's (admitted just before, same main-loop step).
  for (auto it = reservations_.rbegin(); it != reservations_.rend(); ++it)
    if (it->response_id.empty() && it->event_id == head->event_id) {
      reservations_.erase(std::next(it).base());
      return;
    }
}

void EventRelay::note_from_upstream(const std::string& text) {
  if (response_content_ && text.find("\"response.done\"") != std::string::npos)
    report_response_content(text);
  if (transcript_) transcript_->on_upstream_event(text);
  if (reservations_.empty()) return;
  if (text.find("response.created") == std::string::npos &&
      text.find("\"error\"") == std::string::npos)
    return;
  auto head = event_head(text);
  if (!head) return;
  if (head->type == "response.created") {
    for (auto& r : reservations_)
      if (r.response_id.empty()) {
        r.response_id = head->response_id.empty() ? "?" : head->response_id;
        return;
      }
    return;
  }
  if (head->type == "error" && !head->error_event_id.empty()) {
    // The upstream refused that request: no response, nothing to spend.
    auto it = std::find_if(reservations_.begin(), reservations_.end(), [&](const auto& r) {
      return r.response_id.empty() && r.event_id == head->error_event_id;
    });
    if (it != reservations_.end()) reservations_.erase(it);
  }
}

void EventRelay::report_response_content(const std::string& text) {
  // response.output[].content[]: an audio part's transcript, a text part's text.
  auto root = json::parse(text);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root.get())) return;
  JsonObject* event = json_node_get_object(root.get());
  if (json::get_string(event, "type") != "response.done") return;
  JsonObject* response = json::get_object(event, "response");
  if (!response) return;
  std::string joined;
  JsonNode* output = json_object_get_member(response, "output");
  if (output && JSON_NODE_HOLDS_ARRAY(output)) {
    JsonArray* items = json_node_get_array(output);
    for (guint i = 0; i < json_array_get_length(items); i++) {
      JsonNode* item = json_array_get_element(items, i);
      if (!JSON_NODE_HOLDS_OBJECT(item)) continue;
      JsonNode* content = json_object_get_member(json_node_get_object(item), "content");
      if (!content || !JSON_NODE_HOLDS_ARRAY(content)) continue;
      JsonArray* parts = json_node_get_array(content);
      for (guint j = 0; j < json_array_get_length(parts); j++) {
        JsonNode* part = json_array_get_element(parts, j);
        if (!JSON_NODE_HOLDS_OBJECT(part)) continue;
        JsonObject* p = json_node_get_object(part);
        auto piece = json::get_string(p, "transcript");
        if (!piece) piece = json::get_string(p, "text");
        if (!piece || piece->empty()) continue;
        if (!joined.empty()) joined += "\n";
        joined += *piece;
      }
    }
  }
  if (joined.empty()) return;
  response_content_(json::get_string(response, "id").value_or(""), std::move(joined));
}

void EventRelay::release_reservation_of(const usage::UsageRecord& record) {
  if (record.kind != "response" || reservations_.empty()) return;
  auto it = std::find_if(reservations_.begin(), reservations_.end(), [&](const auto& r) {
    return !record.response_id.empty() && r.response_id == record.response_id;
  });
  // A response.done without an id (or whose response.created never came) settles the oldest.
  if (it == reservations_.end() &&
      (record.response_id.empty() || reservations_.front().response_id.empty() ||
       reservations_.front().response_id == "?"))
    it = reservations_.begin();
  if (it != reservations_.end()) reservations_.erase(it);
}

void EventRelay::drop_unstarted_reservations() {
  // A request that no response.created answered in this long got no response (an upstream error
  // without an event_id, a dropped event): its reservation is not held for ever.
  const gint64 now = g_get_monotonic_time();
  std::erase_if(reservations_, [&](const OpenReservation& r) {
    return r.response_id.empty() && now - r.created_us > usage::ReservationBook::kUnstartedTtlUs;
  });
}

void EventRelay::on_decision(const PolicyDecision& d) {
  if (d.action == "block") {
    blocked_++;
    transport_->send_error_to_client(
        make_error_event(d.error_type(), d.error_code(), d.message, d.event_id));
  } else {
    filtered_++;
  }
  if (observer_) observer_->OnRelayDecision(d);
  if (d.end_call) transport_->OnRelayPolicyEnd("policy: " + d.message);
}

void EventRelay::on_turn(usage::UsageRecord record, const TurnIds& ids) {
  record.call_id = ids.call_id;
  record.transport = ids.transport;
  record.key_name = ids.key_name;
  record.model = ids.model;
  record.worker = ids.worker_name;
  if (record.usage_clamped) {
    // The id is the worker's text: escaped, so it cannot forge log lines.
    UniqueStr turn_id(g_strescape(
        (record.kind == "response" ? record.response_id : record.item_id).c_str(), nullptr));
    g_warning(
        "[%s] invalid usage from worker %s: %s %s reported a token count over %lld; counted "
        "at that cap (input %lld, output %lld, total %lld)",
        ids.call_id.c_str(), ids.worker_name.c_str(), record.kind.c_str(), turn_id.get(),
        static_cast<long long>(usage::kMaxTurnTokens), static_cast<long long>(record.input_tokens),
        static_cast<long long>(record.output_tokens), static_cast<long long>(record.total_tokens));
  }
  // The one place a turn is priced: the record leaves with its cost (null without a price table
  // or when nothing in it can price a component of the turn), and the owner records it as is.
  record.cost_usd = usage::price_turn(record, pricing_ ? &*pricing_ : nullptr);
  // Settled at the moment the turn is counted: the observer records it in OnRelayTurn below.
  release_reservation_of(record);
  turns_++;
  usage_total_.add_tokens(record);
  recent_turn_costs_.emplace_back(record.kind == "response" ? record.response_id : record.item_id,
                                  record.cost_usd);
  if (recent_turn_costs_.size() > kRecentTurnCosts) recent_turn_costs_.pop_front();
  if (observer_) observer_->OnRelayTurn(record);
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
  reservations_.clear();  // each handle releases its reservation
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
