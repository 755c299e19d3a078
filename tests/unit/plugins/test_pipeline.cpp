// SPDX-License-Identifier: MIT
// The elements in the shape the server uses (SPEC "Custom GStreamer elements"): both event paths
// of a call and of a WebSocket session, rteventsrc → rteventfilter → rtusagemeter(client) →
// appsink and rteventsrc → rtusagemeter(upstream) → appsink, built from the real descriptions in
// pipelines/ (the ones the gateway loads), plus the meter's peer found across bins.
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "test_util.h"

namespace rtgw::rtevents::test {
namespace {

// A description file as the gateway reads it (common/pipeline.cpp): '#' lines dropped.
std::string load_description(const std::string& file) {
  std::string path = std::string(RTGW_PIPELINES_DIR) + "/" + file;
  gchar* contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(path.c_str(), &contents, &length, nullptr)) return {};
  std::istringstream in(std::string(contents, length));
  g_free(contents);
  std::string line, out;
  while (std::getline(in, line)) {
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    out += line + "\n";
  }
  return out;
}

class EventPathFixture : public ::testing::Test {
 protected:
  // Builds `description`, sets the policy as the gateway does, and plays it.
  void start(const std::string& description) {
    ASSERT_FALSE(description.empty()) << "cannot read the description";
    UniqueError error;
    GError* raw = nullptr;
    pipeline_ = Ref<GstElement>::sink(gst_parse_launch(description.c_str(), &raw));
    error.reset(raw);
    ASSERT_TRUE(pipeline_) << (error ? error->message : "no pipeline");
    ASSERT_FALSE(error) << error->message;
    ASSERT_TRUE(GST_IS_PIPELINE(pipeline_.get()));
    // The ends and elements the gateway looks up by name (events/event_path.h).
    for (const char* name : {"client_events_in", "client_events_filter", "upstream_events_out",
                             "upstream_events_in", "upstream_events_meter", "client_events_out"})
      ASSERT_TRUE(element(name)) << "no element named " << name;
    g_object_set(element("client_events_filter"), "policy",
                 R"({"service_tier":[{"tier":"priority","action":"pass",
                     "models":["gpt-realtime-mini"],"fallback":"block","end_call":true}]})",
                 "key-name", "team-a", "model", "gpt-realtime-mini", nullptr);
    bus_ = Ref<GstBus>::adopt(gst_element_get_bus(pipeline_.get()));
    ASSERT_NE(gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    GstState state = GST_STATE_NULL;
    gst_element_get_state(pipeline_.get(), &state, nullptr, 5 * GST_SECOND);
    ASSERT_EQ(state, GST_STATE_PLAYING);
  }
  void TearDown() override {
    if (pipeline_) gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  }

  GstElement* element(const char* name) {
    elements_.push_back(
        Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline_.get()), name)));
    return elements_.back().get();
  }
  // As the gateway pushes (events/event_path.cpp): the source's push-buffer action signal.
  void push(const char* source, std::string_view event) {
    GstFlowReturn ret = GST_FLOW_ERROR;
    g_signal_emit_by_name(element(source), "push-buffer", make_buffer(event).get(), &ret);
    ASSERT_EQ(ret, GST_FLOW_OK);
  }
  // The next event out of `appsink`, "" after a second without one.
  std::string pull(const char* appsink) {
    const auto sample = Ref<GstSample>::adopt(
        gst_app_sink_try_pull_sample(GST_APP_SINK(element(appsink)), GST_SECOND));
    return sample ? buffer_text(gst_sample_get_buffer(sample.get())) : "";
  }
  // Waits up to a second for an element message named `name`.
  Ref<GstMessage> wait_message(const char* name) {
    const gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;
    while (g_get_monotonic_time() < deadline) {
      auto msg = Ref<GstMessage>::adopt(gst_bus_timed_pop_filtered(
          bus_.get(), 10 * GST_MSECOND,
          static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_ERROR)));
      if (!msg) continue;
      EXPECT_NE(GST_MESSAGE_TYPE(msg.get()), GST_MESSAGE_ERROR);
      const GstStructure* s = gst_message_get_structure(msg.get());
      if (s && gst_structure_has_name(s, name)) return msg;
    }
    return nullptr;
  }

  Ref<GstElement> pipeline_;
  Ref<GstBus> bus_;
  std::vector<Ref<GstElement>> elements_;
};

class RtEventsPipelineTest : public EventPathFixture,
                             public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override { start(load_description(GetParam())); }
};

TEST_P(RtEventsPipelineTest, BothEventPaths) {
  const char* create = R"({"type":"response.create","response":{"service_tier":"Priority"}})";
  push("client_events_in", create);
  // No rule: the tier passes, normalized (SPEC "Policy").
  EXPECT_EQ(pull("upstream_events_out"),
            R"({"type":"response.create","response":{"service_tier":"priority"}})");

  g_usleep(20 * G_USEC_PER_SEC / 1000);
  push("upstream_events_in", R"({"type":"response.created","response":{"id":"r1"}})");
  push("upstream_events_in",
       R"({"type":"response.output_text.delta","response_id":"r1","delta":"x"})");
  push("upstream_events_in",
       R"({"type":"response.done","response":{"id":"r1","status":"completed",)"
       R"("usage":{"input_tokens":3,"output_tokens":5,"total_tokens":8}}})");
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(pull("client_events_out").empty());
  const Ref<GstMessage> turn = wait_message("rtusage-turn");
  ASSERT_TRUE(turn);
  const GstStructure* t = structure(turn);
  EXPECT_EQ(str_field(t, "response-id"), "r1");
  EXPECT_EQ(str_field(t, "service-tier"), "priority");
  EXPECT_EQ(int64_field(t, "total-tokens"), 8);
  EXPECT_GE(double_field(t, "first-token-latency-ms"), 15.0);
  EXPECT_GE(double_field(t, "turn-duration-ms"), double_field(t, "first-token-latency-ms"));

  // The model switch makes the next priority request hit the fallback: blocked, call ends.
  const char* update = R"({"type":"session.update","session":{"model":"gpt-realtime"}})";
  push("client_events_in", update);
  EXPECT_EQ(pull("upstream_events_out"), update);
  push("client_events_in",
       R"({"type":"response.create","event_id":"c9","response":{"service_tier":"fast"}})");
  const Ref<GstMessage> decision = wait_message("rtevent-decision");
  ASSERT_TRUE(decision);
  const GstStructure* d = structure(decision);
  EXPECT_EQ(str_field(d, "action"), "block");
  EXPECT_EQ(str_field(d, "event-id"), "c9");
  EXPECT_EQ(str_field(d, "model"), "gpt-realtime");
  EXPECT_TRUE(bool_field(d, "end-call"));
  const char* next = R"({"type":"input_audio_buffer.clear"})";
  push("client_events_in", next);
  EXPECT_EQ(pull("upstream_events_out"), next);  // the blocked event never came out

  EXPECT_EQ(get_uint64_property(element("upstream_events_meter"), "turns"), 1u);
  EXPECT_EQ(get_uint64_property(element("client_events_filter"), "events-blocked"), 1u);
}

// Both transports load their event path from these files: each must carry it whole.
INSTANTIATE_TEST_SUITE_P(RealDescriptions, RtEventsPipelineTest,
                         ::testing::Values("call.pipeline", "session.pipeline"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           return name.substr(0, name.find('.'));
                         });

// The client path in a bin of its own: the meter finds its peer by searching up the bin tree.
class RtEventsNestedBinTest : public EventPathFixture {
 protected:
  void SetUp() override {
    // appsinks are async=false: each path only carries data when there is an event, so neither
    // may hold the pipeline's state change waiting for a first buffer.
    start(
        "( name=client_path "
        "  appsrc name=client_events_in is-live=true format=time "
        "    caps=application/x-realtime-event ! "
        "  rteventfilter name=client_events_filter ! "
        "  rtusagemeter name=meter_client direction=client peer=upstream_events_meter ! "
        "  appsink name=upstream_events_out sync=false async=false ) "
        "appsrc name=upstream_events_in is-live=true format=time "
        "  caps=application/x-realtime-event ! "
        "rtusagemeter name=upstream_events_meter ! "
        "appsink name=client_events_out sync=false async=false");
  }
};

TEST_F(RtEventsNestedBinTest, MeterFindsItsPeerAcrossBins) {
  const auto parent =
      Ref<GstObject>::adopt(gst_object_get_parent(GST_OBJECT(element("meter_client"))));
  ASSERT_TRUE(parent);
  ASSERT_STREQ(GST_OBJECT_NAME(parent.get()), "client_path");
  push("client_events_in", R"({"type":"response.create","response":{"service_tier":"Priority"}})");
  EXPECT_FALSE(pull("upstream_events_out").empty());
  push("upstream_events_in", R"({"type":"response.created","response":{"id":"r1"}})");
  push("upstream_events_in",
       R"({"type":"response.done","response":{"id":"r1","status":"completed",)"
       R"("usage":{"input_tokens":3,"output_tokens":5,"total_tokens":8}}})");
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(pull("client_events_out").empty());
  const Ref<GstMessage> turn = wait_message("rtusage-turn");
  ASSERT_TRUE(turn);
  // The tier came from the client's request, through the peer found across the bin.
  EXPECT_EQ(str_field(structure(turn), "service-tier"), "priority");
}

}  // namespace
}  // namespace rtgw::rtevents::test
