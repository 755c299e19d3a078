// SPDX-License-Identifier: MIT
#include "http/websocket_frame_limit.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/main_thread.h"

namespace rtgw::http {

// ----------------------------------------------------------------------------- the limiter

void WebSocketFrameLimiter::http_byte(char c) {
  std::uint64_t at = http_bytes_++;
  if (at == line_start_) line_first_ = c;
  if (c != '\n') return;
  std::uint64_t line_length = at - line_start_ + 1;
  std::uint64_t before = line_start_;
  if (previous_line_feed_ && ((line_length == 1 && before >= 2) ||
                              (line_length == 2 && line_first_ == '\r' && before >= 3))) {
    phase_ = Phase::kHeader;
    return;
  }
  previous_line_feed_ = true;
  line_start_ = at + 1;
}

void WebSocketFrameLimiter::feed(const char* data, std::size_t size, std::string& out) {
  if (mode_ == Mode::kOff) {
    out.append(data, size);
    return;
  }
  std::size_t i = 0;
  while (i < size) {
    switch (phase_) {
      case Phase::kHttp: {
        // The request (line, headers): passed as it is; frames start after its blank line.
        std::size_t start = i;
        while (i < size && phase_ == Phase::kHttp) http_byte(data[i++]);
        out.append(data + start, i - start);
        break;
      }
      case Phase::kHeader: {
        header_.push_back(data[i]);
        if (mode_ == Mode::kFollow) {
          out.push_back(data[i]);
          header_passed_++;
        }
        i++;
        std::size_t need = 2;
        if (header_.size() >= 2) {
          auto b1 = static_cast<unsigned char>(header_[1]);
          unsigned length = b1 & 0x7F;
          need += (length == 126 ? 2 : length == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
        }
        if (header_.size() == need) header_complete(out);
        break;
      }
      case Phase::kPayload: {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size - i));
        if (pass_payload_) out.append(data + i, n);
        i += n;
        payload_left_ -= n;
        if (payload_left_ == 0) phase_ = Phase::kHeader;
        break;
      }
    }
  }
}

void WebSocketFrameLimiter::expect_frames(bool websocket) {
  if (mode_ != Mode::kFollow) return;
  mode_ = websocket ? Mode::kEnforce : Mode::kOff;
  if (websocket && over_while_following_) trip(message_bytes_);
}

void WebSocketFrameLimiter::trip(std::uint64_t reached) {
  if (!tripped_) tripped_at_ = reached;
  tripped_ = true;
}

void WebSocketFrameLimiter::header_complete(std::string& out) {
  auto byte = [this](std::size_t k) { return static_cast<unsigned char>(header_[k]); };
  const bool fin = byte(0) & 0x80;
  const unsigned opcode = byte(0) & 0x0F;
  const unsigned length7 = byte(1) & 0x7F;
  std::uint64_t length = length7;
  if (length7 == 126) {
    length = (std::uint64_t{byte(2)} << 8) | byte(3);
  } else if (length7 == 127) {
    length = 0;
    for (std::size_t k = 2; k < 10; k++) length = (length << 8) | byte(k);
  }
  const bool following = mode_ == Mode::kFollow;
  bool pass = false;
  if (opcode & 0x08) {
    // Control frames (close, ping, pong) carry at most 125 bytes (RFC 6455 5.5); they pass
    // even after a trip, so the close handshake completes.
    pass = length <= 125;
    if (!pass && following) over_while_following_ = true;
    if (!pass && !following) trip(length);
  } else if (!tripped_) {
    if (opcode != 0) message_bytes_ = 0;  // a new message (libsoup refuses reserved opcodes)
    if (length > max_message_bytes_ - message_bytes_) {
      std::uint64_t reached = message_bytes_ + std::min(length, UINT64_MAX - message_bytes_);
      if (following) {
        over_while_following_ = true;
        message_bytes_ = max_message_bytes_;  // stays over: the next fragment trips at once
      } else {
        trip(reached);
      }
    } else {
      message_bytes_ = fin ? 0 : message_bytes_ + length;
      pass = true;
    }
  }
  if (following) pass = true;  // nothing is held or dropped before the route layer decides
  // A header begun while following went on already; a dropped frame's rest never does.
  if (pass && header_passed_ < header_.size()) out.append(header_, header_passed_);
  header_.clear();
  header_passed_ = 0;
  payload_left_ = length;
  pass_payload_ = pass;
  phase_ = length > 0 ? Phase::kPayload : Phase::kHeader;
}

// ----------------------------------------------------------------------------- shared state

void FrameLimitState::arm(std::function<void(std::uint64_t, std::uint64_t)> fn) {
  on_trip = std::move(fn);
  if (trip_pending && !trip_reported) {
    std::weak_ptr<FrameLimitState> weak = shared_from_this();
    post_to_main([weak] {  // never from inside the caller (the upgrade is being completed)
      if (auto s = weak.lock()) s->report();
    });
  }
}

void FrameLimitState::expect_frames(bool websocket) {
  limiter.expect_frames(websocket);
  check_trip();
}

void FrameLimitState::check_trip() {
  if (!limiter.tripped() || trip_pending) return;
  trip_pending = true;
  std::weak_ptr<FrameLimitState> weak = shared_from_this();
  post_to_main([weak] {
    if (auto s = weak.lock()) s->report();
  });
}

void FrameLimitState::report() {
  if (trip_reported || !on_trip) return;
  trip_reported = true;
  auto fn = on_trip;  // it may drop this state
  fn(limiter.tripped_at(), limiter.max_message_bytes());
}

}  // namespace rtgw::http

// ----------------------------------------------------------------------------- the streams

using rtgw::Ref;
using rtgw::http::FrameLimitState;

namespace {

// C++ state of the input stream (GObject runs no C++ constructors on instance structs).
struct InputImpl {
  std::shared_ptr<FrameLimitState> state;
  std::string ready;  // filtered bytes not yet taken by the reader
  std::vector<char> scratch;
};

}  // namespace

extern "C" {

#define RTGW_TYPE_FRAME_LIMIT_INPUT (rtgw_frame_limit_input_get_type())
G_DECLARE_FINAL_TYPE(RtgwFrameLimitInput, rtgw_frame_limit_input, RTGW, FRAME_LIMIT_INPUT,
                     GInputStream)
struct _RtgwFrameLimitInput {
  GInputStream parent_instance;
  GInputStream* base;  // owned reference
  InputImpl* impl;     // created in init, deleted in finalize
};

#define RTGW_TYPE_FRAME_LIMIT_STREAM (rtgw_frame_limit_stream_get_type())
G_DECLARE_FINAL_TYPE(RtgwFrameLimitStream, rtgw_frame_limit_stream, RTGW, FRAME_LIMIT_STREAM,
                     GIOStream)
struct _RtgwFrameLimitStream {
  GIOStream parent_instance;
  GIOStream* base;      // owned reference
  GInputStream* input;  // owned reference (an RtgwFrameLimitInput)
};

}  // extern "C"

namespace {

void input_pollable_init(GPollableInputStreamInterface* iface);

}  // namespace

G_DEFINE_TYPE_WITH_CODE(RtgwFrameLimitInput, rtgw_frame_limit_input, G_TYPE_INPUT_STREAM,
                        G_IMPLEMENT_INTERFACE(G_TYPE_POLLABLE_INPUT_STREAM, input_pollable_init))
G_DEFINE_TYPE(RtgwFrameLimitStream, rtgw_frame_limit_stream, G_TYPE_IO_STREAM)

namespace {

constexpr int kMaxDroppedReads = 16;  // reads that yield nothing before saying "would block"

gssize take_ready(RtgwFrameLimitInput* self, void* buffer, gsize count) {
  std::string& ready = self->impl->ready;
  gsize n = std::min<gsize>(count, ready.size());
  std::copy_n(ready.data(), n, static_cast<char*>(buffer));
  ready.erase(0, n);
  return static_cast<gssize>(n);
}

// Runs freshly read bytes through the limiter; reports a newly crossed bound (posted).
void filter(RtgwFrameLimitInput* self, gsize n) {
  auto& state = self->impl->state;
  state->limiter.feed(self->impl->scratch.data(), n, self->impl->ready);
  state->check_trip();
}

// `blocking`: a blocking read of the base (GInputStream::read_fn); else non-blocking.
gssize filtered_read(RtgwFrameLimitInput* self, void* buffer, gsize count, bool blocking,
                     GCancellable* cancellable, GError** error) {
  if (!self->impl->ready.empty() || count == 0) return take_ready(self, buffer, count);
  if (self->impl->state->limiter.passthrough())  // not a WebSocket: no copy
    return g_pollable_stream_read(self->base, buffer, count, blocking, cancellable, error);
  self->impl->scratch.resize(count);
  for (int attempt = 0; blocking || attempt < kMaxDroppedReads; attempt++) {
    gssize n = g_pollable_stream_read(self->base, self->impl->scratch.data(), count, blocking,
                                      cancellable, error);
    if (n <= 0) return n;  // end of file or an error (would-block included)
    filter(self, static_cast<gsize>(n));
    if (!self->impl->ready.empty()) return take_ready(self, buffer, count);
    // All of it was dropped (or held back, a frame header in pieces): read on.
  }
  g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "no data passed the filter yet");
  return -1;
}

gssize input_read(GInputStream* stream, void* buffer, gsize count, GCancellable* cancellable,
                  GError** error) {
  return filtered_read(RTGW_FRAME_LIMIT_INPUT(stream), buffer, count, true, cancellable, error);
}

gboolean input_close(GInputStream*, GCancellable*, GError**) {
  return TRUE;  // the socket is closed with the I/O stream
}

gboolean input_can_poll(GPollableInputStream* stream) {
  auto* base = RTGW_FRAME_LIMIT_INPUT(stream)->base;
  return G_IS_POLLABLE_INPUT_STREAM(base) &&
         g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(base));
}

gboolean input_is_readable(GPollableInputStream* stream) {
  auto* self = RTGW_FRAME_LIMIT_INPUT(stream);
  return !self->impl->ready.empty() ||
         g_pollable_input_stream_is_readable(G_POLLABLE_INPUT_STREAM(self->base));
}

GSource* input_create_source(GPollableInputStream* stream, GCancellable* cancellable) {
  auto* self = RTGW_FRAME_LIMIT_INPUT(stream);
  // Filtered bytes waiting: ready at once (as libsoup's own filter stream does).
  auto child = Ref<GSource>::adopt(
      self->impl->ready.empty()
          ? g_pollable_input_stream_create_source(G_POLLABLE_INPUT_STREAM(self->base), cancellable)
          : g_timeout_source_new(0));
  return g_pollable_source_new_full(stream, child.get(), cancellable);
}

gssize input_read_nonblocking(GPollableInputStream* stream, void* buffer, gsize count,
                              GError** error) {
  return filtered_read(RTGW_FRAME_LIMIT_INPUT(stream), buffer, count, false, nullptr, error);
}

void input_pollable_init(GPollableInputStreamInterface* iface) {
  iface->can_poll = input_can_poll;
  iface->is_readable = input_is_readable;
  iface->create_source = input_create_source;
  iface->read_nonblocking = input_read_nonblocking;
}

}  // namespace

static void rtgw_frame_limit_input_init(RtgwFrameLimitInput* self) {
  self->impl = new InputImpl();  // NOLINT: GObject instance state, deleted in finalize
}

static void rtgw_frame_limit_input_finalize(GObject* object) {
  auto* self = RTGW_FRAME_LIMIT_INPUT(object);
  delete self->impl;  // NOLINT
  g_clear_object(&self->base);
  G_OBJECT_CLASS(rtgw_frame_limit_input_parent_class)->finalize(object);
}

static void rtgw_frame_limit_input_class_init(RtgwFrameLimitInputClass* klass) {
  G_OBJECT_CLASS(klass)->finalize = rtgw_frame_limit_input_finalize;
  G_INPUT_STREAM_CLASS(klass)->read_fn = input_read;
  G_INPUT_STREAM_CLASS(klass)->close_fn = input_close;
}

namespace {

enum { PROP_0, PROP_BASE_IO_STREAM };

GInputStream* stream_get_input(GIOStream* stream) { return RTGW_FRAME_LIMIT_STREAM(stream)->input; }

GOutputStream* stream_get_output(GIOStream* stream) {
  return g_io_stream_get_output_stream(RTGW_FRAME_LIMIT_STREAM(stream)->base);
}

gboolean stream_close(GIOStream* stream, GCancellable* cancellable, GError** error) {
  auto* self = RTGW_FRAME_LIMIT_STREAM(stream);
  g_input_stream_close(self->input, nullptr, nullptr);
  return g_io_stream_close(self->base, cancellable, error);
}

// Closing a socket does not block: done in place (GIOStream's default would use a thread).
void stream_close_async(GIOStream* stream, int, GCancellable* cancellable,
                        GAsyncReadyCallback callback, gpointer user_data) {
  auto task = Ref<GTask>::adopt(g_task_new(stream, cancellable, callback, user_data));
  GError* error = nullptr;
  if (stream_close(stream, cancellable, &error))
    g_task_return_boolean(task.get(), TRUE);
  else
    g_task_return_error(task.get(), error);
}

gboolean stream_close_finish(GIOStream*, GAsyncResult* result, GError** error) {
  return g_task_propagate_boolean(G_TASK(result), error);
}

void stream_get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  if (id == PROP_BASE_IO_STREAM)
    g_value_set_object(value, RTGW_FRAME_LIMIT_STREAM(object)->base);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

}  // namespace

static void rtgw_frame_limit_stream_init(RtgwFrameLimitStream*) {}

static void rtgw_frame_limit_stream_finalize(GObject* object) {
  auto* self = RTGW_FRAME_LIMIT_STREAM(object);
  g_clear_object(&self->input);
  g_clear_object(&self->base);
  G_OBJECT_CLASS(rtgw_frame_limit_stream_parent_class)->finalize(object);
}

static void rtgw_frame_limit_stream_class_init(RtgwFrameLimitStreamClass* klass) {
  GObjectClass* object_class = G_OBJECT_CLASS(klass);
  object_class->finalize = rtgw_frame_limit_stream_finalize;
  object_class->get_property = stream_get_property;
  GIOStreamClass* io_class = G_IO_STREAM_CLASS(klass);
  io_class->get_input_stream = stream_get_input;
  io_class->get_output_stream = stream_get_output;
  io_class->close_fn = stream_close;
  io_class->close_async = stream_close_async;
  io_class->close_finish = stream_close_finish;
  g_object_class_install_property(
      object_class, PROP_BASE_IO_STREAM,
      g_param_spec_object("base-io-stream", "Base I/O stream", "The filtered connection",
                          G_TYPE_IO_STREAM,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
}

namespace rtgw::http {

Ref<GIOStream> wrap_with_frame_limit(GIOStream* base, std::shared_ptr<FrameLimitState> state) {
  auto* input =
      static_cast<RtgwFrameLimitInput*>(g_object_new(RTGW_TYPE_FRAME_LIMIT_INPUT, nullptr));
  input->base = G_INPUT_STREAM(g_object_ref(g_io_stream_get_input_stream(base)));
  input->impl->state = std::move(state);
  auto* stream =
      static_cast<RtgwFrameLimitStream*>(g_object_new(RTGW_TYPE_FRAME_LIMIT_STREAM, nullptr));
  stream->base = G_IO_STREAM(g_object_ref(base));
  stream->input = G_INPUT_STREAM(input);  // the stream owns the reference g_object_new gave
  return Ref<GIOStream>::adopt(G_IO_STREAM(stream));
}

}  // namespace rtgw::http
