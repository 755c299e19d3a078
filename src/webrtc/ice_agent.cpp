// SPDX-License-Identifier: MIT
#include "webrtc/ice_agent.h"

#include <gst/webrtc/nice/nice.h>
#include <gst/webrtc/webrtc.h>
#include <nice/agent.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "webrtc/ice_context.h"
#include "webrtc/ice_source.h"

namespace rtgw::webrtc {
namespace {

// GstWebRTCNicePrivate as GStreamer 1.22.0 declares it (gst-libs/gst/webrtc/nice/nice.c). Only
// the fields this file touches matter, but the whole prefix must match: check_nice_layout()
// compares it with a stock instance before anything writes through it.
struct NicePrivate122 {
  NiceAgent* nice_agent;
  GArray* nice_stream_map;
  GThread* thread;
  GMainContext* main_context;
  GMainLoop* loop;
  GMutex lock;
  GCond cond;
  GstWebRTCICEOnCandidateFunc on_candidate;
  gpointer on_candidate_data;
  GDestroyNotify on_candidate_notify;
  GstUri* stun_server;
  GstUri* turn_server;
  GHashTable* turn_servers;
  GstUri* http_proxy;
};

// One entry of nice_stream_map (1.22.0's `struct NiceStreamItem`).
struct NiceStreamItem122 {
  guint session_id;
  guint nice_stream_id;
  GstWebRTCICEStream* stream;
};

NicePrivate122* nice_private(gpointer ice) {
  return reinterpret_cast<NicePrivate122*>(GST_WEBRTC_NICE(ice)->priv);
}

// --- the agent: GstWebRTCNice with a shared-context, consent-fresh libnice agent -------------

struct SharedIce {
  GstWebRTCNice parent;
};
struct SharedIceClass {
  GstWebRTCNiceClass parent_class;
};

GstWebRTCICEClass* nice_class = nullptr;  // GstWebRTCNice's (the parent's) methods
GObjectClass* ice_base_class = nullptr;   // GstWebRTCICE's: skipping GstWebRTCNice's own

// On the agent's ICE thread (`rtgw-ice-N`): a local candidate, handed to webrtcbin as the stock
// agent does (a=candidate text with our credentials, for the webrtcbin session of the libnice
// stream).
void on_new_candidate(NiceAgent* agent, NiceCandidate* candidate, gpointer data) {
  auto* ice = GST_WEBRTC_ICE(data);
  NicePrivate122* priv = nice_private(ice);
  const NiceStreamItem122* item = nullptr;
  for (guint i = 0; i < priv->nice_stream_map->len; ++i) {
    const auto& it = g_array_index(priv->nice_stream_map, NiceStreamItem122, i);
    if (it.nice_stream_id == candidate->stream_id) {
      item = &it;
      break;
    }
  }
  if (!item) return;
  if (!candidate->username || !candidate->password) {
    gchar* ufrag = nullptr;
    gchar* pwd = nullptr;
    if (nice_agent_get_local_credentials(agent, candidate->stream_id, &ufrag, &pwd)) {
      // The candidate is ours to complete (libnice hands it over for this signal).
      if (!candidate->username)
        candidate->username = ufrag;
      else
        g_free(ufrag);
      if (!candidate->password)
        candidate->password = pwd;
      else
        g_free(pwd);
    }
  }
  gchar* attr = nice_agent_generate_local_candidate_sdp(agent, candidate);
  if (priv->on_candidate) priv->on_candidate(ice, item->session_id, attr, priv->on_candidate_data);
  g_free(attr);
}

void shared_ice_constructed(GObject* object) {
  NicePrivate122* priv = nice_private(object);
  // Round robin over the ICE threads: this agent's sockets, timers and rtgwicesrc pushes all run
  // on the one thread of this context for the agent's life.
  GMainContext* context = ice_context_for_new_agent();
  priv->main_context = g_main_context_ref(context);
  // Never run: GstWebRTCNice only runs it on its own thread, which this agent does not start.
  priv->loop = g_main_loop_new(context, FALSE);
  priv->thread = nullptr;
  auto options = static_cast<NiceAgentOption>(NICE_AGENT_OPTION_ICE_TRICKLE |
                                              NICE_AGENT_OPTION_REGULAR_NOMINATION |
                                              NICE_AGENT_OPTION_CONSENT_FRESHNESS);
  priv->nice_agent = nice_agent_new_full(context, NICE_COMPATIBILITY_RFC5245, options);
  g_signal_connect(priv->nice_agent, "new-candidate-full", G_CALLBACK(on_new_candidate), object);
  if (ice_base_class->constructed) ice_base_class->constructed(object);
}

// GstWebRTCNice's finalize stops the thread this agent never started; this one releases the
// same private fields and chains to GstWebRTCICE's.
void shared_ice_finalize(GObject* object) {
  NicePrivate122* priv = nice_private(object);
  g_signal_handlers_disconnect_by_data(priv->nice_agent, object);
  // A candidate callback already dispatched may still be using `object`.
  ice_context_barrier(priv->main_context);
  if (priv->on_candidate_notify) priv->on_candidate_notify(priv->on_candidate_data);
  priv->on_candidate = nullptr;
  priv->on_candidate_notify = nullptr;
  if (priv->turn_server) gst_uri_unref(priv->turn_server);
  if (priv->stun_server) gst_uri_unref(priv->stun_server);
  if (priv->http_proxy) gst_uri_unref(priv->http_proxy);
  g_mutex_clear(&priv->lock);
  g_cond_clear(&priv->cond);
  g_array_free(priv->nice_stream_map, TRUE);
  g_hash_table_unref(priv->turn_servers);
  // Its timers and sockets may be dispatched on its `rtgw-ice-N` meanwhile: libnice 0.1.21's
  // callbacks take a strong reference from a weak one while they run, so the agent may go from any
  // thread (nicesink and rtgwicesrc hold references too and drop them where they are finalized).
  g_object_unref(priv->nice_agent);
  priv->nice_agent = nullptr;
  g_main_loop_unref(priv->loop);
  g_main_context_unref(priv->main_context);
  ice_base_class->finalize(object);
}

// The stock transport, with its nicesrc (a streaming thread per webrtcbin) replaced by
// rtgwicesrc before transportreceivebin adds it.
GstWebRTCICETransport* shared_ice_find_transport(GstWebRTCICE* ice, GstWebRTCICEStream* stream,
                                                 GstWebRTCICEComponent component) {
  GstWebRTCICETransport* transport = nice_class->find_transport(ice, stream, component);
  if (!transport || !transport->src || GST_OBJECT_PARENT(transport->src)) return transport;
  GstElementFactory* factory = gst_element_get_factory(transport->src);
  if (!factory || g_strcmp0(GST_OBJECT_NAME(factory), "nicesrc") != 0) return transport;
  GObject* agent = nullptr;
  guint stream_id = 0;
  guint component_id = 0;
  g_object_get(transport->src, "agent", &agent, "stream", &stream_id, "component", &component_id,
               nullptr);
  GstElement* ours = agent ? ice_source_new(agent, stream_id, component_id) : nullptr;
  if (agent) g_object_unref(agent);
  if (!ours) return transport;
  // nicesrc is still floating and nobody else refers to it: sink and drop it.
  GstElement* old = transport->src;
  transport->src = ours;
  gst_object_unref(gst_object_ref_sink(old));
  return transport;
}

void shared_ice_class_init(gpointer klass, gpointer) {
  nice_class = GST_WEBRTC_ICE_CLASS(g_type_class_peek_parent(klass));
  ice_base_class = G_OBJECT_CLASS(g_type_class_peek(GST_TYPE_WEBRTC_ICE));
  auto* gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->constructed = shared_ice_constructed;
  gobject_class->finalize = shared_ice_finalize;
  GST_WEBRTC_ICE_CLASS(klass)->find_transport = shared_ice_find_transport;
}

GType shared_ice_get_type() {
  static GType type = g_type_register_static_simple(
      GST_TYPE_WEBRTC_NICE, "RtgwSharedIce", sizeof(SharedIceClass), shared_ice_class_init,
      sizeof(SharedIce), nullptr, static_cast<GTypeFlags>(0));
  return type;
}

// --- webrtcbin with the shared agent ---------------------------------------------------------

GObjectClass* webrtcbin_class = nullptr;

GObject* webrtcbin_constructor(GType type, guint n, GObjectConstructParam* params) {
  // The defaults GObject passes point at the pspec's own default value: copy the array and give
  // `ice-agent` a value of our own rather than writing through them.
  std::vector<GObjectConstructParam> copy(params, params + n);
  const char* name = nullptr;
  for (guint i = 0; i < n; ++i)
    if (std::strcmp(params[i].pspec->name, "name") == 0 && G_VALUE_HOLDS_STRING(params[i].value))
      name = g_value_get_string(params[i].value);
  GValue agent = G_VALUE_INIT;
  GstObject* created = nullptr;
  for (auto& param : copy) {
    if (std::strcmp(param.pspec->name, "ice-agent") != 0 || g_value_get_object(param.value))
      continue;
    gchar* agent_name = g_strdup_printf("%s:ice", name ? name : "webrtcbin");
    created = new_shared_ice_agent(agent_name);
    g_free(agent_name);
    g_value_init(&agent, G_PARAM_SPEC_VALUE_TYPE(param.pspec));
    g_value_set_object(&agent, created);
    param.value = &agent;
  }
  GObject* object = webrtcbin_class->constructor(type, n, copy.data());
  // webrtcbin keeps the value's object without a reference of its own (its set_property uses
  // g_value_get_object and its finalize unrefs): it now owns the one new_shared_ice_agent made.
  if (created) g_value_unset(&agent);
  return object;
}

void webrtcbin_class_init(gpointer klass, gpointer) {
  webrtcbin_class = G_OBJECT_CLASS(g_type_class_peek_parent(klass));
  G_OBJECT_CLASS(klass)->constructor = webrtcbin_constructor;
}

void dummy_on_candidate(GstWebRTCICE*, guint, const gchar*, gpointer) {}

std::mutex install_mutex;
bool installed = false;
bool install_tried = false;
std::string install_error;

}  // namespace

GstObject* new_shared_ice_agent(const char* name) {
  return GST_OBJECT(g_object_new(shared_ice_get_type(), "name", name, nullptr));
}

std::string check_nice_layout() {
  GstWebRTCNice* probe = gst_webrtc_nice_new("rtgw-ice-layout-check");
  if (!probe) return "GstWebRTCNice could not be created";
  gst_object_ref_sink(probe);
  NicePrivate122* priv = nice_private(probe);
  GObject* agent = nullptr;
  g_object_get(probe, "agent", &agent, nullptr);
  GMainContext* agent_context = nullptr;  // a pointer property: no reference taken
  if (agent) g_object_get(agent, "main-context", &agent_context, nullptr);
  gst_webrtc_ice_set_stun_server(GST_WEBRTC_ICE(probe), "stun://192.0.2.7:3478");
  gst_webrtc_ice_set_on_ice_candidate(GST_WEBRTC_ICE(probe), dummy_on_candidate, probe, nullptr);
  std::string error;
  if (!agent || priv->nice_agent != NICE_AGENT(agent))
    error = "nice_agent";
  else if (!priv->thread)
    error = "thread";
  else if (!agent_context || priv->main_context != agent_context)
    error = "main_context";
  else if (!priv->loop || g_main_loop_get_context(priv->loop) != agent_context)
    error = "loop";
  else if (!priv->nice_stream_map ||
           g_array_get_element_size(priv->nice_stream_map) != sizeof(NiceStreamItem122))
    error = "nice_stream_map";
  else if (priv->on_candidate != dummy_on_candidate || priv->on_candidate_data != probe)
    error = "on_candidate";
  else if (!priv->stun_server || g_strcmp0(gst_uri_get_host(priv->stun_server), "192.0.2.7") != 0)
    error = "stun_server";
  else if (!priv->turn_servers || priv->http_proxy)
    error = "turn_servers/http_proxy";
  gst_webrtc_ice_set_on_ice_candidate(GST_WEBRTC_ICE(probe), nullptr, nullptr, nullptr);
  if (agent) g_object_unref(agent);
  gst_object_unref(probe);
  if (!error.empty())
    return "GstWebRTCNice's private layout is not GStreamer 1.22.0's (field " + error + ")";
  return {};
}

std::string install_shared_ice_agent() {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (install_tried) return install_error;
  install_tried = true;
  install_error = check_nice_layout();
  if (!install_error.empty()) return install_error;
  GstElementFactory* factory = gst_element_factory_find("webrtcbin");
  if (!factory) return install_error = "no webrtcbin element (gst-plugins-bad's webrtc plugin)";
  guint rank = gst_plugin_feature_get_rank(GST_PLUGIN_FEATURE(factory));
  auto* loaded = GST_ELEMENT_FACTORY(gst_plugin_feature_load(GST_PLUGIN_FEATURE(factory)));
  gst_object_unref(factory);
  if (!loaded) return install_error = "webrtcbin's plugin did not load";
  GType parent = gst_element_factory_get_element_type(loaded);
  gst_object_unref(loaded);
  GTypeQuery query;
  g_type_query(parent, &query);
  if (!query.type) return install_error = "webrtcbin's type cannot be subclassed";
  GType type =
      g_type_register_static_simple(parent, "RtgwWebRTCBin", query.class_size, webrtcbin_class_init,
                                    query.instance_size, nullptr, static_cast<GTypeFlags>(0));
  if (!register_ice_source() || !gst_element_register(nullptr, "webrtcbin", rank, type))
    return install_error = "registering the shared-agent webrtcbin failed";
  installed = true;
  return {};
}

bool shared_ice_agent_installed() {
  std::lock_guard<std::mutex> lock(install_mutex);
  return installed;
}

}  // namespace rtgw::webrtc
