// SPDX-License-Identifier: MIT
// Fuzz target `event`: a stream of realtime events (one per line) through the event path's pure
// logic, as rteventfilter and the two rtusagemeter elements run it:
// - client→upstream: apply_policy with a fixed policy (plugins/rtevents/examples/policy.json or
//   the example config's policy, each with a reasoning_effort rule), then note_client_event on
//   what passes;
// - upstream→client: the rtevents JSON reader and TurnTracker metering.
// An input that does not start with `{` or whitespace spends its first byte on the context: bit 0
// and 1 pick the caller's key, bit 2 the budget flag, bit 3 the policy, bit 4 the session model,
// bit 7 also parses the rest as a policy object.
//
// Invariants checked: a filtered event is still a JSON object of the same type and filtering it
// again changes nothing (no tier the policy filters, and no effort above a cap, can reach the
// worker); a lowered effort is exactly its rule's cap; an event modified
// without a decision only had its passed tiers normalized; a blocked event carries a decision;
// metered token counts are never negative and turn durations never negative.
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "rtevents/json.h"
#include "rtevents/json_strict.h"
#include "rtevents/policy.h"
#include "rtevents/usage.h"

using namespace rtgw;
namespace rte = rtgw::rtevents;

namespace {

constexpr const char* kExamplePolicy =
    R"({"service_tier":[{"tier":"priority","action":"pass","models":["gpt-realtime-mini"],)"
    R"("fallback":"block"},{"tier":"flex","action":"filter","keys":["team-*"]}],)"
    R"("deny_client_events":[{"type":"conversation.item.create","keys":["team-b"]}],)"
    R"("reasoning_effort":[{"max":"medium","action":"lower","models":["gpt-realtime*"]}],)"
    R"("max_event_bytes":1024})";
constexpr const char* kConfigPolicy =
    R"({"service_tier":[{"tier":"priority","action":"filter","models":["*"],"keys":["*"],)"
    R"("fallback":"pass"},{"tier":"*","action":"block","keys":["team-b"],"end_call":true}],)"
    R"("deny_client_events":[{"type":"session.update","keys":["team-b"]}],)"
    R"("reasoning_effort":[{"max":"low","action":"block","keys":["team-b"]},)"
    R"({"max":"high","action":"lower"}],)"
    R"("max_event_bytes":65536})";

const rte::Policy& policy(int which) {
  static const auto parse = [](const char* text) {
    std::string error;
    auto p = rte::Policy::parse(text, &error);
    if (!p) fuzz::fail("the fixed policy does not parse", error);
    return p;
  };
  static const std::shared_ptr<const rte::Policy> policies[2] = {parse(kExamplePolicy),
                                                                 parse(kConfigPolicy)};
  return *policies[which];
}

void check_usage(const rte::TurnRecord& r) {
  const auto& u = r.usage;
  for (std::int64_t n :
       {u.input_tokens, u.output_tokens, u.total_tokens, u.input_text_tokens, u.input_audio_tokens,
        u.input_image_tokens, u.input_cached_tokens, u.output_text_tokens, u.output_audio_tokens})
    if (n < 0) fuzz::fail("negative token count metered", r.response_id);
  if (r.turn_duration_ms < 0) fuzz::fail("negative turn duration", r.response_id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  unsigned mode = 0;
  if (!in.empty() && in[0] != '{' && in[0] != ' ' && in[0] != '\n' && in[0] != '\t' &&
      in[0] != '\r') {
    mode = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
  }
  static const char* const kKeys[] = {"team-a", "team-b", "ops", ""};
  rte::EventContext ctx;
  ctx.key_name = kKeys[mode & 3];
  ctx.budget_exceeded = mode & 4;
  // Half the runs with a key allow-list (transcription models are checked against it).
  static const std::vector<std::string> kAllowed = {"gpt-realtime*", "echo"};
  if (mode & 32) ctx.allowed_models = &kAllowed;
  std::string session_model = mode & 16 ? "gpt-realtime" : "gpt-realtime-mini";
  const rte::Policy& p = policy(mode & 8 ? 1 : 0);

  if (mode & 128) {
    std::string error;
    if (auto parsed = rte::Policy::parse(in, &error); !parsed && error.empty())
      fuzz::fail("a refused policy without a reason");
  }

  rte::UsageLink link;
  rte::TurnTracker tracker;
  std::int64_t now_us = 1'000'000;
  for (std::string_view event : fuzz::lines(in)) {
    now_us += 1000 + static_cast<std::int64_t>(event.size()) * 37;
    ctx.session_model = session_model;

    // Client → upstream: the filter, then the client-side meter on what goes on.
    rte::FilterOutcome out = rte::apply_policy(p, ctx, event);
    std::string_view forwarded = event;
    switch (out.kind) {
      case rte::FilterOutcome::Kind::kDropped:
        if (!out.decision || out.decision->action != rte::Action::kBlock)
          fuzz::fail("dropped without a block decision", event);
        if (out.decision->reason == rte::Reason::kReasoningEffort && !(mode & 8))
          fuzz::fail("an effort blocked by a policy that only lowers", event);
        if (out.decision->reason == rte::Reason::kModelNotAllowed && !ctx.allowed_models)
          fuzz::fail("model_not_allowed without an allow-list", event);
        break;
      case rte::FilterOutcome::Kind::kModified: {
        forwarded = out.modified;
        auto before = rte::json::parse(event);
        auto after = rte::json::parse(out.modified);
        if (!after.root || !after.root->is_object())
          fuzz::fail("a filtered event is no longer a JSON object", out.modified);
        // Without a decision the only change allowed is a passed tier written in its normalized
        // form: every tier that goes on is normalized already.
        if (!out.decision)
          for (const char* holder : {"response", "session"})
            if (const rte::json::Value* object = after.root->last(holder))
              for (const std::string& tier : object->all_strings("service_tier"))
                if (tier != rte::normalize_tier(tier))
                  fuzz::fail("modified without a decision, tier not normalized", out.modified);
        if (before.root && before.root->last_string("type") != after.root->last_string("type"))
          fuzz::fail("filtering changed the event type", out.modified);
        if (out.decision && out.decision->reason == rte::Reason::kReasoningEffort &&
            out.decision->action != rte::Action::kLower)
          fuzz::fail("an effort decision that goes on is not a lower", out.modified);
        rte::FilterOutcome again = rte::apply_policy(p, ctx, out.modified);
        if (again.kind == rte::FilterOutcome::Kind::kModified)
          fuzz::fail("a filtered event still has something to filter", out.modified);
        break;
      }
      case rte::FilterOutcome::Kind::kUntouched:
        break;
    }
    if (out.new_session_model) session_model = *out.new_session_model;
    // The filter fronts the lenient reader with the strict validator: nothing that is not strict
    // JSON goes on, and what it refuses as such is refused for that reason (issue 21).
    const bool strict_ok = rte::strict_json::check(event).ok;
    if (out.kind != rte::FilterOutcome::Kind::kDropped && !strict_ok)
      fuzz::fail("an event that is not strict JSON went on", event);
    if (out.kind != rte::FilterOutcome::Kind::kDropped && !rte::strict_json::check(forwarded).ok)
      fuzz::fail("the filter made an event that is not strict JSON", forwarded);
    if (!strict_ok && out.decision && out.decision->reason != rte::Reason::kInvalidJson &&
        out.decision->reason != rte::Reason::kTooLarge)
      fuzz::fail("non-strict event decided on for another reason", event);
    if (out.kind != rte::FilterOutcome::Kind::kDropped) {
      auto parsed = rte::json::parse(forwarded);
      if (parsed.root) rte::note_client_event(*parsed.root, now_us, link);
    }

    // Upstream → client: the upstream meter.
    auto parsed = rte::json::parse(event);
    if (parsed.root) {
      if (auto record = tracker.on_upstream_event(*parsed.root, now_us, &link))
        check_usage(*record);
      if (tracker.open_turns() > rte::TurnTracker::kMaxOpenTurns)
        fuzz::fail("open turns above the bound");
      if (link.pending() > rte::UsageLink::kMaxPending) fuzz::fail("pending above the bound");
      // extract_usage on any object, as a response.done's `response`.
      (void)rte::extract_usage(&*parsed.root);
    }
  }
  return 0;
}
