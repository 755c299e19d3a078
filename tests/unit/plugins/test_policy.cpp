// SPDX-License-Identifier: MIT
// The policy engine behind rteventfilter, without GStreamer: normalization, globs, policy parsing
// and the parser-differential cases (duplicate keys, escapes, lenient JSON).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rtevents/policy.h"
#include "rtevents/rtevents.h"

namespace rtgw::rtevents {
namespace {

struct NormCase {
  const char* in;
  const char* out;
};

TEST(RtPolicy, NormalizationTable) {
  const NormCase cases[] = {
      {" Priority ", "priority"},
      {"FAST", "priority"},
      {"fast", "priority"},
      {"Fast\t", "priority"},
      {"priority", "priority"},
      {"\n PRIORITY\r\n", "priority"},
      {"auto", "auto"},
      {"AUTO", "auto"},
      {"default", "default"},
      {" Default", "default"},
      {"flex", "flex"},
      {"FLEX ", "flex"},
      {"scale", "scale"},
      {"", ""},
      {"   ", ""},
      {"faster", "faster"},
      {"f ast", "f ast"},
      {"fast\u00a0", "fast\u00a0"},
  };
  for (const auto& c : cases) EXPECT_EQ(normalize_tier(c.in), c.out) << "'" << c.in << "'";
}

TEST(RtPolicy, GlobMatch) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("gpt-realtime*", "gpt-realtime"));
  EXPECT_TRUE(glob_match("gpt-realtime*", "gpt-realtime-mini-2025"));
  EXPECT_FALSE(glob_match("gpt-realtime*", "gpt-4o-realtime"));
  EXPECT_TRUE(glob_match("*realtime*", "gpt-4o-realtime-preview"));
  EXPECT_TRUE(glob_match("team-*-prod", "team-a-prod"));
  EXPECT_FALSE(glob_match("team-*-prod", "team-a-dev"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("exact", "exactly"));
  EXPECT_FALSE(glob_match("", "x"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("model?", "model1"));  // only * is special
  EXPECT_TRUE(glob_match("model?", "model?"));
}

TEST(RtPolicy, ParsesTheSpecExample) {
  std::string error;
  const auto p = Policy::parse(R"({
    "service_tier": [ { "tier": "Priority", "action": "filter", "models": ["*"], "keys": ["*"],
                        "fallback": "pass" } ],
    "deny_client_events": [ { "type": "session.update", "keys": ["team-b"] } ],
    "max_event_bytes": 65536
  })",
                               &error);
  ASSERT_TRUE(p) << error;
  ASSERT_EQ(p->tier_rules.size(), 1u);
  EXPECT_EQ(p->tier_rules[0].tier, "priority");  // rule tiers are normalized too
  EXPECT_EQ(p->tier_rules[0].action, Action::kFilter);
  EXPECT_EQ(p->tier_rules[0].fallback, Action::kPass);
  ASSERT_EQ(p->deny_rules.size(), 1u);
  EXPECT_EQ(p->deny_rules[0].keys, std::vector<std::string>{"team-b"});
  EXPECT_EQ(p->max_event_bytes, 65536);
}

TEST(RtPolicy, Defaults) {
  std::string error;
  const auto empty = Policy::parse("", &error);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->max_event_bytes, 0);  // empty = pass everything, no limit
  const auto object =
      Policy::parse(R"({"service_tier":[{"tier":"flex","action":"block"}]})", &error);
  ASSERT_TRUE(object);
  EXPECT_EQ(object->max_event_bytes, Policy::kDefaultMaxEventBytes);
  EXPECT_EQ(object->tier_rules[0].models, std::vector<std::string>{"*"});
  EXPECT_EQ(object->tier_rules[0].keys, std::vector<std::string>{"*"});
  EXPECT_FALSE(object->tier_rules[0].fallback);
  EXPECT_FALSE(object->tier_rules[0].end_call);
}

TEST(RtPolicy, RejectsInvalidPoliciesWithAPath) {
  const std::pair<const char*, const char*> cases[] = {
      {"{", "policy: invalid JSON"},
      {"[]", "policy: expected an object"},
      {R"({"service_tier":{}})", "policy.service_tier: expected an array"},
      {R"({"service_tier":[{"action":"pass"}]})", "policy.service_tier[0].tier"},
      {R"({"service_tier":[{"tier":"x","action":"allow"}]})", "policy.service_tier[0].action"},
      {R"({"service_tier":[{"tier":"x","action":"pass"},{"tier":"y","action":"pass","model":["a"]}]})",
       "policy.service_tier[1]: unknown key \"model\""},
      {R"({"service_tier":[{"tier":"x","action":"pass","models":"a"}]})",
       "policy.service_tier[0].models"},
      {R"({"service_tier":[{"tier":"x","action":"pass","fallback":"deny"}]})",
       "policy.service_tier[0].fallback"},
      {R"({"service_tier":[{"tier":"x","action":"pass","end_call":"yes"}]})",
       "policy.service_tier[0].end_call"},
      {R"({"deny_client_events":[{"keys":["a"]}]})", "policy.deny_client_events[0].type"},
      {R"({"max_event_bytes":-1})", "policy.max_event_bytes"},
      {R"({"max_event_bytes":"big"})", "policy.max_event_bytes"},
      {R"({"max_event_bytes":1,"max_event_bytes":2})", "duplicate key"},
      {R"({"a":1} x)", "unexpected characters"},
  };
  for (const auto& [text, expected] : cases) {
    std::string error;
    EXPECT_FALSE(Policy::parse(text, &error)) << text;
    EXPECT_NE(error.find(expected), std::string::npos) << text << " -> " << error;
  }
  std::string error;
  EXPECT_FALSE(rtevents_check_policy(R"({"service_tier":[1]})", &error));
  EXPECT_EQ(error, "policy.service_tier[0]: expected an object");
  EXPECT_TRUE(rtevents_check_policy("", nullptr));
}

FilterOutcome run(const char* policy_json, const char* event, const char* key = "team-a",
                  const char* model = "gpt-realtime", bool budget = false) {
  std::string error;
  const auto p = Policy::parse(policy_json, &error);
  EXPECT_TRUE(p) << error;
  if (!p) return {};
  return apply_policy(*p, {key, model, budget}, event);
}

constexpr const char* kFilterPriority =
    R"({"service_tier":[{"tier":"priority","action":"filter"}]})";
constexpr const char* kBlockPriority = R"({"service_tier":[{"tier":"priority","action":"block"}]})";

TEST(RtPolicy, TranscriptionModelsFollowTheKeysAllowList) {
  // Issue 21: the allow-list did not cover audio.input.transcription.model.
  const auto p = Policy::parse("", nullptr);
  ASSERT_TRUE(p);
  const std::vector<std::string> allowed{"gpt-realtime*", "echo"};
  auto decide = [&](const char* event, const std::vector<std::string>* list) {
    return apply_policy(*p, {"team-a", "gpt-realtime", false, list}, event);
  };
  const char* ga = R"({"type":"session.update","event_id":"e1","session":{"type":"realtime",)"
                   R"("audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}})";
  FilterOutcome out = decide(ga, &allowed);
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kDropped);
  EXPECT_EQ(out.decision->reason, Reason::kModelNotAllowed);
  EXPECT_STREQ(reason_name(out.decision->reason), "model_not_allowed");
  EXPECT_EQ(out.decision->rule, "models");
  EXPECT_EQ(out.decision->event_id, "e1");
  EXPECT_EQ(out.decision->model, "gpt-4o-transcribe");
  EXPECT_NE(out.decision->message.find("gpt-4o-transcribe"), std::string::npos);
  // The beta field, and a duplicate hiding behind an allowed one (first-wins readers).
  EXPECT_EQ(decide(R"({"type":"session.update","session":{"input_audio_transcription":)"
                   R"({"model":"whisper-1"}}})",
                   &allowed)
                .kind,
            FilterOutcome::Kind::kDropped);
  EXPECT_EQ(decide(R"({"type":"session.update","session":{"audio":{"input":{"transcription":)"
                   R"({"model":"whisper-1","model":"echo"}}}}})",
                   &allowed)
                .kind,
            FilterOutcome::Kind::kDropped);
  // Allowed models, other events and no list pass.
  EXPECT_EQ(decide(R"({"type":"session.update","session":{"audio":{"input":{"transcription":)"
                   R"({"model":"gpt-realtime-mini"}}}}})",
                   &allowed)
                .kind,
            FilterOutcome::Kind::kUntouched);
  EXPECT_EQ(decide(R"({"type":"response.create","session":{"input_audio_transcription":)"
                   R"({"model":"whisper-1"}}})",
                   &allowed)
                .kind,
            FilterOutcome::Kind::kUntouched);
  EXPECT_EQ(decide(ga, nullptr).kind, FilterOutcome::Kind::kUntouched);
}

TEST(RtPolicy, DuplicateTierKeysAreAllFiltered) {
  // A first-wins upstream would read "priority", a last-wins one "auto": remove the bad one only.
  const auto out =
      run(kFilterPriority, R"({"type":"response.create","response":{"service_tier":"priority",)"
                           R"("service_tier":"auto"}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(out.modified, R"({"type":"response.create","response":{"service_tier":"auto"}})");
  const auto blocked =
      run(kBlockPriority, R"({"type":"response.create","response":{"service_tier":"auto",)"
                          R"("service_tier":"priority"}})");
  EXPECT_EQ(blocked.kind, FilterOutcome::Kind::kDropped);
}

// SPEC: what the worker receives is the normalized tier, with or without a matching rule.
TEST(RtPolicy, PassedTiersAreForwardedNormalized) {
  const char* pass_rule = R"({"service_tier":[{"tier":"priority","action":"pass"}]})";
  for (const char* policy : {pass_rule, "{}", ""}) {
    SCOPED_TRACE(policy);
    auto out = run(policy, R"({"type":"response.create","response":{"service_tier":" FAST "}})");
    ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
    EXPECT_EQ(out.modified, R"({"type":"response.create","response":{"service_tier":"priority"}})");
    EXPECT_FALSE(out.decision);  // a normalization is not a policy decision
    out = run(policy, R"({"type":"session.update","session":{"service_tier":"Fast","x":1}})");
    ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
    EXPECT_EQ(out.modified,
              R"({"type":"session.update","session":{"service_tier":"priority","x":1}})");
    out = run(policy, R"({"type":"response.create","service_tier":"\tAUTO", "event_id":"e1"})");
    ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
    EXPECT_EQ(out.modified, R"({"type":"response.create","service_tier":"auto", "event_id":"e1"})");
    // Escapes are decoded before normalizing; the value is written back plainly.
    out = run(policy, R"({"type":"response.create","response":{"service_tier":"F\u0041ST"}})");
    EXPECT_EQ(out.modified, R"({"type":"response.create","response":{"service_tier":"priority"}})");
    // Already normalized, unknown event types and non-string tiers keep their bytes.
    EXPECT_EQ(run(policy, R"({"type":"response.create","response":{"service_tier":"flex"}})").kind,
              FilterOutcome::Kind::kUntouched);
    EXPECT_EQ(run(policy, R"({"type":"conversation.item.create","service_tier":"FAST"})").kind,
              FilterOutcome::Kind::kUntouched);
    EXPECT_EQ(run(policy, R"({"type":"response.create","response":{"service_tier":7}})").kind,
              FilterOutcome::Kind::kUntouched);
  }
}

TEST(RtPolicy, FilterAndNormalizationInOneEvent) {
  // Two tiers in one response.create: the filtered one ("fast" is priority) goes, the passed one
  // is normalized, every other byte stays.
  const char* policy =
      R"({"service_tier":[{"tier":"priority","action":"filter"},{"tier":"flex","action":"pass"}]})";
  const auto out = run(policy, R"({"type":"response.create","service_tier":" FLEX",)"
                               R"("response":{"service_tier":"fast","modalities":["text"]}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->action, Action::kFilter);
  EXPECT_EQ(out.modified, R"({"type":"response.create","service_tier":"flex",)"
                          R"("response":{"modalities":["text"]}})");
  // A normalized tier that needs escaping is escaped when written back.
  const auto odd = run("", "{\"type\":\"response.create\",\"service_tier\":\" A\\\"B \"}");
  EXPECT_EQ(odd.modified, "{\"type\":\"response.create\",\"service_tier\":\"a\\\"b\"}");
}

TEST(RtPolicy, DuplicateTypeKeysAreAllConsidered) {
  const auto out =
      run(kBlockPriority,
          R"({"type":"response.create","type":"noop","response":{"service_tier":"priority"}})");
  EXPECT_EQ(out.kind, FilterOutcome::Kind::kDropped);
  const auto denied = run(R"({"deny_client_events":[{"type":"session.update"}]})",
                          R"({"type":"session.update","type":"x"})");
  EXPECT_EQ(denied.kind, FilterOutcome::Kind::kDropped);
}

TEST(RtPolicy, EscapedKeysAndValuesAreSeen) {
  const auto out =
      run(kFilterPriority,
          R"({"type":"response.cre\u0061te","response":{"service\u005ftier":"pri\u006Frity"}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(out.modified, R"({"type":"response.cre\u0061te","response":{}})");
}

TEST(RtPolicy, LenientJsonIsStillChecked) {
  // NaN (Python accepts it) and trailing data (Go's Decoder ignores it) must not hide the tier.
  EXPECT_EQ(run(kBlockPriority,
                R"({"type":"response.create","x":NaN,"response":{"service_tier":"priority"}})")
                .kind,
            FilterOutcome::Kind::kDropped);
  EXPECT_EQ(run(kBlockPriority,
                R"({"type":"response.create","response":{"service_tier":"priority"}} trailing)")
                .kind,
            FilterOutcome::Kind::kDropped);
  EXPECT_EQ(run(kBlockPriority,
                R"({"type":"response.create","x":"\ud800","response":{"service_tier":"priority"}})")
                .kind,
            FilterOutcome::Kind::kDropped);
}

TEST(RtPolicy, DuplicateModelsTakeTheStrictestVerdict) {
  const char* policy =
      R"({"service_tier":[{"tier":"priority","action":"pass","models":["mini"],"fallback":"block"}]})";
  EXPECT_EQ(
      run(policy,
          R"({"type":"response.create","response":{"model":"mini","service_tier":"priority"}})")
          .kind,
      FilterOutcome::Kind::kUntouched);
  EXPECT_EQ(
      run(policy,
          R"({"type":"response.create","response":{"model":"mini","model":"big","service_tier":"priority"}})")
          .kind,
      FilterOutcome::Kind::kDropped);
}

TEST(RtPolicy, TooLargeIsCheckedBeforeParsing) {
  const std::string big = R"({"type":"x","event_id":"e9","pad":")" + std::string(200, 'a') + "\"}";
  const auto out = run(R"({"max_event_bytes":100})", big.c_str());
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kDropped);
  EXPECT_EQ(out.decision->rule, "max_event_bytes");
  EXPECT_EQ(out.decision->event_type, "x");
  EXPECT_EQ(out.decision->event_id, "e9");
  const std::string garbage(300, '{');
  EXPECT_EQ(run(R"({"max_event_bytes":100})", garbage.c_str()).kind, FilterOutcome::Kind::kDropped);
  EXPECT_EQ(run(R"({"max_event_bytes":0})", big.c_str()).kind, FilterOutcome::Kind::kUntouched);
}

// SPEC "Policy": reasoning.effort above a rule's max is lowered to it (every other byte kept) or
// blocked, on session.update and response.create; parallel_tool_calls and voice objects untouched.
constexpr const char* kLowerToMedium =
    R"({"reasoning_effort":[{"max":"medium","action":"lower","models":["gpt-realtime-2*"]}]})";
constexpr const char* kBlockAboveLow =
    R"({"reasoning_effort":[{"max":"low","action":"block","keys":["team-b"],"end_call":true},)"
    R"({"max":"high","action":"lower"}]})";

TEST(RtPolicy, ReasoningEffortRanks) {
  EXPECT_EQ(effort_rank("minimal"), 0);
  EXPECT_EQ(effort_rank(" XHigh "), 4);
  EXPECT_EQ(effort_rank("medium"), 2);
  EXPECT_FALSE(effort_rank("max"));
  EXPECT_FALSE(effort_rank(""));
}

TEST(RtPolicy, ReasoningEffortIsLoweredToTheCap) {
  const auto out =
      run(kLowerToMedium,
          R"({"type":"session.update","event_id":"e1","session":{"model":)"
          R"("gpt-realtime-2","reasoning":{"effort":"xhigh","summary":"auto"},)"
          R"("parallel_tool_calls":true,"audio":{"output":{"voice":{"id":"voice_1"}}}}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(out.modified,
            R"({"type":"session.update","event_id":"e1","session":{"model":)"
            R"("gpt-realtime-2","reasoning":{"effort":"medium","summary":"auto"},)"
            R"("parallel_tool_calls":true,"audio":{"output":{"voice":{"id":"voice_1"}}}}})");
  ASSERT_TRUE(out.decision);
  EXPECT_EQ(out.decision->action, Action::kLower);
  EXPECT_STREQ(action_name(out.decision->action), "lower");
  EXPECT_STREQ(reason_name(out.decision->reason), "reasoning_effort");
  EXPECT_EQ(out.decision->rule, "reasoning_effort[0]");
  EXPECT_NE(out.decision->message.find("lowered to \"medium\""), std::string::npos);

  // response.create, the session's model; duplicate effort members are all lowered.
  const auto resp = run(kLowerToMedium,
                        R"({"type":"response.create","response":{"reasoning":)"
                        R"({"effort":"high","effort":" HIGH "}}})",
                        "team-a", "gpt-realtime-2.1-mini");
  ASSERT_EQ(resp.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(
      resp.modified,
      R"({"type":"response.create","response":{"reasoning":{"effort":"medium","effort":"medium"}}})");
}

TEST(RtPolicy, ReasoningEffortAtOrBelowTheCapOrOutOfScopePasses) {
  for (
      const char* event : {
          R"({"type":"session.update","session":{"model":"gpt-realtime-2","reasoning":{"effort":"medium"}}})",
          R"({"type":"session.update","session":{"model":"gpt-realtime-2","reasoning":{"effort":"minimal"}}})",
          R"({"type":"session.update","session":{"model":"gpt-realtime","reasoning":{"effort":"xhigh"}}})",
          R"({"type":"session.update","session":{"model":"gpt-realtime-2","reasoning":{"effort":"turbo"}}})",
          R"({"type":"session.update","session":{"model":"gpt-realtime-2","reasoning":{"effort":3}}})",
          R"({"type":"conversation.item.create","reasoning":{"effort":"xhigh"}})",
      }) {
    EXPECT_EQ(run(kLowerToMedium, event).kind, FilterOutcome::Kind::kUntouched) << event;
  }
  EXPECT_EQ(run("", R"({"type":"session.update","session":{"reasoning":{"effort":"xhigh"}}})").kind,
            FilterOutcome::Kind::kUntouched);
}

TEST(RtPolicy, ReasoningEffortBlockIsPerKey) {
  const char* event =
      R"({"type":"session.update","event_id":"e7","session":{"reasoning":{"effort":"medium"}}})";
  const auto blocked = run(kBlockAboveLow, event, "team-b");
  ASSERT_EQ(blocked.kind, FilterOutcome::Kind::kDropped);
  EXPECT_EQ(blocked.decision->rule, "reasoning_effort[0]");
  EXPECT_EQ(blocked.decision->event_id, "e7");
  EXPECT_TRUE(blocked.decision->end_call);
  EXPECT_NE(blocked.decision->message.find("not allowed"), std::string::npos);
  // Another key falls to the second rule: medium is under its cap, xhigh is lowered to high.
  EXPECT_EQ(run(kBlockAboveLow, event, "team-a").kind, FilterOutcome::Kind::kUntouched);
  const auto lowered = run(
      kBlockAboveLow, R"({"type":"session.update","session":{"reasoning":{"effort":"xhigh"}}})");
  ASSERT_EQ(lowered.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(lowered.modified,
            R"({"type":"session.update","session":{"reasoning":{"effort":"high"}}})");
}

TEST(RtPolicy, ReasoningEffortAndTierFilterInOneEvent) {
  const auto out = run(
      R"({"service_tier":[{"tier":"priority","action":"filter"}],"reasoning_effort":[{"max":"low","action":"lower"}]})",
      R"({"type":"response.create","response":{"service_tier":"priority","reasoning":{"effort":"high"}}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(out.modified,
            R"({"type":"response.create","response":{"reasoning":{"effort":"low"}}})");
  EXPECT_EQ(out.decision->reason, Reason::kServiceTier);  // the filter is the decision reported
}

// An escaped key or value is what the upstream reads after unescaping: it is judged that way.
TEST(RtPolicy, EscapedReasoningEffortIsSeen) {
  const auto out =
      run(kLowerToMedium, R"({"type":"session.update","session":{"model":"gpt-realtime-2",)"
                          R"("re\u0061soning":{"\u0065ffort":"x\u0068igh"}}})");
  ASSERT_EQ(out.kind, FilterOutcome::Kind::kModified);
  EXPECT_EQ(out.modified, R"({"type":"session.update","session":{"model":"gpt-realtime-2",)"
                          R"("re\u0061soning":{"\u0065ffort":"medium"}}})");
}

TEST(RtPolicy, RejectsInvalidReasoningEffortRules) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"reasoning_effort":{}})", "policy.reasoning_effort: expected an array"},
      {R"({"reasoning_effort":[{"action":"lower"}]})", "policy.reasoning_effort[0].max"},
      {R"({"reasoning_effort":[{"max":"huge","action":"lower"}]})",
       "policy.reasoning_effort[0].max"},
      {R"({"reasoning_effort":[{"max":"low","action":"filter"}]})",
       "policy.reasoning_effort[0].action"},
      {R"({"reasoning_effort":[{"max":"low","action":"lower","tier":"x"}]})", "unknown key"},
      {R"({"reasoning_effort":[{"max":"low","action":"lower","keys":"a"}]})",
       "policy.reasoning_effort[0].keys"},
  };
  for (const auto& [text, expected] : cases) {
    std::string error;
    EXPECT_FALSE(Policy::parse(text, &error)) << text;
    EXPECT_NE(error.find(expected), std::string::npos) << text << " -> " << error;
  }
}

}  // namespace
}  // namespace rtgw::rtevents
