// SPDX-License-Identifier: MIT
#include "webrtc/sctp_ids.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/ref.h"

namespace rtgw::webrtc::sctp_ids {
namespace {

constexpr const char* kDataKey = "rtgw-sctp-association-id";
// usrsctp's ids in webrtcbin: [0, G_MAXUINT16).
constexpr std::uint32_t kIdCount = G_MAXUINT16;

struct Registry {
  std::mutex mutex;
  std::set<std::uint16_t> live;
  Proposer proposer;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: webrtcbins may outlive statics
  return *r;
}

std::uint16_t default_proposal() {
  static const std::optional<std::uint16_t> forced = []() -> std::optional<std::uint16_t> {
    const char* v = g_getenv("RTGW_TEST_SCTP_ID_PROPOSAL");
    if (!v || !*v) return std::nullopt;
    return static_cast<std::uint16_t>(std::strtoul(v, nullptr, 10) % kIdCount);
  }();
  if (forced) return *forced;
  return static_cast<std::uint16_t>(g_random_int_range(0, static_cast<gint32>(kIdCount)));
}

// Object data on the webrtcbin: the id, released when the webrtcbin is finalized.
struct Held {
  explicit Held(std::uint16_t held_id) : id(held_id) {}
  ~Held() { release(id); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  std::uint16_t id;
};

GstElement* owning_webrtcbin(GstElement* element) {
  for (GstObject* o = GST_OBJECT(element); o; o = GST_OBJECT_PARENT(o))
    if (g_object_get_data(G_OBJECT(o), kDataKey)) return GST_ELEMENT(o);
  return nullptr;
}

}  // namespace

void set_proposer(Proposer proposer) {
  std::lock_guard lock(registry().mutex);
  registry().proposer = std::move(proposer);
}

std::optional<std::uint16_t> acquire() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (r.live.size() >= kIdCount) return std::nullopt;
  std::uint32_t id = r.proposer ? r.proposer() % kIdCount : default_proposal();
  // The first free id from the proposal on (wrapping): walk the run of live ids that starts
  // there in the ordered set, one step per live id in the run. With random proposals and a few
  // hundred live legs the run is nearly always empty.
  auto it = r.live.lower_bound(static_cast<std::uint16_t>(id));
  while (true) {
    if (it == r.live.end()) {
      if (id < kIdCount) break;  // past the last live id: free
      id = 0;                    // wrapped
      it = r.live.begin();
    }
    if (it == r.live.end() || *it != id) break;
    ++it;
    ++id;
  }
  r.live.insert(static_cast<std::uint16_t>(id));
  return static_cast<std::uint16_t>(id);
}

void release(std::uint16_t id) {
  std::lock_guard lock(registry().mutex);
  registry().live.erase(id);
}

bool is_live(std::uint16_t id) {
  std::lock_guard lock(registry().mutex);
  return registry().live.count(id) != 0;
}

std::size_t live_count() {
  std::lock_guard lock(registry().mutex);
  return registry().live.size();
}

bool assign(GstElement* webrtcbin) {
  auto id = acquire();
  if (!id) return false;
  g_object_set_data_full(G_OBJECT(webrtcbin), kDataKey, UserData<Held>::make(*id),
                         &UserData<Held>::destroy);
  return true;
}

std::optional<std::uint16_t> assigned(GstElement* element) {
  GstElement* bin = owning_webrtcbin(element);
  if (!bin) return std::nullopt;
  return UserData<Held>::from(g_object_get_data(G_OBJECT(bin), kDataKey)).id;
}

std::optional<std::uint16_t> in_use(GstElement* webrtcbin) {
  std::optional<std::uint16_t> out;
  GstIterator* raw = gst_bin_iterate_recurse(GST_BIN(webrtcbin));
  std::unique_ptr<GstIterator, decltype(&gst_iterator_free)> it(raw, &gst_iterator_free);
  GValue item = G_VALUE_INIT;
  while (!out && gst_iterator_next(it.get(), &item) == GST_ITERATOR_OK) {
    auto* e = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory* factory = gst_element_get_factory(e);
    if (factory && g_strcmp0(GST_OBJECT_NAME(factory), "sctpenc") == 0) {
      guint id = 0;
      g_object_get(e, "sctp-association-id", &id, nullptr);
      out = static_cast<std::uint16_t>(id);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  return out;
}

bool apply(GstElement* added) {
  GstElementFactory* factory = gst_element_get_factory(added);
  if (!factory) return false;
  const char* name = GST_OBJECT_NAME(factory);
  if (g_strcmp0(name, "sctpenc") != 0 && g_strcmp0(name, "sctpdec") != 0) return false;
  auto id = assigned(added);
  if (!id) return false;
  // Test hook: every leg gets this id, live or not, as webrtcbin's own random choice may; it
  // shows what the allocator prevents (tests/integration/test_sctp_ids.py).
  static const char* unallocated = g_getenv("RTGW_TEST_SCTP_ID_UNALLOCATED");
  if (unallocated && *unallocated)
    id = static_cast<std::uint16_t>(std::strtoul(unallocated, nullptr, 10) % kIdCount);
  GstState state = GST_STATE_NULL;
  {
    // Read under the object lock: the element is ours to configure only while still NULL.
    GST_OBJECT_LOCK(added);
    state = GST_STATE(added);
    GST_OBJECT_UNLOCK(added);
  }
  if (state != GST_STATE_NULL) {
    g_warning("%s left NULL before its SCTP association id could be set (kept its own)",
              GST_OBJECT_NAME(added));
    return false;
  }
  g_object_set(added, "sctp-association-id", static_cast<guint>(*id), nullptr);
  return true;
}

}  // namespace rtgw::webrtc::sctp_ids
