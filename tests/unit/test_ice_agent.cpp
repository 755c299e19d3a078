// SPDX-License-Identifier: MIT
// The shared ICE agent (webrtc/ice_agent.h): installed as webrtcbin's agent, consent freshness
// on, every agent on the one shared context, no thread per webrtcbin.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/webrtc/nice/nice.h>
#include <gtest/gtest.h>
#include <nice/agent.h>
#include <pthread.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/ref.h"
#include "webrtc/ice_agent.h"
#include "webrtc/ice_context.h"
#include "webrtc/ice_source.h"

namespace {

using rtgw::Ref;

int thread_count() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

class IceAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gst_init(nullptr, nullptr);
    ASSERT_EQ(rtgw::webrtc::install_shared_ice_agent(), "");
    ASSERT_TRUE(rtgw::webrtc::shared_ice_agent_installed());
  }

  static Ref<GstElement> make_webrtcbin(const char* name) {
    GstElement* raw = gst_element_factory_make("webrtcbin", name);
    EXPECT_NE(raw, nullptr);
    return Ref<GstElement>::sink(raw);
  }

  static Ref<GstWebRTCICE> agent_of(GstElement* webrtcbin) {
    Ref<GstWebRTCICE> ice;
    g_object_get(webrtcbin, "ice-agent", ice.out(), nullptr);
    return ice;
  }
};

TEST_F(IceAgentTest, LayoutOfThisGStreamerMatches) {
  EXPECT_EQ(rtgw::webrtc::check_nice_layout(), "");
}

TEST_F(IceAgentTest, WebrtcbinGetsTheSharedConsentFreshAgent) {
  auto bin = make_webrtcbin("leg");
  auto ice = agent_of(bin.get());
  ASSERT_TRUE(ice);
  EXPECT_STREQ(G_OBJECT_TYPE_NAME(ice.get()), "RtgwSharedIce");
  ASSERT_TRUE(GST_IS_WEBRTC_NICE(ice.get()));  // the settings code (upnp, ports...) applies
  EXPECT_STREQ(GST_OBJECT_NAME(ice.get()), "leg:ice");
  Ref<GObject> agent;
  g_object_get(ice.get(), "agent", agent.out(), nullptr);
  ASSERT_TRUE(agent);
  gboolean consent = FALSE;
  GMainContext* context = nullptr;  // a pointer property: no reference
  g_object_get(agent.get(), "consent-freshness", &consent, "main-context", &context, nullptr);
  EXPECT_TRUE(consent);
  EXPECT_EQ(context, rtgw::webrtc::shared_ice_context());
  // Another webrtcbin: another agent, on the same context.
  auto other = make_webrtcbin("other");
  auto other_ice = agent_of(other.get());
  ASSERT_TRUE(other_ice);
  EXPECT_NE(other_ice.get(), ice.get());
  Ref<GObject> other_agent;
  g_object_get(other_ice.get(), "agent", other_agent.out(), nullptr);
  GMainContext* other_context = nullptr;
  g_object_get(other_agent.get(), "main-context", &other_context, nullptr);
  EXPECT_EQ(other_context, context);
}

TEST_F(IceAgentTest, WebrtcbinsAddNoIceThread) {
  make_webrtcbin("warm");  // the shared thread exists from here on
  int before = thread_count();
  {
    std::vector<Ref<GstElement>> bins;
    for (int i = 0; i < 10; ++i) bins.push_back(make_webrtcbin(nullptr));
    EXPECT_EQ(thread_count(), before);
  }
  // Webrtcbin's own agent, for comparison: a thread each.
  {
    std::vector<Ref<GstWebRTCNice>> stock;
    for (int i = 0; i < 3; ++i)
      stock.push_back(Ref<GstWebRTCNice>::sink(gst_webrtc_nice_new("stock")));
    EXPECT_EQ(thread_count(), before + 3);
  }
}

TEST_F(IceAgentTest, AnAgentGivenByTheCallerIsKept) {
  auto factory = Ref<GstElementFactory>::adopt(gst_element_factory_find("webrtcbin"));
  ASSERT_TRUE(factory);
  GType type = gst_element_factory_get_element_type(factory.get());
  ASSERT_NE(type, G_TYPE_INVALID);
  GstWebRTCNice* mine = gst_webrtc_nice_new("mine");  // webrtcbin keeps this reference
  auto bin = Ref<GstElement>::sink(GST_ELEMENT(g_object_new(type, "ice-agent", mine, nullptr)));
  auto ice = agent_of(bin.get());
  EXPECT_EQ(static_cast<gpointer>(ice.get()), static_cast<gpointer>(mine));
  EXPECT_STREQ(G_OBJECT_TYPE_NAME(ice.get()), "GstWebRTCNice");
}

}  // namespace

namespace {

// Two libnice agents on the shared context, connected on loopback; `rtgwicesrc` on the receiving
// one pushes what the other sends, from the `rtgw-ice` thread, into an appsink.
struct LoopbackPair {
  Ref<GObject> a, b;
  guint sa = 0, sb = 0;

  static Ref<GObject> make(bool controlling) {
    auto agent = Ref<GObject>::adopt(G_OBJECT(
        nice_agent_new_full(rtgw::webrtc::shared_ice_context(), NICE_COMPATIBILITY_RFC5245,
                            static_cast<NiceAgentOption>(NICE_AGENT_OPTION_CONSENT_FRESHNESS))));
    g_object_set(agent.get(), "upnp", FALSE, "ice-tcp", FALSE, "controlling-mode", controlling,
                 nullptr);
    NiceAddress loopback;
    nice_address_init(&loopback);
    nice_address_set_from_string(&loopback, "127.0.0.1");
    nice_agent_add_local_address(NICE_AGENT(agent.get()), &loopback);
    return agent;
  }

  static void exchange(NiceAgent* from, guint from_stream, NiceAgent* to, guint to_stream) {
    gchar* ufrag = nullptr;
    gchar* pwd = nullptr;
    ASSERT_TRUE(nice_agent_get_local_credentials(from, from_stream, &ufrag, &pwd));
    nice_agent_set_remote_credentials(to, to_stream, ufrag, pwd);
    g_free(ufrag);
    g_free(pwd);
    GSList* candidates = nice_agent_get_local_candidates(from, from_stream, 1);
    ASSERT_NE(candidates, nullptr);
    nice_agent_set_remote_candidates(to, to_stream, 1, candidates);
    g_slist_free_full(candidates, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
  }
};

void ignore_receive(NiceAgent*, guint, guint, guint, gchar*, gpointer) {}

TEST_F(IceAgentTest, SourcePushesWhatLibniceReceivesFromTheSharedThread) {
  LoopbackPair p;
  p.a = LoopbackPair::make(true);
  p.b = LoopbackPair::make(false);
  auto* a = NICE_AGENT(p.a.get());
  auto* b = NICE_AGENT(p.b.get());
  p.sa = nice_agent_add_stream(a, 1);
  p.sb = nice_agent_add_stream(b, 1);
  // The sender's own receive path must be attached for its checks to be answered.
  nice_agent_attach_recv(a, p.sa, 1, rtgw::webrtc::shared_ice_context(), ignore_receive, nullptr);

  auto pipeline = Ref<GstElement>::sink(gst_pipeline_new("ice-source-test"));
  auto* src = rtgw::webrtc::ice_source_new(G_OBJECT(b), p.sb, 1);
  ASSERT_NE(src, nullptr);
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  g_object_set(sink, "sync", FALSE, "emit-signals", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
  ASSERT_TRUE(gst_element_link(src, sink));
  static std::string pushed_on;
  pushed_on.clear();
  auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(src, "src"));
  gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad*, GstPadProbeInfo*, gpointer) {
        char name[32] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        pushed_on = name;
        return GST_PAD_PROBE_OK;
      },
      nullptr, nullptr);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  ASSERT_TRUE(nice_agent_gather_candidates(a, p.sa));
  ASSERT_TRUE(nice_agent_gather_candidates(b, p.sb));
  LoopbackPair::exchange(a, p.sa, b, p.sb);
  LoopbackPair::exchange(b, p.sb, a, p.sa);

  const char payload[] = "rtp-ish";
  GstSample* sample = nullptr;
  for (int i = 0; i < 100 && !sample; ++i) {  // bounded: 5 s
    nice_agent_send(a, p.sa, 1, sizeof payload, payload);
    sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 50 * GST_MSECOND);
  }
  ASSERT_NE(sample, nullptr) << "nothing received in 5 s";
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  EXPECT_EQ(gst_buffer_get_size(buffer), sizeof payload);
  EXPECT_EQ(gst_buffer_memcmp(buffer, 0, payload, sizeof payload), 0);
  gst_sample_unref(sample);
  EXPECT_EQ(pushed_on, "rtgw-ice");
  auto* factory = gst_element_get_factory(src);
  ASSERT_NE(factory, nullptr);
  EXPECT_STREQ(GST_OBJECT_NAME(factory), "rtgwicesrc");  // calls/peer_liveness finds it
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
}

}  // namespace
