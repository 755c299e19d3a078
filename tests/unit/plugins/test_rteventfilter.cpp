// SPDX-License-Identifier: MIT
// rteventfilter through GstHarness: what comes out, what is dropped, and the rtevent-decision
// messages on the bus.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

class RtEventFilterTest : public ::testing::Test {
 protected:
  RtEventFilterTest() : h_("rteventfilter") {}

  void set_policy(const char* json) { g_object_set(h_.element(), "policy", json, nullptr); }
  void set(const char* property, const char* value) {
    g_object_set(h_.element(), property, value, nullptr);
  }
  std::optional<std::string> process(std::string_view event) { return h_.process(event); }
  std::vector<Ref<GstMessage>> decisions() {
    return pop_element_messages(h_.bus(), "rtevent-decision");
  }
  // Exactly one decision is pending; returns its structure (owned by the kept message).
  const GstStructure* one_decision() {
    auto all = decisions();
    EXPECT_EQ(all.size(), 1u);
    if (all.empty()) return empty_.get();
    last_ = all.back();
    return structure(last_);
  }
  std::string model() { return get_string_property(h_.element(), "model"); }

  ElementHarness h_;
  Ref<GstMessage> last_;
  UniqueStructure empty_{gst_structure_new_empty("none")};
};

constexpr const char* kFilterPriority =
    R"({"service_tier":[{"tier":"priority","action":"filter"}]})";
constexpr const char* kBlockPriority =
    R"({"service_tier":[{"tier":"priority","action":"block","end_call":true}]})";

TEST_F(RtEventFilterTest, NormalizedTiersMatchRules) {
  set_policy(kBlockPriority);
  for (const char* tier : {" Priority ", "FAST", "fast", "priority", "PRIORITY\\n"}) {
    const std::string ev =
        std::string(R"({"type":"response.create","response":{"service_tier":")") + tier + "\"}}";
    EXPECT_EQ(process(ev), std::nullopt) << tier;
    const GstStructure* d = one_decision();
    EXPECT_EQ(str_field(d, "tier"), "priority") << tier;
  }
  // Tiers that pass go to the worker normalized (SPEC: OpenAI accepts only the normal forms).
  const std::pair<const char*, const char*> passed[] = {{"auto", "auto"},
                                                        {"default", "default"},
                                                        {"flex", "flex"},
                                                        {"AUTO", "auto"},
                                                        {" Flex", "flex"}};
  for (const auto& [tier, normalized] : passed) {
    const auto event = [](const char* t) {
      return std::string(R"({"type":"response.create","response":{"service_tier":")") + t + "\"}}";
    };
    EXPECT_EQ(process(event(tier)), event(normalized)) << tier;
    EXPECT_TRUE(decisions().empty()) << tier;
  }
}

TEST_F(RtEventFilterTest, FilterRemovesOnlyTheFieldAndIsIdempotent) {
  set_policy(kFilterPriority);
  set("key-name", "team-a");
  const std::string in =
      R"({"type":"response.create", "event_id":"evt_1","response":{"modalities":["audio"],)"
      R"( "service_tier" : "Priority","temperature":0.80,"instructions":"h\u00e9llo \"q\""}})";
  const std::string expected =
      R"({"type":"response.create", "event_id":"evt_1","response":{"modalities":["audio"],)"
      R"( "temperature":0.80,"instructions":"h\u00e9llo \"q\""}})";
  const auto out = process(in);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, expected);

  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "filter");
  EXPECT_EQ(str_field(d, "reason"), "service_tier");
  EXPECT_EQ(str_field(d, "rule"), "service_tier[0]");
  EXPECT_EQ(str_field(d, "event-type"), "response.create");
  EXPECT_EQ(str_field(d, "event-id"), "evt_1");
  EXPECT_EQ(str_field(d, "tier"), "priority");
  EXPECT_FALSE(bool_field(d, "end-call"));
  EXPECT_FALSE(str_field(d, "message").empty());

  // Filtering the output again changes nothing and decides nothing.
  EXPECT_EQ(process(*out), expected);
  EXPECT_TRUE(decisions().empty());
  EXPECT_EQ(get_uint64_property(h_.element(), "events-in"), 2u);
  EXPECT_EQ(get_uint64_property(h_.element(), "events-filtered"), 1u);
  EXPECT_EQ(get_uint64_property(h_.element(), "events-blocked"), 0u);
}

TEST_F(RtEventFilterTest, FilterTopLevelAndSessionTiers) {
  set_policy(kFilterPriority);
  EXPECT_EQ(
      process(
          R"({"service_tier":"fast","type":"response.create","response":{"service_tier":"priority"}})"),
      R"({"type":"response.create","response":{}})");
  EXPECT_EQ(decisions().size(), 1u);  // one message per event
  EXPECT_EQ(
      process(R"({"type":"session.update","session":{"model":"m","service_tier":"priority"}})"),
      R"({"type":"session.update","session":{"model":"m"}})");
  EXPECT_EQ(one_decision() != nullptr, true);
  // session.service_tier is only looked at in session.update, response.* only in response.create.
  const std::string other = R"({"type":"conversation.item.create","service_tier":"priority"})";
  EXPECT_EQ(process(other), other);
  const std::string upd = R"({"type":"session.update","response":{"service_tier":"priority"}})";
  EXPECT_EQ(process(upd), upd);
  EXPECT_TRUE(decisions().empty());
}

TEST_F(RtEventFilterTest, BlockPostsDecisionAndNothingComesOut) {
  set_policy(kBlockPriority);
  set("model", "gpt-realtime");
  EXPECT_EQ(
      process(
          R"({"type":"response.create","event_id":"e7","response":{"service_tier":"priority"}})"),
      std::nullopt);
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "reason"), "service_tier");
  EXPECT_EQ(str_field(d, "rule"), "service_tier[0]");
  EXPECT_EQ(str_field(d, "event-type"), "response.create");
  EXPECT_EQ(str_field(d, "event-id"), "e7");
  EXPECT_EQ(str_field(d, "tier"), "priority");
  EXPECT_EQ(str_field(d, "model"), "gpt-realtime");
  EXPECT_TRUE(bool_field(d, "end-call"));
  EXPECT_NE(str_field(d, "message").find("priority"), std::string::npos);
  EXPECT_EQ(get_uint64_property(h_.element(), "events-blocked"), 1u);
  EXPECT_EQ(gst_harness_buffers_received(h_.get()), 0u);
}

TEST_F(RtEventFilterTest, UntouchedEventsAreTheSameBytesAndMemory) {
  set_policy(kFilterPriority);
  const std::string in =
      "{ \"type\" : \"response.create\",\n \"response\": {\"service_tier\":\"auto\", "
      "\"temperature\": 0.8, \"n\": 1e2, \"s\": \"\\u00e9\\ud83d\\ude00\"} }";
  const Ref<GstBuffer> buffer = make_buffer(in);
  GstMemory* memory = gst_buffer_peek_memory(buffer.get(), 0);
  ASSERT_EQ(h_.push(buffer), GST_FLOW_OK);
  const Ref<GstBuffer> out = h_.try_pull();
  ASSERT_TRUE(out);
  EXPECT_EQ(buffer_text(out.get()), in);
  ASSERT_EQ(gst_buffer_n_memory(out.get()), 1u);
  EXPECT_EQ(gst_buffer_peek_memory(out.get(), 0), memory);  // not re-serialized, not copied
  EXPECT_TRUE(decisions().empty());
}

TEST_F(RtEventFilterTest, StrictJsonThatIsNoObjectPassesUntouched) {
  set_policy(kBlockPriority);
  for (const char* in : {R"(["response.create"])", R"("priority")", "null", " 5 "}) {
    EXPECT_EQ(process(in), in) << in;
  }
  EXPECT_TRUE(decisions().empty());
}

TEST_F(RtEventFilterTest, EventsThatAreNotStrictJsonAreRefused) {
  // Issue 21: what a lenient parser reads differently (comments, single quotes, ...) never goes
  // on, whatever the policy (the pass-everything one too); the client hears invalid_json.
  for (const char* policy : {kBlockPriority, ""}) {
    set_policy(policy);
    for (const char* in :
         {R"({"type":"response.create","response":{"service_tier":"priority")", R"(not json)", "",
          R"({'type':'response.create','response':{'service_tier':'priority'}})",
          R"({"type":"response.create",/* " */"response":{"service_tier":"priority"}})",
          R"({"type":"response.create","response":{"service_tier":"priority"}} {})",
          R"({"type":"x","n":NaN})", R"({"type":"x","n":01})", R"({"type":"x",})",
          "{\"type\":\"x\xff\"}"}) {
      EXPECT_EQ(process(in), std::nullopt) << in;
      const GstStructure* d = one_decision();
      ASSERT_TRUE(d) << in;
      EXPECT_EQ(str_field(d, "action"), "block");
      EXPECT_EQ(str_field(d, "reason"), "invalid_json");
      EXPECT_EQ(str_field(d, "rule"), "strict_json");
      EXPECT_NE(str_field(d, "message").find("not valid JSON"), std::string::npos);
    }
  }
}

TEST_F(RtEventFilterTest, NonStringTiersPassUntouched) {
  set_policy(R"({"service_tier":[{"tier":"*","action":"block"}]})");
  for (const char* tier : {"5", "null", "true", R"(["priority"])", R"({"tier":"priority"})"}) {
    const std::string ev =
        std::string(R"({"type":"response.create","response":{"service_tier":)") + tier + "}}";
    EXPECT_EQ(process(ev), ev) << tier;
  }
  EXPECT_TRUE(decisions().empty());
  // The wildcard rule does apply to any string tier.
  EXPECT_EQ(process(R"({"type":"response.create","response":{"service_tier":"anything"}})"),
            std::nullopt);
  EXPECT_EQ(decisions().size(), 1u);
}

TEST_F(RtEventFilterTest, KeyAndModelWildcards) {
  set_policy(R"({"service_tier":[{"tier":"priority","action":"block",
                 "keys":["team-*"],"models":["gpt-realtime*"]}]})");
  const char* ev = R"({"type":"response.create","response":{"service_tier":"priority"}})";
  set("key-name", "team-a");
  set("model", "gpt-realtime-mini");
  EXPECT_EQ(process(ev), std::nullopt);
  EXPECT_EQ(str_field(one_decision(), "model"), "gpt-realtime-mini");
  set("key-name", "ops");  // key does not match
  EXPECT_EQ(process(ev), ev);
  set("key-name", "team-b");
  set("model", "other-model");  // model does not match (no fallback: next rule, none: pass)
  EXPECT_EQ(process(ev), ev);
  // The event's own model wins over the session model.
  EXPECT_EQ(
      process(
          R"({"type":"response.create","response":{"model":"gpt-realtime","service_tier":"priority"}})"),
      std::nullopt);
  EXPECT_EQ(str_field(one_decision(), "model"), "gpt-realtime");
  EXPECT_TRUE(decisions().empty());
}

TEST_F(RtEventFilterTest, FirstMatchWins) {
  set_policy(R"({"service_tier":[
      {"tier":"priority","action":"pass","keys":["vip"]},
      {"tier":"priority","action":"block"},
      {"tier":"*","action":"filter"},
      {"tier":"flex","action":"block"}]})");
  const char* prio = R"({"type":"response.create","response":{"service_tier":"priority"}})";
  set("key-name", "vip");
  EXPECT_EQ(process(prio), prio);
  EXPECT_TRUE(decisions().empty());
  set("key-name", "team-a");
  EXPECT_EQ(process(prio), std::nullopt);
  EXPECT_EQ(str_field(one_decision(), "rule"), "service_tier[1]");
  EXPECT_EQ(process(R"({"type":"response.create","response":{"service_tier":"flex"}})"),
            R"({"type":"response.create","response":{}})");
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "rule"), "service_tier[2]");
  EXPECT_EQ(str_field(d, "action"), "filter");
}

TEST_F(RtEventFilterTest, Fallback) {
  set_policy(R"({"service_tier":[
      {"tier":"priority","action":"pass","models":["gpt-realtime-mini"],"fallback":"filter"},
      {"tier":"priority","action":"block","models":["nothing"]},
      {"tier":"priority","action":"block","keys":["team-b"]}]})");
  const char* ev = R"({"type":"response.create","response":{"service_tier":"priority"}})";
  set("model", "gpt-realtime-mini");
  EXPECT_EQ(process(ev), ev);
  EXPECT_TRUE(decisions().empty());
  set("model", "gpt-realtime");  // tier matches, model does not: the fallback applies
  EXPECT_EQ(process(ev), R"({"type":"response.create","response":{}})");
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "rule"), "service_tier[0]");
  EXPECT_EQ(str_field(d, "action"), "filter");
  EXPECT_NE(str_field(d, "message").find("fallback"), std::string::npos);
  // The key must match for the fallback to apply.
  set_policy(R"({"service_tier":[
      {"tier":"priority","action":"pass","keys":["vip"],"models":["x"],"fallback":"pass"},
      {"tier":"priority","action":"block","end_call":true}]})");
  EXPECT_EQ(process(ev), std::nullopt);
  d = one_decision();
  EXPECT_EQ(str_field(d, "rule"), "service_tier[1]");
  EXPECT_TRUE(bool_field(d, "end-call"));
}

TEST_F(RtEventFilterTest, SessionUpdateRotatesTheModel) {
  set_policy(R"({"service_tier":[
      {"tier":"priority","action":"pass","models":["gpt-realtime-mini"],"fallback":"block"}]})");
  set("model", "gpt-realtime-mini");
  const char* create = R"({"type":"response.create","response":{"service_tier":"priority"}})";
  EXPECT_EQ(process(create), create);

  const char* update = R"({"type":"session.update","session":{"model":"gpt-realtime"}})";
  EXPECT_EQ(process(update), update);
  EXPECT_EQ(model(), "gpt-realtime");
  EXPECT_EQ(process(create), std::nullopt);  // the new model's rule (fallback) now applies
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "model"), "gpt-realtime");
  EXPECT_EQ(str_field(d, "action"), "block");

  // A session.update whose own tier is blocked is dropped and does not rotate the model.
  EXPECT_EQ(process(R"({"type":"session.update","session":{"model":"gpt-realtime-large",)"
                    R"("service_tier":"priority"}})"),
            std::nullopt);
  EXPECT_EQ(str_field(one_decision(), "model"), "gpt-realtime-large");
  EXPECT_EQ(model(), "gpt-realtime");
  // A filtered session.update still goes through and rotates the model.
  set_policy(R"({"service_tier":[{"tier":"priority","action":"filter"}]})");
  EXPECT_EQ(
      process(
          R"({"type":"session.update","session":{"model":"gpt-realtime-mini","service_tier":"fast"}})"),
      R"({"type":"session.update","session":{"model":"gpt-realtime-mini"}})");
  EXPECT_EQ(model(), "gpt-realtime-mini");
}

TEST_F(RtEventFilterTest, DenyClientEvents) {
  set_policy(R"({"deny_client_events":[
      {"type":"session.update","keys":["team-b"]},
      {"type":"conversation.item.*","end_call":true}]})");
  const char* update = R"({"type":"session.update","event_id":"u1","session":{"tools":[]}})";
  set("key-name", "team-a");
  EXPECT_EQ(process(update), update);
  EXPECT_TRUE(decisions().empty());
  set("key-name", "team-b");
  EXPECT_EQ(process(update), std::nullopt);
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "reason"), "denied_event");
  EXPECT_EQ(str_field(d, "rule"), "deny_client_events[0]");
  EXPECT_EQ(str_field(d, "event-type"), "session.update");
  EXPECT_EQ(str_field(d, "event-id"), "u1");
  EXPECT_EQ(str_field(d, "tier"), "");
  EXPECT_FALSE(bool_field(d, "end-call"));
  set("key-name", "team-a");
  EXPECT_EQ(process(R"({"type":"conversation.item.create","item":{}})"), std::nullopt);
  d = one_decision();
  EXPECT_EQ(str_field(d, "rule"), "deny_client_events[1]");
  EXPECT_EQ(str_field(d, "event-id"), "");
  EXPECT_TRUE(bool_field(d, "end-call"));
  const char* other = R"({"type":"input_audio_buffer.append","audio":""})";
  EXPECT_EQ(process(other), other);
}

TEST_F(RtEventFilterTest, TooLargeEventsAreRefused) {
  set_policy(R"({"max_event_bytes":64})");
  std::string ev = R"({"type":"conversation.item.create","event_id":"big","x":")";
  ev += std::string(64 - ev.size() - 2, 'a') + "\"}";
  ASSERT_EQ(ev.size(), 64u);
  EXPECT_EQ(process(ev), ev);  // exactly the limit passes
  ev.insert(ev.size() - 2, "a");
  EXPECT_EQ(process(ev), std::nullopt);
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "reason"), "too_large");
  EXPECT_EQ(str_field(d, "rule"), "max_event_bytes");
  EXPECT_EQ(str_field(d, "event-type"), "conversation.item.create");
  EXPECT_EQ(str_field(d, "event-id"), "big");
  EXPECT_NE(str_field(d, "message").find("65 bytes"), std::string::npos);

  // Default limit when the policy omits it: 65536.
  set_policy(R"({"service_tier":[]})");
  std::string big = R"({"type":"x","pad":")" + std::string(65536, 'b') + "\"}";
  EXPECT_EQ(process(big), std::nullopt);
  EXPECT_EQ(str_field(one_decision(), "reason"), "too_large");
  big.resize(65536 - 2);
  big += "\"}";
  EXPECT_EQ(process(big), big);
  // An empty policy has no size limit (it still takes only JSON).
  set_policy("");
  const std::string huge = "\"" + std::string(200000, ' ') + "\"";
  EXPECT_EQ(process(huge), huge);
  EXPECT_TRUE(decisions().empty());
}

TEST_F(RtEventFilterTest, BudgetExceeded) {
  const char* create = R"({"type":"response.create","event_id":"r1"})";
  const char* append = R"({"type":"input_audio_buffer.append","audio":"AAAA"})";
  g_object_set(h_.element(), "budget-exceeded", TRUE, nullptr);
  EXPECT_EQ(process(create), std::nullopt);
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "reason"), "budget");
  EXPECT_EQ(str_field(d, "rule"), "budget");
  EXPECT_EQ(str_field(d, "event-id"), "r1");
  EXPECT_EQ(process(append), append);
  EXPECT_TRUE(decisions().empty());
  g_object_set(h_.element(), "budget-exceeded", FALSE, nullptr);
  EXPECT_EQ(process(create), create);
}

TEST_F(RtEventFilterTest, AllowedModelsCoverTheTranscriptionModel) {
  const char* other = R"({"type":"session.update","event_id":"s1","session":{"audio":{"input":)"
                      R"({"transcription":{"model":"gpt-4o-transcribe"}}}}})";
  const char* own = R"({"type":"session.update","session":{"input_audio_transcription":)"
                    R"({"model":"gpt-realtime-mini"}}})";
  EXPECT_EQ(process(other), other);  // default "": any model
  g_object_set(h_.element(), "allowed-models", "gpt-realtime*,echo", nullptr);
  EXPECT_EQ(get_string_property(h_.element(), "allowed-models"), "gpt-realtime*,echo");
  EXPECT_EQ(process(other), std::nullopt);
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "reason"), "model_not_allowed");
  EXPECT_EQ(str_field(d, "rule"), "models");
  EXPECT_EQ(str_field(d, "event-id"), "s1");
  EXPECT_EQ(process(own), own);
  EXPECT_TRUE(decisions().empty());
}

// Issue 24: reasoning_effort rules through the element. `lower` rewrites the value in the buffer
// that goes on and posts a "lower" decision; `block` drops the event.
TEST_F(RtEventFilterTest, ReasoningEffortIsLoweredOrBlocked) {
  set_policy(R"({"reasoning_effort":[{"max":"low","action":"block","keys":["team-b"]},)"
             R"({"max":"medium","action":"lower"}]})");
  set("key-name", "team-a");
  const std::string in = R"({"type":"session.update","session":{"reasoning":{"effort":"xhigh"},)"
                         R"("voice":{"id":"voice_1"}}})";
  EXPECT_EQ(process(in), std::string(R"({"type":"session.update","session":{"reasoning":)"
                                     R"({"effort":"medium"},"voice":{"id":"voice_1"}}})"));
  const GstStructure* d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "lower");
  EXPECT_EQ(str_field(d, "reason"), "reasoning_effort");
  EXPECT_EQ(str_field(d, "rule"), "reasoning_effort[1]");
  set("key-name", "team-b");
  EXPECT_EQ(process(in), std::nullopt);
  d = one_decision();
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "rule"), "reasoning_effort[0]");
}

TEST_F(RtEventFilterTest, InvalidPolicyKeepsThePreviousOne) {
  set_policy(kBlockPriority);
  pop_messages(h_.bus(), GST_MESSAGE_WARNING);
  set_policy(R"({"service_tier":[{"tier":"priority","action":"allow"}]})");
  EXPECT_EQ(get_string_property(h_.element(), "policy"), kBlockPriority);
  const auto warnings = pop_messages(h_.bus(), GST_MESSAGE_WARNING);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(process(R"({"type":"response.create","response":{"service_tier":"priority"}})"),
            std::nullopt);
  set_policy("{ not json");
  EXPECT_EQ(get_string_property(h_.element(), "policy"), kBlockPriority);
}

TEST_F(RtEventFilterTest, DecisionStringsAreValidUtf8) {
  set_policy(R"({"deny_client_events":[{"type":"*"}]})");
  EXPECT_EQ(process("{\"type\":\"bad\\udc00\",\"event_id\":\"id\\u0000x\"}"), std::nullopt);
  const GstStructure* d = one_decision();
  const std::string type = str_field(d, "event-type");
  EXPECT_TRUE(g_utf8_validate(type.data(), static_cast<gssize>(type.size()), nullptr));
  EXPECT_EQ(str_field(d, "event-id"), "id\xEF\xBF\xBDx");
}

}  // namespace
}  // namespace rtgw::rtevents::test
