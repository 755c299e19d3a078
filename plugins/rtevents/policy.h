// SPDX-License-Identifier: MIT
// The event policy of SPEC "Policy (event filter)", independent of GStreamer.
//
// `Policy::parse()` reads the SPEC's `policy` object once; `apply_policy()` decides what happens to
// one client→upstream event. `rteventfilter` is a thin element around these two.
//
// Semantics (SPEC "Policy"):
// - Events larger than `max_event_bytes` (default 65536 when the policy object omits it; 0 = no
//   limit; an empty policy string has no limit) are refused: rule "max_event_bytes".
// - Events that are not strict JSON (RFC 8259, json_strict.h: no comments, single quotes, NaN,
//   trailing commas, invalid UTF-8, nesting deeper than 64, ...) are refused: reason
//   "invalid_json", rule "strict_json", checked right after the size and before anything else
//   reads the event, so the lenient reader (json.h) only ever sees strict JSON here. This holds
//   for the pass-everything policy too.
// - Strict JSON events that are not an object pass untouched (the upstream answers them).
// - `deny_client_events[i]` = {type, keys, end_call}: blocks events whose `type` matches `type`
//   (glob) when the caller's key matches `keys` (glob list, default ["*"]).
// - budget exceeded (a context flag): every `response.create` is blocked, rule "budget".
// - model allow-list (a context list): a `session.update` whose session names a transcription
//   model (GA `audio.input.transcription.model`, beta `input_audio_transcription.model`) the
//   key may not use is blocked, rule "models", reason model_not_allowed.
// - `service_tier[i]` = {tier, action, models, keys, fallback, end_call}, evaluated for
//   `response.create` (`response.service_tier` and a top-level `service_tier`) and
//   `session.update` (`session.service_tier`). Tiers are normalized (trim, ASCII lower-case,
//   "fast" -> "priority"); rule tiers are normalized the same way. A rule applies when its tier is
//   the event's tier or "*" and the key matches `keys`; then `action` applies if the model matches
//   `models`, else `fallback` if the rule has one, else the next rule is tried. First applicable
//   rule wins; no rule = pass. `models`/`keys` default to ["*"]; "*" in a pattern matches any run
//   of characters. The model is the event's own (`response.model` / `session.model`), else the
//   session model. Non-string tiers are left alone.
// - `reasoning_effort[i]` = {max, action, models, keys, end_call}, evaluated for `session.update`
//   (`session.reasoning.effort`) and `response.create` (`response.reasoning.effort`). Efforts rank
//   minimal < low < medium < high < xhigh (read trimmed and ASCII lower-cased); a value outside
//   that list is left for the upstream to answer. The first rule whose `keys` and `models` match
//   (model as for service_tier) decides, and only an effort above its `max` is touched: `lower`
//   rewrites that value to `max` (every other byte kept; decision action "lower", the event goes
//   on), `block` refuses the event (reason "reasoning_effort", rule "reasoning_effort[N]"). No
//   matching rule: pass. Every copy of a duplicated `reasoning`/`effort` member is judged.
// - `filter` removes the tier member(s) and keeps every other byte of the event. A tier that goes
//   through (a `pass` rule, or no rule at all) is rewritten in its normalized form (" FAST " ->
//   "priority"): kModified without a decision when nothing else changed. Events with no tier, or
//   whose tiers are already normalized, are returned untouched (the caller forwards its original
//   buffer).
// - `end_call` is reported only with a `block` outcome (from a rule's `end_call`).
// - Duplicate members (e.g. two `service_tier` keys) are each evaluated; the strictest outcome wins
//   and `filter` removes every filtered copy, so first-wins and last-wins upstream parsers both see
//   an allowed event.
// - A `session.update` that is not blocked and carries a string `session.model` reports it as the
//   new session model (`FilterOutcome::new_session_model`).
//
// Thread-safety: a parsed Policy is immutable and may be shared across threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtgw::rtevents {

namespace json {
struct Value;
}

// kLower is reasoning_effort's own: the value is rewritten to the rule's cap.
enum class Action { kPass, kFilter, kBlock, kLower };
enum class Reason {
  kServiceTier,
  kDeniedEvent,
  kTooLarge,
  kBudget,
  kInvalidJson,
  kModelNotAllowed,
  kReasoningEffort
};

const char* action_name(Action a);  // "pass", "filter", "block", "lower"
// "service_tier", "denied_event", "too_large", "budget", "invalid_json", "model_not_allowed",
// "reasoning_effort"
const char* reason_name(Reason r);

// Trim ASCII whitespace, ASCII lower-case, "fast" -> "priority".
std::string normalize_tier(std::string_view tier);
// `*` matches any run of characters (including none); everything else matches itself.
bool glob_match(std::string_view pattern, std::string_view text);

struct TierRule {
  std::string tier;  // normalized, or a glob such as "*"
  Action action = Action::kPass;
  std::vector<std::string> models{"*"};
  std::vector<std::string> keys{"*"};
  std::optional<Action> fallback;
  bool end_call = false;
};

// The rank of a reasoning effort (trimmed, ASCII lower-cased): minimal 0, low 1, medium 2,
// high 3, xhigh 4; nullopt for any other value.
std::optional<int> effort_rank(std::string_view effort);

struct EffortRule {
  std::string max;                 // one of the five efforts
  Action action = Action::kLower;  // kLower or kBlock
  std::vector<std::string> models{"*"};
  std::vector<std::string> keys{"*"};
  bool end_call = false;
};

struct DenyRule {
  std::string type;  // glob
  std::vector<std::string> keys{"*"};
  bool end_call = false;
};

class Policy {
 public:
  static constexpr std::int64_t kDefaultMaxEventBytes = 65536;

  // Parses the SPEC's policy object. Empty or all-whitespace text gives the pass-everything policy.
  // On error returns nullptr and sets `*error` to "<json path>: <reason>".
  static std::shared_ptr<const Policy> parse(std::string_view json, std::string* error);

  std::vector<TierRule> tier_rules;
  std::vector<DenyRule> deny_rules;
  std::vector<EffortRule> effort_rules;
  std::int64_t max_event_bytes = 0;  // 0 = no limit
};

struct Decision {
  Action action = Action::kPass;
  Reason reason = Reason::kServiceTier;
  // "service_tier[0]", "deny_client_events[1]", "max_event_bytes", "budget", "strict_json",
  // "reasoning_effort[0]"
  std::string rule;
  std::string event_type;  // the event's `type` ("" when unknown)
  std::string event_id;    // the client's `event_id` ("" when absent)
  std::string tier;        // normalized tier the decision is about ("" when none)
  std::string model;       // model the rule was evaluated for ("" when none)
  bool end_call = false;
  std::string message;  // human-readable, for the error event sent to the client
};

struct EventContext {
  std::string_view key_name;       // the caller's gateway key name
  std::string_view session_model;  // the session's current model
  bool budget_exceeded = false;
  // The models the key may use (glob patterns, `models` of its config); null: any. A
  // session.update naming a transcription model outside it is blocked (reason
  // model_not_allowed, rule "models").
  const std::vector<std::string>* allowed_models = nullptr;
};

// The transcription models a session object names: `audio.input.transcription.model` (GA) and
// `input_audio_transcription.model` (beta), every copy of a duplicated member.
std::vector<std::string> transcription_models(const json::Value& session);

struct FilterOutcome {
  enum class Kind { kUntouched, kModified, kDropped };
  Kind kind = Kind::kUntouched;
  std::string modified;  // kModified: filtered fields cut, passed tiers normalized, efforts
                         // lowered
  std::optional<Decision> decision;  // set for kDropped, a filter and a lowered effort (a filter
                                     // wins); unset when a kModified event only had its tier
                                     // normalized
  std::optional<std::string> new_session_model;  // a non-blocked session.update's session.model
};

// Decides the fate of one client→upstream event. Never throws except std::bad_alloc.
FilterOutcome apply_policy(const Policy& policy, const EventContext& ctx, std::string_view event);

}  // namespace rtgw::rtevents
