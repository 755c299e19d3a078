// SPDX-License-Identifier: MIT
// The event policy: parsing the SPEC's policy object and deciding per event. See policy.h.
#include "policy.h"

#include <algorithm>
#include <set>
#include <utility>

#include "json.h"
#include "json_strict.h"

namespace rtgw::rtevents {
namespace {

using json::Type;
using json::Value;

// Refused events larger than this are not parsed just to report their type and event_id.
constexpr std::size_t kMaxParseForReport = 256 << 10;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out.push_back('"');
  return out;
}

bool any_glob(const std::vector<std::string>& patterns, std::string_view text) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return glob_match(p, text); });
}

int severity(Action a) { return static_cast<int>(a); }

// ----- policy parsing --------------------------------------------------------------------------

std::optional<Action> parse_action(const Value& v) {
  const auto s = v.as_string();
  if (!s) return std::nullopt;
  if (*s == "pass") return Action::kPass;
  if (*s == "filter") return Action::kFilter;
  if (*s == "block") return Action::kBlock;
  return std::nullopt;
}

// Reads an array of strings; nullopt when `v` is not one.
std::optional<std::vector<std::string>> parse_string_list(const Value& v) {
  if (v.type != Type::kArray) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& item : v.items) {
    auto s = item.as_string();
    if (!s) return std::nullopt;
    out.push_back(std::move(*s));
  }
  return out;
}

// A rule's `models` and `keys` globs (each optional; absent leaves the default, every one).
bool parse_scope(const Value& v, const std::string& path, std::vector<std::string>* models,
                 std::vector<std::string>* keys, std::string* error) {
  for (const char* list : {"models", "keys"}) {
    if (const Value* l = v.last(list)) {
      auto strings = parse_string_list(*l);
      if (!strings) {
        *error = path + "." + list + ": expected an array of strings";
        return false;
      }
      *(std::string_view(list) == "models" ? models : keys) = std::move(*strings);
    }
  }
  return true;
}

// A rule's optional `end_call` boolean.
bool parse_end_call(const Value& v, const std::string& path, bool* end_call, std::string* error) {
  if (const Value* e = v.last("end_call")) {
    if (e->type != Type::kBool) {
      *error = path + ".end_call: expected a boolean";
      return false;
    }
    *end_call = e->boolean;
  }
  return true;
}

// Rejects duplicate keys and keys outside `allowed` (a typo in a rule would widen it silently).
bool check_keys(const Value& obj, std::initializer_list<std::string_view> allowed,
                const std::string& path, std::string* error) {
  std::set<std::string> seen;
  for (const auto& m : obj.members) {
    if (!seen.insert(m.key).second) {
      *error = path + ": duplicate key " + quoted(m.key);
      return false;
    }
    if (std::find(allowed.begin(), allowed.end(), m.key) == allowed.end()) {
      *error = path + ": unknown key " + quoted(m.key);
      return false;
    }
  }
  return true;
}

bool parse_tier_rule(const Value& v, const std::string& path, TierRule* rule, std::string* error) {
  if (!v.is_object()) {
    *error = path + ": expected an object";
    return false;
  }
  if (!check_keys(v, {"tier", "action", "models", "keys", "fallback", "end_call"}, path, error)) {
    return false;
  }
  const Value* tier = v.last("tier");
  if (!tier || !tier->is_string()) {
    *error = path + ".tier: expected a string";
    return false;
  }
  const std::string t = *tier->as_string();
  rule->tier = t == "*" ? t : normalize_tier(t);
  const Value* action = v.last("action");
  const auto a = action ? parse_action(*action) : std::nullopt;
  if (!a) {
    *error = path + ".action: expected \"pass\", \"filter\" or \"block\"";
    return false;
  }
  rule->action = *a;
  if (!parse_scope(v, path, &rule->models, &rule->keys, error)) return false;
  if (const Value* f = v.last("fallback")) {
    rule->fallback = parse_action(*f);
    if (!rule->fallback) {
      *error = path + ".fallback: expected \"pass\", \"filter\" or \"block\"";
      return false;
    }
  }
  if (!parse_end_call(v, path, &rule->end_call, error)) return false;
  return true;
}

bool parse_deny_rule(const Value& v, const std::string& path, DenyRule* rule, std::string* error) {
  if (!v.is_object()) {
    *error = path + ": expected an object";
    return false;
  }
  if (!check_keys(v, {"type", "keys", "end_call"}, path, error)) return false;
  const Value* type = v.last("type");
  if (!type || !type->is_string()) {
    *error = path + ".type: expected a string";
    return false;
  }
  rule->type = *type->as_string();
  if (const Value* l = v.last("keys")) {
    auto strings = parse_string_list(*l);
    if (!strings) {
      *error = path + ".keys: expected an array of strings";
      return false;
    }
    rule->keys = std::move(*strings);
  }
  if (!parse_end_call(v, path, &rule->end_call, error)) return false;
  return true;
}

bool parse_effort_rule(const Value& v, const std::string& path, EffortRule* rule,
                       std::string* error) {
  if (!v.is_object()) {
    *error = path + ": expected an object";
    return false;
  }
  if (!check_keys(v, {"max", "action", "models", "keys", "end_call"}, path, error)) return false;
  const Value* max = v.last("max");
  const auto max_text = max ? max->as_string() : std::nullopt;
  if (!max_text || !effort_rank(*max_text)) {
    *error = path + ".max: expected \"minimal\", \"low\", \"medium\", \"high\" or \"xhigh\"";
    return false;
  }
  rule->max = normalize_tier(*max_text);  // trim + lower-case; "fast" is no effort
  const Value* action = v.last("action");
  const auto a = action ? action->as_string() : std::nullopt;
  if (!a || (*a != "lower" && *a != "block")) {
    *error = path + ".action: expected \"lower\" or \"block\"";
    return false;
  }
  rule->action = *a == "lower" ? Action::kLower : Action::kBlock;
  if (!parse_scope(v, path, &rule->models, &rule->keys, error)) return false;
  if (!parse_end_call(v, path, &rule->end_call, error)) return false;
  return true;
}

// ----- evaluation ------------------------------------------------------------------------------

struct TierVerdict {
  Action action = Action::kPass;
  int rule = -1;  // index into tier_rules, -1 = no rule applied
  bool fallback = false;
};

TierVerdict evaluate_tier(const Policy& policy, std::string_view tier, std::string_view model,
                          std::string_view key) {
  for (std::size_t i = 0; i < policy.tier_rules.size(); ++i) {
    const TierRule& r = policy.tier_rules[i];
    if (!glob_match(r.tier, tier) || !any_glob(r.keys, key)) continue;
    if (any_glob(r.models, model)) return {r.action, static_cast<int>(i), false};
    if (r.fallback) return {*r.fallback, static_cast<int>(i), true};
  }
  return {};
}

// One string `service_tier` member of the event, with its verdict.
struct TierSite {
  const Value* container;
  std::size_t member;
  std::string tier;  // normalized
  std::string model;
  TierVerdict verdict;
};

void collect_sites(const Policy& policy, const EventContext& ctx, const Value& container,
                   const std::vector<std::string>& models, std::vector<TierSite>* sites) {
  for (std::size_t k = 0; k < container.members.size(); ++k) {
    const auto& m = container.members[k];
    if (m.key != "service_tier" || !m.value.is_string()) continue;  // non-string tiers pass
    TierSite site{&container, k, normalize_tier(*m.value.as_string()), {}, {}};
    bool first = true;
    // Several candidate models (duplicate `model` keys): the strictest verdict counts.
    for (const auto& model : models) {
      const TierVerdict v = evaluate_tier(policy, site.tier, model, ctx.key_name);
      if (first || severity(v.action) > severity(site.verdict.action)) {
        site.verdict = v;
        site.model = model;
        first = false;
      }
    }
    sites->push_back(std::move(site));
  }
}

std::vector<std::string> models_or_session(std::vector<std::string> models,
                                           const EventContext& ctx) {
  if (models.empty()) models.emplace_back(ctx.session_model);
  return models;
}

std::string tier_message(const TierSite& s) {
  std::string msg = "service_tier " + quoted(s.tier);
  msg += s.verdict.action == Action::kBlock ? " is not allowed" : " was removed";
  if (!s.model.empty()) msg += " for model " + quoted(s.model);
  msg += " (policy rule service_tier[" + std::to_string(s.verdict.rule) + "]";
  if (s.verdict.fallback) msg += ", fallback";
  msg += ")";
  return msg;
}

// One string `reasoning.effort` value above the cap of the rule that applies to it.
struct EffortSite {
  const Value* value;
  std::string effort;  // trimmed, lower-cased
  std::string model;
  std::size_t rule;
};

// The first rule that applies to key `key` and `model`, or -1.
int effort_rule_for(const Policy& policy, std::string_view model, std::string_view key) {
  for (std::size_t i = 0; i < policy.effort_rules.size(); ++i) {
    const EffortRule& r = policy.effort_rules[i];
    if (any_glob(r.keys, key) && any_glob(r.models, model)) return static_cast<int>(i);
  }
  return -1;
}

// The efforts of `container` (a session or response object) that a rule caps, each with its
// rule. With several candidate models (duplicate `model` keys) the strictest rule counts: a block
// over a lower, else the lowest cap.
void collect_efforts(const Policy& policy, const EventContext& ctx, const Value& container,
                     const std::vector<std::string>& models, std::vector<EffortSite>* sites) {
  for (const Value* reasoning : container.all("reasoning")) {
    if (!reasoning->is_object()) continue;
    for (const auto& m : reasoning->members) {
      if (m.key != "effort" || !m.value.is_string()) continue;
      const std::string effort = normalize_tier(*m.value.as_string());
      const auto rank = effort_rank(effort);
      if (!rank) continue;  // not an effort: the upstream answers it
      std::optional<EffortSite> worst;
      for (const auto& model : models) {
        const int i = effort_rule_for(policy, model, ctx.key_name);
        if (i < 0) continue;
        const EffortRule& r = policy.effort_rules[static_cast<std::size_t>(i)];
        if (*rank <= *effort_rank(r.max)) continue;
        EffortSite site{&m.value, effort, model, static_cast<std::size_t>(i)};
        if (!worst) {
          worst = site;
          continue;
        }
        const EffortRule& w = policy.effort_rules[worst->rule];
        if ((r.action == Action::kBlock && w.action != Action::kBlock) ||
            (r.action == w.action && *effort_rank(r.max) < *effort_rank(w.max)))
          worst = site;
      }
      if (worst) sites->push_back(std::move(*worst));
    }
  }
}

std::string effort_message(const EffortSite& s, const EffortRule& r) {
  std::string msg = "reasoning.effort " + quoted(s.effort);
  msg += r.action == Action::kBlock ? " is not allowed" : " was lowered to " + quoted(r.max);
  if (!s.model.empty()) msg += " for model " + quoted(s.model);
  msg +=
      " (policy rule reasoning_effort[" + std::to_string(s.rule) + "]: max " + quoted(r.max) + ")";
  return msg;
}

// A replacement of the bytes [from, to) of an event.
struct Splice {
  std::size_t from = 0;
  std::size_t to = 0;
  std::string with;
};

// `text` with the given (non-overlapping) ranges replaced.
std::string splice(std::string_view text, std::vector<Splice> edits) {
  std::sort(edits.begin(), edits.end(),
            [](const Splice& a, const Splice& b) { return a.from < b.from; });
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (const auto& e : edits) {
    if (e.from < pos) continue;  // overlapping: never produced (cuts end before kept values)
    out.append(text.substr(pos, e.from - pos));
    out.append(e.with);
    pos = e.to;
  }
  out.append(text.substr(std::min(pos, text.size())));
  return out;
}

// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
std::string json_string(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

const char* action_name(Action a) {
  switch (a) {
    case Action::kPass:
      return "pass";
    case Action::kFilter:
      return "filter";
    case Action::kBlock:
      return "block";
    case Action::kLower:
      return "lower";
  }
  return "pass";
}

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::kServiceTier:
      return "service_tier";
    case Reason::kDeniedEvent:
      return "denied_event";
    case Reason::kTooLarge:
      return "too_large";
    case Reason::kBudget:
      return "budget";
    case Reason::kInvalidJson:
      return "invalid_json";
    case Reason::kModelNotAllowed:
      return "model_not_allowed";
    case Reason::kReasoningEffort:
      return "reasoning_effort";
  }
  return "service_tier";
}

std::vector<std::string> transcription_models(const Value& session) {
  std::vector<std::string> out;
  if (!session.is_object()) return out;
  auto models_of = [&](const Value& transcription) {
    if (!transcription.is_object()) return;
    for (const auto& m : transcription.all_strings("model")) out.push_back(m);
  };
  for (const Value* audio : session.all("audio")) {
    if (!audio->is_object()) continue;
    for (const Value* input : audio->all("input")) {
      if (!input->is_object()) continue;
      for (const Value* t : input->all("transcription")) models_of(*t);
    }
  }
  for (const Value* t : session.all("input_audio_transcription")) models_of(*t);
  return out;
}

std::string normalize_tier(std::string_view tier) {
  while (!tier.empty() && is_space(tier.front())) tier.remove_prefix(1);
  while (!tier.empty() && is_space(tier.back())) tier.remove_suffix(1);
  std::string out(tier);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (out == "fast") out = "priority";
  return out;
}

std::optional<int> effort_rank(std::string_view effort) {
  static constexpr std::string_view kEfforts[] = {"minimal", "low", "medium", "high", "xhigh"};
  const std::string e = normalize_tier(effort);
  for (int i = 0; i < 5; ++i)
    if (e == kEfforts[i]) return i;
  return std::nullopt;
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative wildcard match with single backtrack point: O(|pattern| * |text|) worst case.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::shared_ptr<const Policy> Policy::parse(std::string_view text, std::string* error) {
  auto policy = std::make_shared<Policy>();
  if (std::all_of(text.begin(), text.end(), is_space)) return policy;

  const json::ParseResult pr = json::parse(text);
  if (!pr.root) {
    *error = "policy: invalid JSON: " + pr.error;
    return nullptr;
  }
  if (pr.trailing) {
    *error = "policy: unexpected characters after the JSON object";
    return nullptr;
  }
  const Value& root = *pr.root;
  if (!root.is_object()) {
    *error = "policy: expected an object";
    return nullptr;
  }
  // Unknown top-level keys are tolerated (the server's config may carry more policy sections);
  // duplicates are not.
  std::set<std::string> seen;
  for (const auto& m : root.members) {
    if (!seen.insert(m.key).second) {
      *error = "policy: duplicate key " + quoted(m.key);
      return nullptr;
    }
  }
  policy->max_event_bytes = kDefaultMaxEventBytes;

  if (const Value* rules = root.last("service_tier")) {
    if (rules->type != Type::kArray) {
      *error = "policy.service_tier: expected an array";
      return nullptr;
    }
    for (std::size_t i = 0; i < rules->items.size(); ++i) {
      TierRule rule;
      const std::string path = "policy.service_tier[" + std::to_string(i) + "]";
      if (!parse_tier_rule(rules->items[i], path, &rule, error)) return nullptr;
      policy->tier_rules.push_back(std::move(rule));
    }
  }
  if (const Value* rules = root.last("deny_client_events")) {
    if (rules->type != Type::kArray) {
      *error = "policy.deny_client_events: expected an array";
      return nullptr;
    }
    for (std::size_t i = 0; i < rules->items.size(); ++i) {
      DenyRule rule;
      const std::string path = "policy.deny_client_events[" + std::to_string(i) + "]";
      if (!parse_deny_rule(rules->items[i], path, &rule, error)) return nullptr;
      policy->deny_rules.push_back(std::move(rule));
    }
  }
  if (const Value* rules = root.last("reasoning_effort")) {
    if (rules->type != Type::kArray) {
      *error = "policy.reasoning_effort: expected an array";
      return nullptr;
    }
    for (std::size_t i = 0; i < rules->items.size(); ++i) {
      EffortRule rule;
      const std::string path = "policy.reasoning_effort[" + std::to_string(i) + "]";
      if (!parse_effort_rule(rules->items[i], path, &rule, error)) return nullptr;
      policy->effort_rules.push_back(std::move(rule));
    }
  }
  if (const Value* max = root.last("max_event_bytes")) {
    const auto n = max->as_int();
    if (!n || *n < 0) {
      *error = "policy.max_event_bytes: expected a non-negative integer (0 = no limit)";
      return nullptr;
    }
    policy->max_event_bytes = *n;
  }
  return policy;
}

FilterOutcome apply_policy(const Policy& policy, const EventContext& ctx, std::string_view event) {
  FilterOutcome out;

  // 1. Size, before anything else is read.
  if (policy.max_event_bytes > 0 &&
      event.size() > static_cast<std::size_t>(policy.max_event_bytes)) {
    Decision d;
    d.action = Action::kBlock;
    d.reason = Reason::kTooLarge;
    d.rule = "max_event_bytes";
    d.model = std::string(ctx.session_model);
    if (event.size() <= kMaxParseForReport && strict_json::check(event).ok) {
      const json::ParseResult pr = json::parse(event);
      if (pr.root && pr.root->is_object()) {
        d.event_type = pr.root->last_string("type").value_or("");
        d.event_id = pr.root->last_string("event_id").value_or("");
      }
    }
    d.message = "event of " + std::to_string(event.size()) + " bytes exceeds the limit of " +
                std::to_string(policy.max_event_bytes) + " bytes";
    out.kind = FilterOutcome::Kind::kDropped;
    out.decision = std::move(d);
    return out;
  }

  // 2. Strict JSON only: what json-glib or a lenient upstream parser would read differently
  // (comments, single quotes, ...) never goes on, and the lenient reader below sees only JSON.
  if (const auto strict = strict_json::check(event); !strict.ok) {
    Decision d;
    d.action = Action::kBlock;
    d.reason = Reason::kInvalidJson;
    d.rule = "strict_json";
    d.model = std::string(ctx.session_model);
    d.message = "event of " + std::to_string(event.size()) +
                " bytes is not valid JSON: " + strict.message();
    out.kind = FilterOutcome::Kind::kDropped;
    out.decision = std::move(d);
    return out;
  }

  // 3. Anything that is not a JSON object passes untouched (the upstream answers it).
  const json::ParseResult pr = json::parse(event);
  if (!pr.root || !pr.root->is_object()) return out;
  const Value& root = *pr.root;

  // With duplicate `type` keys every value is considered (first-wins and last-wins readers).
  const std::vector<std::string> types = root.all_strings("type");
  const auto has_type = [&](std::string_view t) {
    return std::find(types.begin(), types.end(), t) != types.end();
  };
  Decision base;
  base.event_type = root.last_string("type").value_or("");
  base.event_id = root.last_string("event_id").value_or("");
  base.model = std::string(ctx.session_model);

  const auto drop = [&](Decision d) {
    d.action = Action::kBlock;
    out.kind = FilterOutcome::Kind::kDropped;
    out.decision = std::move(d);
    return out;
  };

  // 4. Denied event types.
  for (std::size_t i = 0; i < policy.deny_rules.size(); ++i) {
    const DenyRule& r = policy.deny_rules[i];
    if (!any_glob(r.keys, ctx.key_name)) continue;
    for (const auto& t : types) {
      if (!glob_match(r.type, t)) continue;
      Decision d = base;
      d.reason = Reason::kDeniedEvent;
      d.rule = "deny_client_events[" + std::to_string(i) + "]";
      d.event_type = t;
      d.end_call = r.end_call;
      d.message = "client event " + quoted(t) + " is not allowed (policy rule " + d.rule + ")";
      return drop(std::move(d));
    }
  }

  // 4b. The key's model allow-list covers a session's transcription model too: a key must not
  // reach a model it may not use through `audio.input.transcription.model`.
  if (ctx.allowed_models && has_type("session.update")) {
    for (const Value* s : root.all("session")) {
      if (!s->is_object()) continue;
      for (const auto& m : transcription_models(*s)) {
        if (any_glob(*ctx.allowed_models, m)) continue;
        Decision d = base;
        d.reason = Reason::kModelNotAllowed;
        d.rule = "models";
        d.event_type = "session.update";
        d.model = m;
        d.message = "this key may not use the transcription model " + quoted(m);
        return drop(std::move(d));
      }
    }
  }

  // 5. Budget.
  if (ctx.budget_exceeded && has_type("response.create")) {
    Decision d = base;
    d.reason = Reason::kBudget;
    d.rule = "budget";
    d.event_type = "response.create";
    d.message = "budget exceeded (budget_tokens or budget_usd): response.create is not allowed";
    return drop(std::move(d));
  }

  // 6. reasoning.effort: a block refuses the event here; lowered values are edits below.
  std::vector<EffortSite> efforts;
  const std::vector<const Value*> sessions = root.all("session");
  if (!policy.effort_rules.empty()) {
    if (has_type("response.create")) {
      for (const Value* r : root.all("response")) {
        if (!r->is_object()) continue;
        collect_efforts(policy, ctx, *r, models_or_session(r->all_strings("model"), ctx), &efforts);
      }
    }
    if (has_type("session.update")) {
      for (const Value* s : sessions) {
        if (!s->is_object()) continue;
        collect_efforts(policy, ctx, *s, models_or_session(s->all_strings("model"), ctx), &efforts);
      }
    }
  }
  const auto effort_decision = [&](const EffortSite& site) {
    const EffortRule& r = policy.effort_rules[site.rule];
    Decision d = base;
    d.action = r.action;
    d.reason = Reason::kReasoningEffort;
    d.rule = "reasoning_effort[" + std::to_string(site.rule) + "]";
    d.model = site.model;
    d.end_call = r.action == Action::kBlock && r.end_call;
    d.message = effort_message(site, r);
    return d;
  };
  for (const auto& site : efforts) {
    if (policy.effort_rules[site.rule].action == Action::kBlock) return drop(effort_decision(site));
  }

  // 7. service_tier.
  std::vector<TierSite> sites;
  if (has_type("response.create")) {
    std::vector<std::string> response_models;
    for (const Value* r : root.all("response")) {
      if (!r->is_object()) continue;
      const auto own = r->all_strings("model");
      response_models.insert(response_models.end(), own.begin(), own.end());
      collect_sites(policy, ctx, *r, models_or_session(own, ctx), &sites);
    }
    collect_sites(policy, ctx, root, models_or_session(response_models, ctx), &sites);
  }
  if (has_type("session.update")) {
    for (const Value* s : sessions) {
      if (!s->is_object()) continue;
      collect_sites(policy, ctx, *s, models_or_session(s->all_strings("model"), ctx), &sites);
    }
  }

  const TierSite* decisive = nullptr;
  for (const auto& s : sites) {
    if (s.verdict.action == Action::kPass) continue;
    if (!decisive || severity(s.verdict.action) > severity(decisive->verdict.action)) decisive = &s;
  }

  // Every tier that goes through (a `pass` rule or no rule) goes in its normalized form: OpenAI
  // accepts only auto/default/flex/priority, so " FAST " must reach the worker as "priority".
  // Filtered tiers are cut out; everything else keeps its bytes.
  std::vector<Splice> edits;
  for (const auto& site : efforts) {
    const std::size_t at = json::offset_of(event, *site.value);
    edits.push_back(
        {at, at + site.value->raw.size(), json_string(policy.effort_rules[site.rule].max)});
  }
  if (!efforts.empty()) out.decision = effort_decision(efforts.front());
  if (decisive) {
    Decision d = base;
    d.action = decisive->verdict.action;
    d.reason = Reason::kServiceTier;
    d.rule = "service_tier[" + std::to_string(decisive->verdict.rule) + "]";
    d.tier = decisive->tier;
    d.model = decisive->model;
    d.message = tier_message(*decisive);
    if (d.action == Action::kBlock) {
      d.end_call = policy.tier_rules[static_cast<std::size_t>(decisive->verdict.rule)].end_call;
      return drop(std::move(d));
    }
    // Filter: cut every filtered tier member out of the original text.
    std::vector<const Value*> containers;
    for (const auto& s : sites) {
      if (std::find(containers.begin(), containers.end(), s.container) == containers.end()) {
        containers.push_back(s.container);
      }
    }
    for (const Value* c : containers) {
      std::vector<bool> remove(c->members.size(), false);
      for (const auto& s : sites) {
        if (s.container == c && s.verdict.action == Action::kFilter) remove[s.member] = true;
      }
      for (const auto& [from, to] : json::member_cuts(*c, [&](std::size_t i) { return remove[i]; }))
        edits.push_back({from, to, {}});
    }
    out.decision = std::move(d);
  }
  for (const auto& s : sites) {
    if (s.verdict.action != Action::kPass) continue;
    const Value& value = s.container->members[s.member].value;
    std::string normalized = json_string(s.tier);
    if (value.raw == normalized) continue;
    const std::size_t at = json::offset_of(event, value);
    edits.push_back({at, at + value.raw.size(), std::move(normalized)});
  }
  if (!edits.empty()) {
    out.kind = FilterOutcome::Kind::kModified;
    out.modified = splice(event, std::move(edits));
  }

  // 8. The session model follows a session.update that goes through.
  if (has_type("session.update")) {
    for (auto it = sessions.rbegin(); it != sessions.rend(); ++it) {
      if (!(*it)->is_object()) continue;
      if (auto m = (*it)->last_string("model")) {
        out.new_session_model = std::move(*m);
        break;
      }
    }
  }
  return out;
}

}  // namespace rtgw::rtevents
