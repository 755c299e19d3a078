// SPDX-License-Identifier: MIT
// RAII for GLib, GObject and GStreamer objects.
//
// Owns: nothing global. Provides `Ref<T>`, a shared reference holder for any reference-counted
// GLib/GStreamer type (GObject, GstObject, GstMiniObject, boxed ref-counted types), and
// `std::unique_ptr` aliases for single-owner allocations (gchar*, GError, GstStructure, ...).
// Business code uses these and never calls unref/g_free by hand.
//
// Threads: any for `Ref<T>` and the unique_ptr aliases (as thread-safe as the type's own ref
// counting; one holder is used by one thread at a time). `SignalConnection` and `SourceGuard`
// are created and dropped on the main loop.
#pragma once

#include <gio/gio.h>
#include <glib-object.h>
#include <gst/gst.h>
#include <json-glib/json-glib.h>

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace rtgw {

// How to ref/unref a T. The primary template covers every GObject (GstObject included).
template <typename T, typename = void>
struct RefTraits {
  static T* ref(T* p) { return static_cast<T*>(g_object_ref(p)); }
  static void unref(T* p) { g_object_unref(p); }
  static T* ref_sink(T* p) { return static_cast<T*>(g_object_ref_sink(p)); }
};

#define RTGW_REF_TRAITS(Type, ref_fn, unref_fn)          \
  template <>                                            \
  struct RefTraits<Type> {                               \
    static Type* ref(Type* p) { return ref_fn(p); }      \
    static void unref(Type* p) { unref_fn(p); }          \
    static Type* ref_sink(Type* p) { return ref_fn(p); } \
  }

RTGW_REF_TRAITS(GstBuffer, gst_buffer_ref, gst_buffer_unref);
RTGW_REF_TRAITS(GstCaps, gst_caps_ref, gst_caps_unref);
RTGW_REF_TRAITS(GstMessage, gst_message_ref, gst_message_unref);
RTGW_REF_TRAITS(GstEvent, gst_event_ref, gst_event_unref);
RTGW_REF_TRAITS(GstSample, gst_sample_ref, gst_sample_unref);
RTGW_REF_TRAITS(GstPromise, gst_promise_ref, gst_promise_unref);
RTGW_REF_TRAITS(JsonNode, json_node_ref, json_node_unref);
RTGW_REF_TRAITS(GBytes, g_bytes_ref, g_bytes_unref);
RTGW_REF_TRAITS(GMainLoop, g_main_loop_ref, g_main_loop_unref);
RTGW_REF_TRAITS(GMainContext, g_main_context_ref, g_main_context_unref);
RTGW_REF_TRAITS(GSource, g_source_ref, g_source_unref);
RTGW_REF_TRAITS(GUri, g_uri_ref, g_uri_unref);
RTGW_REF_TRAITS(GHashTable, g_hash_table_ref, g_hash_table_unref);
RTGW_REF_TRAITS(GDateTime, g_date_time_ref, g_date_time_unref);

#undef RTGW_REF_TRAITS

// A shared reference: copy = ref, move = steal, destructor = unref.
template <typename T>
class Ref {
 public:
  Ref() = default;
  Ref(std::nullptr_t) {}
  ~Ref() { reset(); }

  // Takes over a transfer-full reference.
  static Ref adopt(T* p) {
    Ref r;
    r.ptr_ = p;
    return r;
  }
  // Adds a new reference to a transfer-none pointer.
  static Ref retain(T* p) { return adopt(p ? RefTraits<T>::ref(p) : nullptr); }
  // Sinks a floating reference (GstElement from a factory, GInitiallyUnowned).
  static Ref sink(T* p) { return adopt(p ? RefTraits<T>::ref_sink(p) : nullptr); }

  Ref(const Ref& o) : ptr_(o.ptr_ ? RefTraits<T>::ref(o.ptr_) : nullptr) {}
  Ref(Ref&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)) {}
  Ref& operator=(Ref o) noexcept {
    std::swap(ptr_, o.ptr_);
    return *this;
  }

  void reset() {
    if (T* p = std::exchange(ptr_, nullptr)) RefTraits<T>::unref(p);
  }
  // Gives up ownership (transfer-full to a C API).
  [[nodiscard]] T* release() { return std::exchange(ptr_, nullptr); }

  T* get() const { return ptr_; }
  T* operator->() const { return ptr_; }
  explicit operator bool() const { return ptr_ != nullptr; }
  bool operator==(const Ref& o) const { return ptr_ == o.ptr_; }

  // For C out-parameters: `g_object_get(obj, "x", ref.out(), nullptr)`; adopts what is written.
  T** out() {
    reset();
    return &ptr_;
  }

 private:
  T* ptr_ = nullptr;
};

// Single-owner deleters for non-refcounted allocations.
struct GFreeDeleter {
  void operator()(gpointer p) const { g_free(p); }
};
struct GErrorDeleter {
  void operator()(GError* e) const { g_error_free(e); }
};
struct GstStructureDeleter {
  void operator()(GstStructure* s) const { gst_structure_free(s); }
};
struct GStrvDeleter {
  void operator()(gchar** v) const { g_strfreev(v); }
};

using UniqueStr = std::unique_ptr<gchar, GFreeDeleter>;
using UniqueError = std::unique_ptr<GError, GErrorDeleter>;
using UniqueStructure = std::unique_ptr<GstStructure, GstStructureDeleter>;
using UniqueStrv = std::unique_ptr<gchar*, GStrvDeleter>;

// Out-parameter adaptor for `GError**`: `fn(..., ErrorOut(err))`. Never pass it through `...`
// (g_object_get and friends): varargs skip the conversion.
class ErrorOut {
 public:
  explicit ErrorOut(UniqueError& target) : target_(target) {}
  ~ErrorOut() {
    if (raw_) target_.reset(raw_);
  }
  operator GError**() { return &raw_; }

 private:
  UniqueError& target_;
  GError* raw_ = nullptr;
};

// A heap value handed to a C API as `user_data` with its destroy notify, so that business code
// never pairs `new` with `delete static_cast<…>` by hand:
// `api(…, callback, UserData<T>::make(…), &UserData<T>::destroy)`, and in the callback
// `UserData<T>::from(data)`.
template <typename T>
struct UserData {
  template <typename... Args>
  static gpointer make(Args&&... args) {
    return new T(std::forward<Args>(args)...);
  }
  static T& from(gpointer data) { return *static_cast<T*>(data); }
  static void destroy(gpointer data) { delete static_cast<T*>(data); }
  static void destroy_closure(gpointer data, GClosure*) { destroy(data); }
};

// Disconnects a signal handler when it goes out of scope (it keeps the instance alive until).
class SignalConnection {
 public:
  SignalConnection() = default;
  SignalConnection(gpointer instance, gulong id)
      : instance_(Ref<GObject>::retain(G_OBJECT(instance))), id_(id) {}
  SignalConnection(SignalConnection&& o) noexcept
      : instance_(std::move(o.instance_)), id_(std::exchange(o.id_, 0)) {}
  SignalConnection& operator=(SignalConnection&& o) noexcept {
    if (this != &o) {
      disconnect();
      instance_ = std::move(o.instance_);
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  SignalConnection(const SignalConnection&) = delete;
  SignalConnection& operator=(const SignalConnection&) = delete;
  ~SignalConnection() { disconnect(); }

  void disconnect() {
    if (id_ && instance_) g_signal_handler_disconnect(instance_.get(), id_);
    id_ = 0;
    instance_.reset();
  }

 private:
  Ref<GObject> instance_;
  gulong id_ = 0;
};

namespace detail {
template <typename Signature>
struct SignalTrampoline;
template <typename R, typename... Args>
struct SignalTrampoline<R(Args...)> {
  using Fn = std::function<R(Args...)>;
  static R invoke(Args... args, gpointer data) { return UserData<Fn>::from(data)(args...); }
};
}  // namespace detail

// Connects a C++ callable to a GObject signal. `Signature` is the handler's C signature without
// the trailing user_data, e.g. `void(GstElement*, GstPad*)` for "pad-added". The callable runs on
// whatever thread emits the signal: on a GStreamer thread it copies what it needs and posts
// (main_thread.h), checking a liveness token before touching its owner.
//
// connect_signal: disconnected when the returned SignalConnection goes.
// connect_signal_for_lifetime: stays connected as long as the instance lives (the callable dies
// with it); for handlers that must capture nothing but values.
template <typename Signature, typename F>
gulong connect_signal_for_lifetime(gpointer instance, const char* signal, F&& fn) {
  using T = detail::SignalTrampoline<Signature>;
  using Fn = typename T::Fn;
  return g_signal_connect_data(instance, signal, G_CALLBACK(&T::invoke),
                               UserData<Fn>::make(Fn(std::forward<F>(fn))),
                               &UserData<Fn>::destroy_closure, GConnectFlags(0));
}
template <typename Signature, typename F>
[[nodiscard]] SignalConnection connect_signal(gpointer instance, const char* signal, F&& fn) {
  gulong id = connect_signal_for_lifetime<Signature>(instance, signal, std::forward<F>(fn));
  return SignalConnection(instance, id);
}

// Owns a GSource (timeout, idle, watch) attached to a context, and destroys it when it goes out
// of scope. Safe whichever comes first: the guard's end, cancel(), or the source removing itself
// (its callback returned G_SOURCE_REMOVE).
class SourceGuard {
 public:
  SourceGuard() = default;
  // A source attached to the default main context by id (g_timeout_add and friends).
  explicit SourceGuard(guint id)
      : source_(id ? Ref<GSource>::retain(g_main_context_find_source_by_id(nullptr, id))
                   : Ref<GSource>()) {}
  explicit SourceGuard(Ref<GSource> source) : source_(std::move(source)) {}
  SourceGuard(SourceGuard&& o) noexcept : source_(std::move(o.source_)) {}
  SourceGuard& operator=(SourceGuard&& o) noexcept {
    if (this != &o) {
      cancel();
      source_ = std::move(o.source_);
    }
    return *this;
  }
  SourceGuard(const SourceGuard&) = delete;
  SourceGuard& operator=(const SourceGuard&) = delete;
  ~SourceGuard() { cancel(); }

  void cancel() {
    if (source_ && !g_source_is_destroyed(source_.get())) g_source_destroy(source_.get());
    source_.reset();
  }
  // Lets the source run on without this guard (it removes itself).
  void forget() { source_.reset(); }
  // True while the source is pending (not fired for good, not cancelled).
  explicit operator bool() const { return source_ && !g_source_is_destroyed(source_.get()); }

 private:
  Ref<GSource> source_;
};

}  // namespace rtgw
