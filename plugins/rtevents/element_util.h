// SPDX-License-Identifier: MIT
// Small helpers shared by the rtevents elements: a scoped buffer mapping, an exception barrier for
// GObject/GStreamer callbacks, and UTF-8 sanitizing for strings that go into bus messages.
#pragma once

#include <gst/gst.h>

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/ref.h"

namespace rtgw::rtevents {

// Maps a buffer for the lifetime of the object.
class MappedBuffer {
 public:
  MappedBuffer(GstBuffer* buffer, GstMapFlags flags) : buffer_(buffer) {
    mapped_ = gst_buffer_map(buffer_, &info_, flags);
  }
  ~MappedBuffer() {
    if (mapped_) gst_buffer_unmap(buffer_, &info_);
  }
  MappedBuffer(const MappedBuffer&) = delete;
  MappedBuffer& operator=(const MappedBuffer&) = delete;

  explicit operator bool() const { return mapped_; }
  std::string_view view() const {
    return mapped_ ? std::string_view(reinterpret_cast<const char*>(info_.data), info_.size)
                   : std::string_view();
  }
  guint8* data() const { return info_.data; }

 private:
  GstBuffer* buffer_;
  GstMapInfo info_ = GST_MAP_INFO_INIT;
  bool mapped_ = false;
};

// Runs `fn` and turns any C++ exception into a log line and `on_error`: exceptions must never
// unwind through GLib or GStreamer C code. Use it in every callback trampoline.
template <typename R, typename Fn>
R guarded(GstDebugCategory* cat, gpointer object, const char* where, R on_error, Fn&& fn) noexcept {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    GST_CAT_ERROR_OBJECT(cat, object, "%s: %s", where, e.what());
  } catch (...) {
    GST_CAT_ERROR_OBJECT(cat, object, "%s: unknown exception", where);
  }
  return on_error;
}

template <typename Fn>
void guarded_void(GstDebugCategory* cat, gpointer object, const char* where, Fn&& fn) noexcept {
  guarded(cat, object, where, 0, [&] {
    std::forward<Fn>(fn)();
    return 0;
  });
}

// Like guarded() for a streaming callback: an exception becomes GST_FLOW_ERROR and sets `*threw`,
// so that the caller can post an element error (outside any lambda, where GST_ELEMENT_ERROR
// records the right function name).
template <typename Fn>
GstFlowReturn guarded_flow(GstDebugCategory* cat, gpointer object, const char* where, bool* threw,
                           Fn&& fn) noexcept {
  *threw = true;
  return guarded(cat, object, where, GST_FLOW_ERROR, [&] {
    const GstFlowReturn r = std::forward<Fn>(fn)();
    *threw = false;
    return r;
  });
}

// Client-controlled text made safe for a GstStructure string field: NUL bytes become U+FFFD and
// invalid UTF-8 sequences are replaced.
inline std::string valid_utf8(std::string_view s) {
  std::string no_nul;
  no_nul.reserve(s.size());
  for (char c : s) {
    if (c == '\0') {
      no_nul += "\xEF\xBF\xBD";
    } else {
      no_nul.push_back(c);
    }
  }
  if (g_utf8_validate(no_nul.data(), static_cast<gssize>(no_nul.size()), nullptr)) return no_nul;
  const UniqueStr fixed(g_utf8_make_valid(no_nul.data(), static_cast<gssize>(no_nul.size())));
  return std::string(fixed.get());
}

}  // namespace rtgw::rtevents
