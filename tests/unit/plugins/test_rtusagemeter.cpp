// SPDX-License-Identifier: MIT
// rtusagemeter through GstHarness: rtusage-turn messages, latency fields and the client/upstream
// peer pair inside a bin.
#include <gtest/gtest.h>

#include <string>

#include "rtevents/usage.h"
#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

constexpr const char* kCreated =
    R"({"type":"response.created","response":{"id":"resp_1","status":"in_progress"}})";
constexpr const char* kDelta =
    R"({"type":"response.output_audio_transcript.delta","response_id":"resp_1","delta":"Hi"})";
constexpr const char* kFullDone = R"({"type":"response.done","event_id":"evt_9","response":{
  "id":"resp_1","status":"completed","output":[],
  "usage":{"total_tokens":330,"input_tokens":120,"output_tokens":210,
           "input_token_details":{"text_tokens":20,"audio_tokens":90,"image_tokens":4,
                                  "cached_tokens":64,"cached_tokens_details":{"text_tokens":40,
                                  "audio_tokens":24,"image_tokens":0}},
           "output_token_details":{"text_tokens":50,"audio_tokens":160}}}})";

const char* const kTokenFields[] = {
    "input-tokens",        "output-tokens",      "total-tokens",
    "input-text-tokens",   "input-audio-tokens", "input-image-tokens",
    "input-cached-tokens", "output-text-tokens", "output-audio-tokens",
};

void sleep_ms(int ms) { g_usleep(static_cast<gulong>(ms) * 1000); }

class RtUsageMeterTest : public ::testing::Test {
 protected:
  RtUsageMeterTest() : h_("rtusagemeter") {}

  // Pushes an event and checks it came out untouched.
  void pass(std::string_view event) { EXPECT_EQ(h_.process(event), std::string(event)); }
  std::vector<Ref<GstMessage>> turns() { return pop_element_messages(h_.bus(), "rtusage-turn"); }

  ElementHarness h_;
};

TEST_F(RtUsageMeterTest, FullUsage) {
  pass(kCreated);
  pass(kDelta);
  pass(kFullDone);
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  const GstStructure* s = structure(msgs[0]);
  EXPECT_EQ(str_field(s, "response-id"), "resp_1");
  EXPECT_EQ(str_field(s, "status"), "completed");
  EXPECT_TRUE(bool_field(s, "usage-present"));
  EXPECT_EQ(int64_field(s, "input-tokens"), 120);
  EXPECT_EQ(int64_field(s, "output-tokens"), 210);
  EXPECT_EQ(int64_field(s, "total-tokens"), 330);
  EXPECT_EQ(int64_field(s, "input-text-tokens"), 20);
  EXPECT_EQ(int64_field(s, "input-audio-tokens"), 90);
  EXPECT_EQ(int64_field(s, "input-image-tokens"), 4);
  EXPECT_EQ(int64_field(s, "input-cached-tokens"), 64);
  EXPECT_TRUE(bool_field(s, "input-cached-details-present"));
  EXPECT_EQ(int64_field(s, "input-cached-text-tokens"), 40);
  EXPECT_EQ(int64_field(s, "input-cached-audio-tokens"), 24);
  EXPECT_EQ(int64_field(s, "input-cached-image-tokens"), 0);
  EXPECT_EQ(str_field(s, "kind"), "response");
  EXPECT_EQ(str_field(s, "item-id"), "");
  EXPECT_EQ(double_field(s, "transcription-seconds"), 0.0);
  EXPECT_EQ(int64_field(s, "output-text-tokens"), 50);
  EXPECT_EQ(int64_field(s, "output-audio-tokens"), 160);
  EXPECT_EQ(str_field(s, "service-tier"), "");
  EXPECT_GE(double_field(s, "first-token-latency-ms"), 0.0);
  EXPECT_GE(double_field(s, "turn-duration-ms"), double_field(s, "first-token-latency-ms"));

  EXPECT_EQ(get_uint64_property(h_.element(), "turns"), 1u);
  EXPECT_EQ(get_uint64_property(h_.element(), "input-tokens-total"), 120u);
  EXPECT_EQ(get_uint64_property(h_.element(), "output-tokens-total"), 210u);
}

// SPEC "Transcription sessions": every transcription completed with usage is a turn, in any
// session, token-billed or duration-billed; without usage it is not metered.
TEST_F(RtUsageMeterTest, TranscriptionTurns) {
  pass(R"({"type":"conversation.item.input_audio_transcription.completed","item_id":"item_1",)"
       R"("content_index":0,"transcript":"hello","usage":{"type":"tokens","input_tokens":14,)"
       R"("output_tokens":3,"total_tokens":17,"input_token_details":{"audio_tokens":12,)"
       R"("text_tokens":2}}})");
  pass(R"({"type":"conversation.item.input_audio_transcription.completed","item_id":"item_2",)"
       R"("transcript":"hi","usage":{"type":"duration","seconds":2.5}})");
  pass(R"({"type":"conversation.item.input_audio_transcription.completed","item_id":"item_3",)"
       R"("transcript":"no usage"})");
  pass(R"({"type":"conversation.item.input_audio_transcription.delta","item_id":"item_4",)"
       R"("delta":"x"})");
  // A transcription in the middle of a response does not disturb the response's turn.
  pass(kCreated);
  pass(R"({"type":"conversation.item.input_audio_transcription.completed","item_id":"item_5",)"
       R"("usage":{"type":"duration","seconds":1}})");
  pass(kFullDone);
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 4u);
  const GstStructure* tokens = structure(msgs[0]);
  EXPECT_EQ(str_field(tokens, "kind"), "transcription");
  EXPECT_EQ(str_field(tokens, "item-id"), "item_1");
  EXPECT_EQ(str_field(tokens, "response-id"), "");
  EXPECT_TRUE(bool_field(tokens, "usage-present"));
  EXPECT_EQ(int64_field(tokens, "input-tokens"), 14);
  EXPECT_EQ(int64_field(tokens, "output-tokens"), 3);
  EXPECT_EQ(int64_field(tokens, "total-tokens"), 17);
  EXPECT_EQ(int64_field(tokens, "input-audio-tokens"), 12);
  EXPECT_EQ(int64_field(tokens, "input-text-tokens"), 2);
  EXPECT_EQ(double_field(tokens, "transcription-seconds"), 0.0);
  EXPECT_FALSE(bool_field(tokens, "input-cached-details-present"));
  const GstStructure* duration = structure(msgs[1]);
  EXPECT_EQ(str_field(duration, "kind"), "transcription");
  EXPECT_EQ(str_field(duration, "item-id"), "item_2");
  EXPECT_EQ(double_field(duration, "transcription-seconds"), 2.5);
  EXPECT_EQ(int64_field(duration, "total-tokens"), 0);
  EXPECT_EQ(str_field(structure(msgs[2]), "item-id"), "item_5");
  EXPECT_EQ(double_field(structure(msgs[2]), "transcription-seconds"), 1.0);
  EXPECT_EQ(str_field(structure(msgs[3]), "kind"), "response");
  EXPECT_EQ(str_field(structure(msgs[3]), "response-id"), "resp_1");
  EXPECT_EQ(get_uint64_property(h_.element(), "turns"), 4u);
  EXPECT_EQ(get_uint64_property(h_.element(), "input-tokens-total"), 134u);
}

// Translation sessions: continuous usage on any session.* event that carries it (SPEC
// "Translation sessions"); no response.done ever comes.
TEST_F(RtUsageMeterTest, TranslationUsageIsContinuous) {
  pass(R"({"type":"session.created","event_id":"e0","session":{"type":"translation"}})");
  pass(R"({"type":"session.input_transcript.delta","event_id":"e1","delta":"Hola"})");
  pass(R"({"type":"session.output_transcript.delta","event_id":"e2","delta":"Hello",)"
       R"("usage":{"input_tokens":30,"output_tokens":45,"total_tokens":75,)"
       R"("input_token_details":{"audio_tokens":30},)"
       R"("output_token_details":{"audio_tokens":30,"text_tokens":15},"seconds":3}})");
  pass(R"({"type":"session.closed","event_id":"e3","usage":{"type":"tokens",)"
       R"("input_tokens":2,"seconds":0.5}})");
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 2u);
  const GstStructure* first = structure(msgs[0]);
  EXPECT_EQ(str_field(first, "kind"), "translation");
  EXPECT_EQ(str_field(first, "item-id"), "e2");
  EXPECT_EQ(str_field(first, "response-id"), "");
  EXPECT_EQ(int64_field(first, "input-tokens"), 30);
  EXPECT_EQ(int64_field(first, "total-tokens"), 75);
  EXPECT_EQ(int64_field(first, "output-text-tokens"), 15);
  EXPECT_EQ(double_field(first, "transcription-seconds"), 3.0);  // the report's audio seconds
  EXPECT_EQ(str_field(structure(msgs[1]), "item-id"), "e3");
  EXPECT_EQ(double_field(structure(msgs[1]), "transcription-seconds"), 0.5);
  EXPECT_EQ(get_uint64_property(h_.element(), "turns"), 2u);
}

TEST_F(RtUsageMeterTest, BuffersPassUntouchedInPlace) {
  const Ref<GstBuffer> in = make_buffer(kFullDone);
  ASSERT_EQ(h_.push(in), GST_FLOW_OK);
  const Ref<GstBuffer> out = h_.try_pull();
  ASSERT_TRUE(out);
  EXPECT_EQ(out.get(), in.get());  // the very same buffer
  pass("not json at all");
  pass("");
}

TEST_F(RtUsageMeterTest, MissingUsage) {
  pass(R"({"type":"response.created","response":{"id":"r2"}})");
  pass(R"({"type":"response.done","response":{"id":"r2","status":"cancelled"}})");
  pass(R"({"type":"response.done","response":{"id":"r3","status":"failed","usage":null}})");
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 2u);
  for (const auto& m : msgs) {
    const GstStructure* s = structure(m);
    EXPECT_FALSE(bool_field(s, "usage-present"));
    for (const char* f : kTokenFields) EXPECT_EQ(int64_field(s, f), 0) << f;
  }
  EXPECT_EQ(str_field(structure(msgs[0]), "status"), "cancelled");
  EXPECT_EQ(str_field(structure(msgs[1]), "response-id"), "r3");
  EXPECT_EQ(get_uint64_property(h_.element(), "turns"), 2u);
}

TEST_F(RtUsageMeterTest, OddFieldTypes) {
  pass(R"({"type":"response.done","response":{"id":7,"status":["x"],"usage":{
      "input_tokens":"12","output_tokens":3.5,"total_tokens":null,
      "input_token_details":"text","output_token_details":{"text_tokens":-4,"audio_tokens":true}}}})");
  pass(
      R"({"type":"response.done","response":{"id":"r5","usage":{"input_tokens":99999999999999999999,
      "output_tokens":7,"input_token_details":{"audio_tokens":{"n":1},"text_tokens":5}}}})");
  pass(R"({"type":"response.done","response":"not an object"})");
  pass(R"({"type":"response.done"})");
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 4u);
  const GstStructure* s = structure(msgs[0]);
  EXPECT_TRUE(bool_field(s, "usage-present"));
  for (const char* f : kTokenFields)
    EXPECT_EQ(int64_field(s, f), std::string(f) == "output-tokens" ? 4 : 0) << f;  // 3.5 rounds up
  EXPECT_FALSE(bool_field(s, "usage-clamped"));
  EXPECT_EQ(str_field(s, "response-id"), "");
  EXPECT_EQ(str_field(s, "status"), "");
  s = structure(msgs[1]);
  EXPECT_TRUE(bool_field(s, "usage-present"));
  // Too large for 64 bits: counted at the 10^9 cap and flagged, never read as 0 (issue 21).
  EXPECT_EQ(int64_field(s, "input-tokens"), 1000000000);
  EXPECT_TRUE(bool_field(s, "usage-clamped"));
  EXPECT_EQ(int64_field(s, "output-tokens"), 7);
  EXPECT_EQ(int64_field(s, "input-audio-tokens"), 0);
  EXPECT_EQ(int64_field(s, "input-text-tokens"), 5);
  EXPECT_FALSE(bool_field(structure(msgs[2]), "usage-present"));
  EXPECT_FALSE(bool_field(structure(msgs[3]), "usage-present"));
}

TEST_F(RtUsageMeterTest, HugeCountsAreCappedAndFlagged) {
  // An upstream reporting INT64_MAX wrapped a key's total and reset its budget (issue 21).
  pass(R"({"type":"response.done","response":{"id":"r1","usage":{
      "input_tokens":9223372036854775807,"output_tokens":1000000001,"total_tokens":1e30,
      "input_token_details":{"text_tokens":1000000000}}}})");
  pass(R"({"type":"response.done","response":{"id":"r2","usage":{"input_tokens":5}}})");
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 2u);
  const GstStructure* s = structure(msgs[0]);
  EXPECT_EQ(int64_field(s, "input-tokens"), 1000000000);
  EXPECT_EQ(int64_field(s, "output-tokens"), 1000000000);
  EXPECT_EQ(int64_field(s, "total-tokens"), 1000000000);
  EXPECT_EQ(int64_field(s, "input-text-tokens"), 1000000000);  // at the cap is not over it
  EXPECT_TRUE(bool_field(s, "usage-clamped"));
  EXPECT_FALSE(bool_field(structure(msgs[1]), "usage-clamped"));
  EXPECT_EQ(get_uint64_property(h_.element(), "input-tokens-total"), 1000000005u);
}

TEST_F(RtUsageMeterTest, LatencyFields) {
  // Delta seen: first token >= 0 and <= duration.
  pass(kCreated);
  sleep_ms(20);
  pass(kDelta);
  sleep_ms(20);
  pass(R"({"type":"response.output_audio_transcript.delta","response_id":"resp_1","delta":"!"})");
  pass(kFullDone);
  auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  double first = double_field(structure(msgs[0]), "first-token-latency-ms");
  double total = double_field(structure(msgs[0]), "turn-duration-ms");
  EXPECT_GE(first, 15.0);
  EXPECT_LT(first, total);
  EXPECT_GE(total, 35.0);

  // No delta: -1.
  pass(R"({"type":"response.created","response":{"id":"r2"}})");
  pass(R"({"type":"response.output_item.added","response_id":"r2"})");
  pass(R"({"type":"response.done","response":{"id":"r2","status":"completed"}})");
  msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(double_field(structure(msgs[0]), "first-token-latency-ms"), -1.0);
  EXPECT_GE(double_field(structure(msgs[0]), "turn-duration-ms"), 0.0);

  // Older delta names and text deltas count; a delta of another response opens that response's
  // own turn and does not touch this one.
  for (const char* type :
       {"response.audio.delta", "response.output_text.delta", "response.text.delta",
        "response.output_audio.delta", "response.function_call_arguments.delta"}) {
    pass(R"({"type":"response.created","response":{"id":"r3"}})");
    pass(R"({"type":"response.output_text.delta","response_id":"other","delta":"x"})");
    pass(R"({"type":"response.output_item.added","response_id":"r3"})");
    msgs = turns();
    ASSERT_TRUE(msgs.empty());
    pass(R"({"type":"response.done","response":{"id":"r3"}})");
    msgs = turns();
    ASSERT_EQ(msgs.size(), 1u) << type;
    EXPECT_EQ(double_field(structure(msgs[0]), "first-token-latency-ms"), -1.0) << type;
    pass(R"({"type":"response.created","response":{"id":"r4"}})");
    pass(std::string(R"({"type":")") + type + R"(","response_id":"r4","delta":"x"})");
    pass(R"({"type":"response.done","response":{"id":"r4"}})");
    pass(R"({"type":"response.done","response":{"id":"other"}})");
    msgs = turns();
    ASSERT_EQ(msgs.size(), 2u) << type;
    EXPECT_EQ(str_field(structure(msgs[0]), "response-id"), "r4");
    EXPECT_GE(double_field(structure(msgs[0]), "first-token-latency-ms"), 0.0) << type;
    EXPECT_EQ(str_field(structure(msgs[1]), "response-id"), "other");
    EXPECT_GE(double_field(structure(msgs[1]), "first-token-latency-ms"), 0.0) << type;
  }
}

TEST_F(RtUsageMeterTest, DoneWithoutCreatedIsMetered) {
  pass(kFullDone);
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  const GstStructure* s = structure(msgs[0]);
  EXPECT_EQ(int64_field(s, "input-tokens"), 120);
  EXPECT_EQ(double_field(s, "turn-duration-ms"), 0.0);
  EXPECT_EQ(double_field(s, "first-token-latency-ms"), -1.0);
}

TEST_F(RtUsageMeterTest, FlushForgetsOpenTurns) {
  pass(kCreated);
  sleep_ms(20);
  EXPECT_TRUE(gst_harness_push_event(h_.get(), gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h_.get(), gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  EXPECT_TRUE(gst_harness_push_event(h_.get(), gst_event_new_segment(&segment)));
  pass(kFullDone);  // its turn was forgotten: metered as a lone response.done
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(double_field(structure(msgs[0]), "turn-duration-ms"), 0.0);
}

TEST_F(RtUsageMeterTest, ClientDirectionOnlyNotes) {
  g_object_set(h_.element(), "direction", 1 /* client */, nullptr);
  pass(R"({"type":"response.create","response":{"service_tier":"priority"}})");
  pass(kFullDone);  // ignored in the client direction
  EXPECT_TRUE(turns().empty());
  EXPECT_EQ(get_uint64_property(h_.element(), "turns"), 0u);
}

// A client-direction and an upstream-direction meter in one bin, paired by `peer`.
class RtUsageMeterPairTest : public ::testing::Test {
 protected:
  void build(bool peer_on_client) {
    pipeline_ = Ref<GstElement>::sink(gst_pipeline_new("call"));
    GstElement* client = gst_element_factory_make("rtusagemeter", "meter_client");
    GstElement* upstream = gst_element_factory_make("rtusagemeter", "meter_upstream");
    ASSERT_TRUE(client && upstream);
    g_object_set(client, "direction", 1 /* client */, nullptr);
    if (peer_on_client) {
      g_object_set(client, "peer", "meter_upstream", nullptr);
    } else {
      g_object_set(upstream, "peer", "meter_client", nullptr);
    }
    gst_bin_add_many(GST_BIN(pipeline_.get()), client, upstream, nullptr);
    // Upstream first, so a peer set on the upstream side links the client before it starts.
    up_ = std::make_unique<ElementHarness>(upstream);
    client_ = std::make_unique<ElementHarness>(client);
    bus_ = Ref<GstBus>::adopt(gst_pipeline_get_bus(GST_PIPELINE(pipeline_.get())));
  }
  void TearDown() override {
    client_.reset();
    up_.reset();
    if (pipeline_) gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  }
  std::vector<Ref<GstMessage>> turns() { return pop_element_messages(bus_.get(), "rtusage-turn"); }
  void to_upstream(std::string_view e) { EXPECT_EQ(client_->process(e), std::string(e)); }
  void to_client(std::string_view e) { EXPECT_EQ(up_->process(e), std::string(e)); }

  Ref<GstElement> pipeline_;
  Ref<GstBus> bus_;
  std::unique_ptr<ElementHarness> client_, up_;
};

TEST_F(RtUsageMeterPairTest, RequestToDoneViaThePeer) {
  build(true);
  to_upstream(R"({"type":"session.update","session":{"service_tier":"Flex"}})");
  to_upstream(
      R"({"type":"response.create","event_id":"c1","response":{"service_tier":"priority"}})");
  sleep_ms(30);
  to_client(kCreated);
  sleep_ms(10);
  to_client(kDelta);
  to_client(kFullDone);
  auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  const GstStructure* s = structure(msgs[0]);
  EXPECT_EQ(str_field(s, "service-tier"), "priority");
  EXPECT_GE(double_field(s, "first-token-latency-ms"), 35.0);  // measured from response.create
  EXPECT_GE(double_field(s, "turn-duration-ms"), 35.0);

  // No tier on the request: the session's last sent tier.
  to_upstream(R"({"type":"response.create","event_id":"c2"})");
  to_client(R"({"type":"response.created","response":{"id":"r2"}})");
  to_client(R"({"type":"response.done","response":{"id":"r2"}})");
  msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(str_field(structure(msgs[0]), "service-tier"), "flex");

  // A server-initiated response (no request): request time = response.created, session tier.
  to_client(R"({"type":"response.created","response":{"id":"r3"}})");
  sleep_ms(20);
  to_client(R"({"type":"response.done","response":{"id":"r3"}})");
  msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(str_field(structure(msgs[0]), "service-tier"), "flex");
  EXPECT_GE(double_field(structure(msgs[0]), "turn-duration-ms"), 15.0);

  // A request answered by an error does not pair with the next response.
  to_upstream(R"({"type":"response.create","event_id":"c4","response":{"service_tier":"auto"}})");
  to_client(R"({"type":"error","error":{"type":"invalid_request_error","event_id":"c4"}})");
  to_client(R"({"type":"response.created","response":{"id":"r4"}})");
  to_client(R"({"type":"response.done","response":{"id":"r4"}})");
  msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(str_field(structure(msgs[0]), "service-tier"), "flex");

  // A response.done with nothing before it takes the pending request.
  to_upstream(R"({"type":"response.create","response":{"service_tier":"default"}})");
  sleep_ms(20);
  to_client(R"({"type":"response.done","response":{"id":"r5"}})");
  msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(str_field(structure(msgs[0]), "service-tier"), "default");
  EXPECT_GE(double_field(structure(msgs[0]), "turn-duration-ms"), 15.0);
}

TEST_F(RtUsageMeterPairTest, PeerNamedFromTheUpstreamSide) {
  build(false);
  to_upstream(R"({"type":"response.create","response":{"service_tier":"fast"}})");
  to_client(kCreated);
  to_client(kFullDone);
  const auto msgs = turns();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(str_field(structure(msgs[0]), "service-tier"), "priority");
}

TEST(RtUsageMeterPeer, MissingPeerWarns) {
  const auto pipeline = Ref<GstElement>::sink(gst_pipeline_new("call"));
  GstElement* meter = gst_element_factory_make("rtusagemeter", "m");
  g_object_set(meter, "direction", 1, "peer", "nobody", nullptr);
  gst_bin_add(GST_BIN(pipeline.get()), meter);
  {
    ElementHarness h(meter);
    EXPECT_EQ(h.process(R"({"type":"response.create"})"), R"({"type":"response.create"})");
  }
  const auto bus = Ref<GstBus>::adopt(gst_pipeline_get_bus(GST_PIPELINE(pipeline.get())));
  EXPECT_EQ(pop_messages(bus.get(), GST_MESSAGE_WARNING).size(), 1u);
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
}

TEST(RtUsageLogic, StaleRequestsAndCaps) {
  UsageLink link;
  for (int i = 0; i < 100; ++i) link.push_request({i, "t" + std::to_string(i), ""});
  EXPECT_EQ(link.pending(), UsageLink::kMaxPending);
  const auto r = link.pop_request(UsageLink::kStaleRequestUs + 50);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tier, "t50");  // t36..t49 were stale, t0..t35 dropped by the cap
  EXPECT_FALSE(link.pop_request(UsageLink::kStaleRequestUs * 3));
}

}  // namespace
}  // namespace rtgw::rtevents::test
