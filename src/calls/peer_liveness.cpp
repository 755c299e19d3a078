// SPDX-License-Identifier: MIT
#include "calls/peer_liveness.h"

#include <algorithm>
#include <memory>

namespace rtgw::calls {
namespace {

constexpr guint kTickMs = 1000;

GstPadProbeReturn count_packet(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* packets = static_cast<std::atomic<std::uint64_t>*>(data);
  std::uint64_t n = 1;
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
  packets->fetch_add(n, std::memory_order_relaxed);
  return GST_PAD_PROBE_OK;
}

struct IteratorDeleter {
  void operator()(GstIterator* it) const { gst_iterator_free(it); }
};
using UniqueIterator = std::unique_ptr<GstIterator, IteratorDeleter>;

bool is_nicesrc(GstElement* element) {
  GstElementFactory* factory = gst_element_get_factory(element);
  return factory && g_strcmp0(GST_OBJECT_NAME(factory), "nicesrc") == 0;
}

}  // namespace

PeerLiveness::PeerLiveness(int timeout_seconds, Listener* listener)
    : timeout_us_(gint64{std::max(timeout_seconds, 0)} * G_USEC_PER_SEC), listener_(listener) {}

PeerLiveness::~PeerLiveness() { stop(); }

std::size_t PeerLiveness::watch(Leg which, GstElement* webrtcbin) {
  LegState& leg = state(which);
  if (timeout_us_ <= 0 || leg.reported || !webrtcbin) return leg.probes.size();
  UniqueIterator it(gst_bin_iterate_recurse(GST_BIN(webrtcbin)));
  GValue item = G_VALUE_INIT;
  bool done = false;
  while (!done) {
    switch (gst_iterator_next(it.get(), &item)) {
      case GST_ITERATOR_OK: {
        auto* element = GST_ELEMENT(g_value_get_object(&item));
        if (is_nicesrc(element)) {
          auto pad = Ref<GstPad>::adopt(gst_element_get_static_pad(element, "src"));
          bool known = std::any_of(leg.probes.begin(), leg.probes.end(),
                                   [&](const auto& p) { return p.first.get() == pad.get(); });
          if (pad && !known) {
            gulong id =
                gst_pad_add_probe(pad.get(),
                                  static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER |
                                                               GST_PAD_PROBE_TYPE_BUFFER_LIST),
                                  count_packet, &leg.packets, nullptr);
            if (id) leg.probes.emplace_back(std::move(pad), id);
          }
        }
        g_value_reset(&item);
        break;
      }
      case GST_ITERATOR_RESYNC:
        gst_iterator_resync(it.get());
        break;
      case GST_ITERATOR_ERROR:
      case GST_ITERATOR_DONE:
        done = true;
        break;
    }
  }
  g_value_unset(&item);
  if (leg.seen_us == 0 && !leg.probes.empty()) {
    leg.seen_packets = leg.packets.load(std::memory_order_relaxed);
    leg.seen_us = g_get_monotonic_time();
  }
  if (!timer_ && !leg.probes.empty())
    timer_ = SourceGuard(g_timeout_add(
        kTickMs,
        [](gpointer data) -> gboolean {
          static_cast<PeerLiveness*>(data)->tick();
          return G_SOURCE_CONTINUE;
        },
        this));
  return leg.probes.size();
}

void PeerLiveness::tick() {
  gint64 now = g_get_monotonic_time();
  for (Leg which : {Leg::kClient, Leg::kUpstream}) {
    LegState& leg = state(which);
    if (leg.seen_us == 0 || leg.reported) continue;
    std::uint64_t packets = leg.packets.load(std::memory_order_relaxed);
    if (packets != leg.seen_packets) {
      leg.seen_packets = packets;
      leg.seen_us = now;
      continue;
    }
    if (now - leg.seen_us < timeout_us_) continue;
    leg.reported = true;
    remove_probes(leg);
    // The listener may end the call (and destroy this object) from here: nothing after it.
    listener_->OnPeerSilent(which, (now - leg.seen_us) / 1000);
    return;
  }
}

void PeerLiveness::remove_probes(LegState& leg) {
  for (auto& [pad, id] : leg.probes) gst_pad_remove_probe(pad.get(), id);
  leg.probes.clear();
}

void PeerLiveness::stop() {
  timer_.cancel();
  for (LegState& leg : legs_) remove_probes(leg);
}

gint64 PeerLiveness::idle_ms(Leg which) const {
  const LegState& leg = state(which);
  if (leg.seen_us == 0) return -1;
  // The count may have moved since the last tick.
  if (leg.packets.load(std::memory_order_relaxed) != leg.seen_packets) return 0;
  return (g_get_monotonic_time() - leg.seen_us) / 1000;
}

std::uint64_t PeerLiveness::packets(Leg which) const {
  return state(which).packets.load(std::memory_order_relaxed);
}

}  // namespace rtgw::calls
