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
  unsigned n = rtgw::webrtc::ice_context_count();
  unsigned index = n;  // which of the process's ICE contexts (ice_context.h)
  for (unsigned i = 0; i < n; ++i)
    if (context == rtgw::webrtc::ice_context(i)) index = i;
  ASSERT_LT(index, n);
  // Another webrtcbin: another agent, on the next context (round robin; the same one if N = 1).
  auto other = make_webrtcbin("other");
  auto other_ice = agent_of(other.get());
  ASSERT_TRUE(other_ice);
  EXPECT_NE(other_ice.get(), ice.get());
  Ref<GObject> other_agent;
  g_object_get(other_ice.get(), "agent", other_agent.out(), nullptr);
  GMainContext* other_context = nullptr;
  g_object_get(other_agent.get(), "main-context", &other_context, nullptr);
  EXPECT_EQ(other_context, rtgw::webrtc::ice_context((index + 1) % n));
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

  static Ref<GObject> make(bool controlling, unsigned context = 0) {
    auto agent = Ref<GObject>::adopt(G_OBJECT(
        nice_agent_new_full(rtgw::webrtc::ice_context(context), NICE_COMPATIBILITY_RFC5245,
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

// The sender on context `a_context`, the receiver (and its rtgwicesrc) on `b_context`; returns
// the name of the thread that pushed the received packet.
std::string push_through_source(unsigned a_context, unsigned b_context) {
  std::string failed = "(failed)";
  LoopbackPair p;
  p.a = LoopbackPair::make(true, a_context);
  p.b = LoopbackPair::make(false, b_context);
  auto* a = NICE_AGENT(p.a.get());
  auto* b = NICE_AGENT(p.b.get());
  p.sa = nice_agent_add_stream(a, 1);
  p.sb = nice_agent_add_stream(b, 1);
  // The sender's own receive path must be attached for its checks to be answered.
  nice_agent_attach_recv(a, p.sa, 1, rtgw::webrtc::ice_context(a_context), ignore_receive, nullptr);

  auto pipeline = Ref<GstElement>::sink(gst_pipeline_new("ice-source-test"));
  auto* src = rtgw::webrtc::ice_source_new(G_OBJECT(b), p.sb, 1);
  EXPECT_NE(src, nullptr);
  if (::testing::Test::HasFailure()) return failed;
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  g_object_set(sink, "sync", FALSE, "emit-signals", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, sink, nullptr);
  EXPECT_TRUE(gst_element_link(src, sink));
  if (::testing::Test::HasFailure()) return failed;
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
  EXPECT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  if (::testing::Test::HasFailure()) return failed;

  EXPECT_TRUE(nice_agent_gather_candidates(a, p.sa));
  EXPECT_TRUE(nice_agent_gather_candidates(b, p.sb));
  LoopbackPair::exchange(a, p.sa, b, p.sb);
  LoopbackPair::exchange(b, p.sb, a, p.sa);

  const char payload[] = "rtp-ish";
  GstSample* sample = nullptr;
  for (int i = 0; i < 100 && !sample; ++i) {  // bounded: 5 s
    nice_agent_send(a, p.sa, 1, sizeof payload, payload);
    sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 50 * GST_MSECOND);
  }
  if (!sample) {
    ADD_FAILURE() << "nothing received in 5 s";
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    return failed;
  }
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  EXPECT_EQ(gst_buffer_get_size(buffer), sizeof payload);
  EXPECT_EQ(gst_buffer_memcmp(buffer, 0, payload, sizeof payload), 0);
  gst_sample_unref(sample);
  auto* factory = gst_element_get_factory(src);
  EXPECT_TRUE(factory &&
              g_str_equal(GST_OBJECT_NAME(factory), "rtgwicesrc"));  // calls/peer_liveness finds it
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  return pushed_on;
}

TEST_F(IceAgentTest, SourcePushesWhatLibniceReceivesFromTheSharedThread) {
  EXPECT_EQ(push_through_source(0, 0), "rtgw-ice-0");
}

// With several ICE threads, rtgwicesrc receives on its agent's context (not the first one), from
// that context's thread, whatever context the sender is on.
TEST_F(IceAgentTest, SourcePushesFromItsAgentsContextThread) {
  unsigned n = rtgw::webrtc::ice_context_count();
  if (n < 2) GTEST_SKIP() << "one ICE thread on this machine";
  EXPECT_EQ(push_through_source(0, n - 1), "rtgw-ice-" + std::to_string(n - 1));
  EXPECT_EQ(push_through_source(n - 1, 1), "rtgw-ice-1");
}

// Each webrtcbin's agent takes the next ICE context: 2N webrtcbins use every one of the N
// contexts, twice each.
TEST_F(IceAgentTest, AgentsSpreadOverEveryIceContext) {
  unsigned n = rtgw::webrtc::ice_context_count();
  ASSERT_GE(n, 1u);
  std::vector<Ref<GstElement>> bins;
  std::vector<int> used(n, 0);
  for (unsigned i = 0; i < 2 * n; ++i) {
    bins.push_back(make_webrtcbin(("spread" + std::to_string(i)).c_str()));
    auto ice = agent_of(bins.back().get());
    ASSERT_TRUE(ice);
    Ref<GObject> agent;
    g_object_get(ice.get(), "agent", agent.out(), nullptr);
    GMainContext* context = nullptr;  // a pointer property: no reference
    g_object_get(agent.get(), "main-context", &context, nullptr);
    for (unsigned c = 0; c < n; ++c)
      if (context == rtgw::webrtc::ice_context(c)) ++used[c];
  }
  for (unsigned c = 0; c < n; ++c) EXPECT_EQ(used[c], 2) << "context " << c;
}

// What each of a pool's contexts dispatches runs on its own thread, `rtgw-ice-<i>`.
std::vector<std::string> dispatching_threads(rtgw::webrtc::IceContextPool& pool) {
  struct Seen {
    GMutex mutex;
    GCond cond;
    std::string name;
    bool done = false;
  };
  std::vector<std::string> names;
  for (unsigned i = 0; i < pool.count(); ++i) {
    Seen seen;
    g_mutex_init(&seen.mutex);
    g_cond_init(&seen.cond);
    g_main_context_invoke(
        pool.next(),
        [](gpointer data) -> gboolean {
          auto* s = static_cast<Seen*>(data);
          char name[32] = {};
          pthread_getname_np(pthread_self(), name, sizeof name);
          g_mutex_lock(&s->mutex);
          s->name = name;
          s->done = true;
          g_cond_signal(&s->cond);
          g_mutex_unlock(&s->mutex);
          return G_SOURCE_REMOVE;
        },
        &seen);
    gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;  // bounded
    g_mutex_lock(&seen.mutex);
    while (!seen.done && g_cond_wait_until(&seen.cond, &seen.mutex, deadline)) {
    }
    g_mutex_unlock(&seen.mutex);
    names.push_back(seen.done ? seen.name : "(nothing in 5 s)");
    g_mutex_clear(&seen.mutex);
    g_cond_clear(&seen.cond);
  }
  return names;
}

TEST(IceAgentContexts, EachContextRunsOnAThreadOfItsOwn) {
  int before = thread_count();
  {
    rtgw::webrtc::IceContextPool pool(3, true);
    EXPECT_EQ(pool.count(), 3u);
    EXPECT_EQ(thread_count(), before + 3);
    // Round robin: three distinct contexts, then the first again.
    GMainContext* first = pool.context(0);
    EXPECT_NE(pool.context(1), first);
    EXPECT_NE(pool.context(2), first);
    EXPECT_NE(pool.context(2), pool.context(1));
    EXPECT_EQ(dispatching_threads(pool),
              (std::vector<std::string>{"rtgw-ice-0", "rtgw-ice-1", "rtgw-ice-2"}));
    EXPECT_EQ(pool.next(), first);  // 3 taken by dispatching_threads
  }
  EXPECT_EQ(thread_count(), before);  // joined
}

TEST(IceAgentContexts, OneThreadGivesOneContext) {
  int before = thread_count();
  rtgw::webrtc::IceContextPool pool(1, false);
  EXPECT_EQ(pool.count(), 1u);
  EXPECT_EQ(thread_count(), before + 1);
  GMainContext* only = pool.next();
  EXPECT_EQ(pool.next(), only);
  EXPECT_EQ(dispatching_threads(pool), std::vector<std::string>{"rtgw-ice-0"});
  rtgw::webrtc::IceContextPool zero(0, false);  // treated as 1
  EXPECT_EQ(zero.count(), 1u);
}

}  // namespace
