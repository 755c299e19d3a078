// SPDX-License-Identifier: MIT
// Turn metering logic. See usage.h.
#include "usage.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "policy.h"
#include "usage/saturating.h"

namespace rtgw::rtevents {
namespace {

using json::Value;

const Value* object_member(const Value* obj, std::string_view key) {
  if (!obj || !obj->is_object()) return nullptr;
  const Value* v = obj->last(key);
  return v && v->is_object() ? v : nullptr;
}

std::string string_member(const Value* obj, std::string_view key) {
  if (!obj || !obj->is_object()) return {};
  return obj->last_string(key).value_or("");
}

double ms_between(std::int64_t from_us, std::int64_t to_us) {
  return static_cast<double>(std::max<std::int64_t>(0, to_us - from_us)) / 1000.0;
}

}  // namespace

bool is_output_delta(std::string_view type) {
  constexpr std::string_view kPrefix = "response.";
  constexpr std::string_view kSuffix = "delta";
  return type.size() > kPrefix.size() + kSuffix.size() &&
         type.substr(0, kPrefix.size()) == kPrefix &&
         type.substr(type.size() - kSuffix.size()) == kSuffix;
}

// `usage.seconds`: a finite positive JSON number, else 0.
double seconds_member(const Value* usage) {
  const Value* seconds = usage ? usage->last("seconds") : nullptr;
  if (!seconds || seconds->type != json::Type::kNumber) return 0;
  const std::string text(seconds->raw);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end && *end == '\0' && std::isfinite(v) && v > 0 ? v : 0;
}

Usage extract_usage(const Value* holder) {
  Usage u;
  const Value* usage = object_member(holder, "usage");
  if (!usage) return u;
  u.present = true;
  if (usage->last_string("type").value_or("") == "duration") {
    u.seconds = seconds_member(usage);
    return u;
  }
  // Token-billed: every row of the field table.
  static_cast<TokenCounts&>(u) = read_token_counts(usage, &u.clamped);
  return u;
}

// ----- UsageLink -------------------------------------------------------------------------------

void UsageLink::push_request(PendingRequest r) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(r));
  while (queue_.size() > kMaxPending) queue_.pop_front();
}

std::optional<PendingRequest> UsageLink::pop_request(std::int64_t now_us) {
  std::lock_guard lock(mu_);
  while (!queue_.empty() && now_us - queue_.front().time_us > kStaleRequestUs) queue_.pop_front();
  if (queue_.empty()) return std::nullopt;
  PendingRequest r = std::move(queue_.front());
  queue_.pop_front();
  return r;
}

void UsageLink::forget_request(std::string_view event_id) {
  if (event_id.empty()) return;
  std::lock_guard lock(mu_);
  const auto it = std::find_if(queue_.begin(), queue_.end(),
                               [&](const PendingRequest& r) { return r.event_id == event_id; });
  if (it != queue_.end()) queue_.erase(it);
}

void UsageLink::set_session_tier(std::string tier) {
  std::lock_guard lock(mu_);
  session_tier_ = std::move(tier);
}

std::string UsageLink::session_tier() const {
  std::lock_guard lock(mu_);
  return session_tier_;
}

std::size_t UsageLink::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void UsageLink::clear() {
  std::lock_guard lock(mu_);
  queue_.clear();
  session_tier_.clear();
}

// ----- client direction ------------------------------------------------------------------------

void note_client_event(const Value& root, std::int64_t now_us, UsageLink& link) {
  if (!root.is_object()) return;
  const std::string type = root.last_string("type").value_or("");
  if (type == "session.update") {
    const Value* session = object_member(&root, "session");
    const Value* tier = session ? session->last("service_tier") : nullptr;
    if (tier && tier->is_string()) {
      link.set_session_tier(normalize_tier(*tier->as_string()));
    } else if (tier && tier->type == json::Type::kNull) {
      link.set_session_tier("");
    }
  } else if (type == "response.create") {
    PendingRequest r;
    r.time_us = now_us;
    r.event_id = root.last_string("event_id").value_or("");
    const Value* response = object_member(&root, "response");
    std::optional<std::string> tier;
    if (response) tier = response->last_string("service_tier");
    if (!tier) tier = root.last_string("service_tier");
    r.tier = tier ? normalize_tier(*tier) : link.session_tier();
    link.push_request(std::move(r));
  }
}

// ----- upstream direction ----------------------------------------------------------------------

TurnTracker::Turn& TurnTracker::find_or_open(const std::string& response_id, bool latest_if_no_id,
                                             std::int64_t now_us, UsageLink* link) {
  if (response_id.empty()) {
    if (latest_if_no_id && !turns_.empty()) return turns_.back();
  } else {
    for (auto& t : turns_) {
      if (t.response_id == response_id) return t;
    }
  }
  Turn t;
  t.response_id = response_id;
  t.start_us = now_us;
  std::optional<PendingRequest> req = link ? link->pop_request(now_us) : std::nullopt;
  if (req) {
    t.start_us = req->time_us;
    t.tier = std::move(req->tier);
  } else if (link) {
    t.tier = link->session_tier();
  }
  if (turns_.size() >= kMaxOpenTurns) turns_.erase(turns_.begin());  // never finished
  turns_.push_back(std::move(t));
  return turns_.back();
}

std::optional<TurnRecord> TurnTracker::on_upstream_event(const Value& root, std::int64_t now_us,
                                                         UsageLink* link) {
  if (!root.is_object()) return std::nullopt;
  const std::string type = root.last_string("type").value_or("");
  if (type == "response.created") {
    find_or_open(string_member(object_member(&root, "response"), "id"), false, now_us, link);
    return std::nullopt;
  }
  if (is_output_delta(type)) {
    Turn& t = find_or_open(root.last_string("response_id").value_or(""), true, now_us, link);
    if (t.first_delta_us < 0) t.first_delta_us = now_us;
    return std::nullopt;
  }
  if (type == "error") {
    if (link) link->forget_request(string_member(object_member(&root, "error"), "event_id"));
    return std::nullopt;
  }
  if (type == "conversation.item.input_audio_transcription.completed") {
    TurnRecord rec;
    rec.kind = TurnRecord::Kind::kTranscription;
    rec.usage = extract_usage(&root);
    if (!rec.usage.present) return std::nullopt;  // nothing to meter
    rec.item_id = root.last_string("item_id").value_or("");
    rec.status = "completed";
    return rec;
  }
  if (type.rfind("session.", 0) == 0) {
    // A translation session's continuous usage (see usage.h).
    const Value* usage = object_member(&root, "usage");
    if (!usage) return std::nullopt;
    TurnRecord rec;
    rec.kind = TurnRecord::Kind::kTranslation;
    rec.usage = extract_usage(&root);
    rec.usage.seconds = seconds_member(usage);
    rec.item_id = root.last_string("event_id").value_or("");
    rec.status = "completed";
    return rec;
  }
  if (type != "response.done") return std::nullopt;

  const Value* response = object_member(&root, "response");
  const std::string id = string_member(response, "id");
  Turn& t = find_or_open(id, true, now_us, link);
  TurnRecord rec;
  rec.response_id = id.empty() ? t.response_id : id;
  rec.status = string_member(response, "status");
  rec.usage = extract_usage(response);
  rec.service_tier = t.tier;
  rec.first_token_latency_ms =
      t.first_delta_us >= 0 ? ms_between(t.start_us, t.first_delta_us) : -1;
  rec.turn_duration_ms = ms_between(t.start_us, now_us);
  turns_.erase(turns_.begin() + (&t - turns_.data()));
  return rec;
}

}  // namespace rtgw::rtevents
