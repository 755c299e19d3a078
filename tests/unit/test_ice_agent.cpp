// SPDX-License-Identifier: MIT
// The shared ICE agent (webrtc/ice_agent.h): installed as webrtcbin's agent, consent freshness
// on, every agent on the one shared context, no thread per webrtcbin.
#include <gst/gst.h>
#include <gst/webrtc/nice/nice.h>
#include <gtest/gtest.h>
#include <nice/agent.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/ref.h"
#include "webrtc/ice_agent.h"
#include "webrtc/ice_context.h"

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
