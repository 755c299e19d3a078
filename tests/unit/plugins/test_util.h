// SPDX-License-Identifier: MIT
// Helpers for the rtevents element tests: RAII for GstHarness, pushing/pulling JSON events, and
// reading element messages from a bus.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ref.h"

namespace rtgw::rtevents::test {

struct HarnessDeleter {
  void operator()(GstHarness* h) const { gst_harness_teardown(h); }
};
using HarnessPtr = std::unique_ptr<GstHarness, HarnessDeleter>;

inline Ref<GstBuffer> make_buffer(std::string_view text) {
  if (text.empty()) return Ref<GstBuffer>::adopt(gst_buffer_new());
  return Ref<GstBuffer>::adopt(gst_buffer_new_memdup(text.data(), text.size()));
}

inline std::string buffer_text(GstBuffer* buffer) {
  GstMapInfo info;
  if (!gst_buffer_map(buffer, &info, GST_MAP_READ)) return "<unmappable>";
  std::string out(reinterpret_cast<const char*>(info.data), info.size);
  gst_buffer_unmap(buffer, &info);
  return out;
}

// A harness around one element by factory name, with caps set and a bus attached.
class ElementHarness {
 public:
  explicit ElementHarness(const char* factory,
                          const char* src_caps = "application/x-realtime-event")
      : h_(gst_harness_new(factory)), bus_(Ref<GstBus>::adopt(gst_bus_new())) {
    gst_element_set_bus(h_->element, bus_.get());
    if (src_caps) gst_harness_set_src_caps_str(h_.get(), src_caps);
  }
  // Wraps an element that is already inside a bin (messages go to the bin's bus).
  explicit ElementHarness(GstElement* element)
      : h_(gst_harness_new_with_element(element, "sink", "src")) {
    gst_harness_set_src_caps_str(h_.get(), "application/x-realtime-event");
  }

  GstHarness* get() const { return h_.get(); }
  GstElement* element() const { return h_->element; }
  GstBus* bus() const { return bus_.get(); }

  GstFlowReturn push(std::string_view text) {
    return gst_harness_push(h_.get(), make_buffer(text).release());
  }
  GstFlowReturn push(const Ref<GstBuffer>& buffer) {
    return gst_harness_push(h_.get(), Ref<GstBuffer>(buffer).release());
  }
  // The next output buffer, if one is waiting.
  Ref<GstBuffer> try_pull() { return Ref<GstBuffer>::adopt(gst_harness_try_pull(h_.get())); }
  // Pushes one event and returns what came out (nullopt: nothing came out).
  std::optional<std::string> process(std::string_view text) {
    EXPECT_EQ(push(text), GST_FLOW_OK);
    const Ref<GstBuffer> out = try_pull();
    if (!out) return std::nullopt;
    return buffer_text(out.get());
  }

 private:
  HarnessPtr h_;
  Ref<GstBus> bus_;
};

// Pops every pending element message named `name` from `bus` (other messages are discarded).
inline std::vector<Ref<GstMessage>> pop_element_messages(GstBus* bus, const char* name) {
  std::vector<Ref<GstMessage>> out;
  while (auto msg = Ref<GstMessage>::adopt(gst_bus_pop(bus))) {
    if (GST_MESSAGE_TYPE(msg.get()) != GST_MESSAGE_ELEMENT) continue;
    const GstStructure* s = gst_message_get_structure(msg.get());
    if (s && gst_structure_has_name(s, name)) out.push_back(msg);
  }
  return out;
}

// Pops every pending message of `type` from `bus` (other messages are discarded).
inline std::vector<Ref<GstMessage>> pop_messages(GstBus* bus, GstMessageType type) {
  std::vector<Ref<GstMessage>> out;
  while (auto msg = Ref<GstMessage>::adopt(gst_bus_pop(bus))) {
    if (GST_MESSAGE_TYPE(msg.get()) == type) out.push_back(msg);
  }
  return out;
}

inline const GstStructure* structure(const Ref<GstMessage>& msg) {
  return gst_message_get_structure(msg.get());
}

// Field readers that fail the test when the field is missing or has another type.
inline std::string str_field(const GstStructure* s, const char* field) {
  const GValue* v = gst_structure_get_value(s, field);
  EXPECT_TRUE(v && G_VALUE_HOLDS_STRING(v)) << "field " << field << " is not a string";
  if (!v || !G_VALUE_HOLDS_STRING(v)) return "<missing>";
  const gchar* str = g_value_get_string(v);
  return str ? str : "";
}
inline bool bool_field(const GstStructure* s, const char* field) {
  const GValue* v = gst_structure_get_value(s, field);
  EXPECT_TRUE(v && G_VALUE_HOLDS_BOOLEAN(v)) << "field " << field << " is not a boolean";
  return v && G_VALUE_HOLDS_BOOLEAN(v) && g_value_get_boolean(v);
}
inline gint64 int64_field(const GstStructure* s, const char* field) {
  const GValue* v = gst_structure_get_value(s, field);
  EXPECT_TRUE(v && G_VALUE_HOLDS_INT64(v)) << "field " << field << " is not a gint64";
  return v && G_VALUE_HOLDS_INT64(v) ? g_value_get_int64(v) : -12345;
}
inline double double_field(const GstStructure* s, const char* field) {
  const GValue* v = gst_structure_get_value(s, field);
  EXPECT_TRUE(v && G_VALUE_HOLDS_DOUBLE(v)) << "field " << field << " is not a gdouble";
  return v && G_VALUE_HOLDS_DOUBLE(v) ? g_value_get_double(v) : -12345.0;
}

inline std::string get_string_property(gpointer object, const char* name) {
  gchar* raw = nullptr;  // varargs: no out-parameter adaptor, adopt right away
  g_object_get(object, name, &raw, nullptr);
  const UniqueStr value(raw);
  return value ? value.get() : "";
}
inline guint64 get_uint64_property(gpointer object, const char* name) {
  guint64 value = 0;
  g_object_get(object, name, &value, nullptr);
  return value;
}

}  // namespace rtgw::rtevents::test
