// SPDX-License-Identifier: MIT
#include "recording/call_recorder.h"

#include <gst/app/gstappsrc.h>
#include <gst/rtp/gstrtpbuffer.h>

#include <atomic>
#include <stdexcept>

#include "recording/sidecar.h"

namespace rtgw::recording {
namespace {

std::atomic<std::uint64_t> g_failures{0};

constexpr guint kOpusClockRate = 48000;
// What a branch's appsrc may hold before it drops its oldest packets: about 10 s of Opus.
constexpr guint64 kMaxQueuedBytes = 128 * 1024;
// A sender's RTP clock further than this from the packets' arrival clock (a sender restart, a
// new SSRC after failover, a jump): re-time from the arrival of the packet at hand.
constexpr GstClockTime kMaxClockSkew = 2 * GST_SECOND;

Ref<GstElement> make(const char* factory, const std::string& name) {
  GstElement* e = gst_element_factory_make(factory, name.c_str());
  if (!e)
    throw std::runtime_error(std::string("recording: the element '") + factory + "' is missing");
  return Ref<GstElement>::sink(e);
}

}  // namespace

std::uint64_t failures_total() { return g_failures.load(std::memory_order_relaxed); }

namespace {

// What the probes inside a branch's bin share: the re-timing state and the EOS report. It holds
// no GStreamer reference, so the bin (whose pads hold it) and the Branch (which holds the bin) make
// no cycle: the bin is freed with the pipeline.
struct Stream {
  // The EOS reached the file sink: oggmux has written its last page (set on the branch thread).
  std::atomic<bool> eos_written{false};
  // Where the branch thread reports the EOS (post_if_alive on the recorder).
  Liveness owner_alive;
  CallRecorder* owner = nullptr;
  // Re-timing, on the branch thread only.
  bool timed = false;
  guint64 ext_rtp = G_MAXUINT64;  // extended RTP timestamp of the last packet (none yet)
  guint64 base_rtp = 0;
  GstClockTime base_pts = 0;
  GstClockTime first_arrival = GST_CLOCK_TIME_NONE;
  GstClockTime last_pts = GST_CLOCK_TIME_NONE;
};

}  // namespace

struct CallRecorder::Branch {
  std::string direction;
  std::string path;
  Ref<GstElement> bin;
  Ref<GstElement> appsrc;
  Ref<GstPad> head_pad;
  gulong head_probe = 0;  // removed at finish() or with the recorder: it holds this Branch
  // Set on the main loop at finish or failure: the head's probe pushes nothing more.
  std::atomic<bool> stopped{false};
  std::shared_ptr<Stream> stream = std::make_shared<Stream>();
  // Main loop.
  bool failed = false;
  bool eos_written() const { return stream->eos_written.load(); }
};

namespace {

using BranchRef = std::shared_ptr<CallRecorder::Branch>;
using StreamRef = std::shared_ptr<Stream>;

template <typename T>
T* hold(const T& ref) {
  return new T(ref);
}
template <typename T>
void release(gpointer data) {
  delete static_cast<T*>(data);
}

// The head's probe: the relayed packet, by reference, into the branch (never blocks).
GstPadProbeReturn on_head_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto& branch = *static_cast<BranchRef*>(data);
  if (branch->stopped.load(std::memory_order_relaxed)) return GST_PAD_PROBE_OK;
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  gst_app_src_push_buffer(GST_APP_SRC(branch->appsrc.get()), gst_buffer_ref(buffer));
  return GST_PAD_PROBE_OK;
}

// On the branch thread, before rtpopusdepay: each packet's time in the file from its RTP
// timestamp, the first packet at 0 (so the Ogg stream starts at granule 0 and lasts as long as
// the audio sent). A packet older than the last (reordered) is left out of the file.
GstPadProbeReturn on_depay_buffer(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto& b = **static_cast<StreamRef*>(data);
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp)) return GST_PAD_PROBE_DROP;
  guint32 ts = gst_rtp_buffer_get_timestamp(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  GstClockTime arrival = GST_BUFFER_PTS(buffer);
  guint64 ext = gst_rtp_buffer_ext_timestamp(&b.ext_rtp, ts);
  if (!b.timed) {
    b.timed = true;
    b.base_rtp = ext;
    b.base_pts = 0;
    b.first_arrival = arrival;
  }
  GstClockTime pts =
      ext >= b.base_rtp
          ? b.base_pts + gst_util_uint64_scale_int(ext - b.base_rtp, GST_SECOND, kOpusClockRate)
          : GST_CLOCK_TIME_NONE;
  // The arrival clock, from the first packet: the check on the sender's RTP clock.
  GstClockTime elapsed = GST_CLOCK_TIME_IS_VALID(arrival) &&
                                 GST_CLOCK_TIME_IS_VALID(b.first_arrival) &&
                                 arrival >= b.first_arrival
                             ? arrival - b.first_arrival
                             : GST_CLOCK_TIME_NONE;
  if (!GST_CLOCK_TIME_IS_VALID(pts) ||
      (GST_CLOCK_TIME_IS_VALID(elapsed) &&
       (GST_CLOCK_DIFF(pts, elapsed) > GstClockTimeDiff(kMaxClockSkew) ||
        GST_CLOCK_DIFF(elapsed, pts) > GstClockTimeDiff(kMaxClockSkew)))) {
    // Re-based on this packet's arrival, never before what is written already.
    GstClockTime next =
        GST_CLOCK_TIME_IS_VALID(b.last_pts) ? b.last_pts + 20 * GST_MSECOND : GstClockTime{0};
    b.base_rtp = ext;
    b.base_pts = GST_CLOCK_TIME_IS_VALID(elapsed) && elapsed > next ? elapsed : next;
    pts = b.base_pts;
  }
  if (GST_CLOCK_TIME_IS_VALID(b.last_pts) && pts <= b.last_pts) return GST_PAD_PROBE_DROP;
  b.last_pts = pts;
  buffer = gst_buffer_make_writable(buffer);  // a new buffer header; the payload is shared
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DTS(buffer) = GST_CLOCK_TIME_NONE;
  GST_PAD_PROBE_INFO_DATA(info) = buffer;
  return GST_PAD_PROBE_OK;
}

// On the branch thread: the EOS reached the file sink, after oggmux's last page (the sink writes
// unbuffered, so every page is in the file now).
GstPadProbeReturn on_sink_event(GstPad*, GstPadProbeInfo* info, gpointer data) {
  if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) != GST_EVENT_EOS) return GST_PAD_PROBE_OK;
  auto stream = *static_cast<StreamRef*>(data);
  stream->eos_written.store(true);
  post_if_alive(stream->owner_alive, [stream] { stream->owner->on_branch_done(); });
  return GST_PAD_PROBE_OK;
}

}  // namespace

CallRecorder::CallRecorder(GstElement* pipeline, RecordingPlan plan,
                           const std::vector<Direction>& directions)
    : plan_(std::move(plan)) {
  for (const auto& d : directions) {
    auto branch = std::make_shared<Branch>();
    branch->direction = d.name;
    branch->path = audio_path(plan_.dir, plan_.call_id, d.name);
    branch->stream->owner_alive = lifetime_.watch();
    branch->stream->owner = this;
    std::string prefix = "recording_" + d.name;
    branch->bin = Ref<GstElement>::sink(gst_bin_new(prefix.c_str()));
    branch->appsrc = make("appsrc", prefix + "_src");
    auto depay = make("rtpopusdepay", prefix + "_depay");
    auto parse = make("opusparse", prefix + "_parse");
    auto mux = make("oggmux", prefix + "_mux");
    auto sink = make("filesink", prefix + "_file");

    // Fixed caps (accept-caps wants a subset of the depayloader's template). The payload type
    // is any dynamic one: rtpopusdepay does not compare it with the packets'.
    auto caps = Ref<GstCaps>::adopt(
        gst_caps_from_string("application/x-rtp, media=(string)audio, clock-rate=(int)48000, "
                             "encoding-name=(string)OPUS, payload=(int)96"));
    GstAppSrc* src = GST_APP_SRC(branch->appsrc.get());
    gst_app_src_set_caps(src, caps.get());
    gst_app_src_set_stream_type(src, GST_APP_STREAM_TYPE_STREAM);
    gst_app_src_set_max_bytes(src, kMaxQueuedBytes);
    gst_app_src_set_leaky_type(src, GST_APP_LEAKY_TYPE_DOWNSTREAM);
    g_object_set(src, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", FALSE, "block",
                 FALSE, nullptr);
    g_object_set(sink.get(), "location", branch->path.c_str(), "sync", FALSE, "async", FALSE,
                 nullptr);
    gst_util_set_object_arg(G_OBJECT(sink.get()), "buffer-mode", "unbuffered");

    // Started by start() once the call's pipeline runs, so that a file that cannot be opened
    // does not fail the pipeline's own start.
    gst_element_set_locked_state(branch->bin.get(), TRUE);
    GstBin* bin = GST_BIN(branch->bin.get());
    for (const auto& e : {branch->appsrc, depay, parse, mux, sink}) gst_bin_add(bin, e.get());
    if (!gst_element_link_many(branch->appsrc.get(), depay.get(), parse.get(), mux.get(),
                               sink.get(), nullptr))
      throw std::runtime_error("recording: cannot link the " + d.name + " branch");
    if (!gst_bin_add(GST_BIN(pipeline), branch->bin.get()))
      throw std::runtime_error("recording: cannot add the " + d.name + " branch");

    auto depay_sink = Ref<GstPad>::adopt(gst_element_get_static_pad(depay.get(), "sink"));
    gst_pad_add_probe(depay_sink.get(), GST_PAD_PROBE_TYPE_BUFFER, on_depay_buffer,
                      hold(branch->stream), release<StreamRef>);
    auto file_sink = Ref<GstPad>::adopt(gst_element_get_static_pad(sink.get(), "sink"));
    gst_pad_add_probe(file_sink.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_sink_event,
                      hold(branch->stream), release<StreamRef>);

    auto head = Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline), d.head.c_str()));
    if (!head) throw std::runtime_error("recording: the call pipeline has no '" + d.head + "'");
    branch->head_pad = Ref<GstPad>::adopt(gst_element_get_static_pad(head.get(), "src"));
    if (!branch->head_pad) throw std::runtime_error("recording: '" + d.head + "' has no src pad");
    branch->head_probe = gst_pad_add_probe(branch->head_pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
                                           on_head_buffer, hold(branch), release<BranchRef>);
    branches_.push_back(std::move(branch));
  }
  sidecar_ = Sidecar{plan_.call_id, plan_.key_name, plan_.model, g_get_real_time() / 1000, 0};
  write_sidecar(plan_, sidecar_);
  g_message("[%s] recording to %s/%s.{%s}.ogg", plan_.call_id.c_str(), plan_.dir.c_str(),
            plan_.call_id.c_str(), directions.size() == 2 ? "client,upstream" : "...");
}

CallRecorder::~CallRecorder() {
  // The pipeline may outlive the recorder (the reaper stops it later): no packet goes on, and the
  // probes' branch references go with them.
  for (auto& b : branches_) {
    b->stopped.store(true);
    if (b->head_probe) gst_pad_remove_probe(b->head_pad.get(), b->head_probe);
  }
}

void CallRecorder::finish() {
  if (finishing_) return;
  finishing_ = true;
  sidecar_.ended_unix_ms = g_get_real_time() / 1000;
  write_sidecar(plan_, sidecar_);
  for (auto& b : branches_) {
    b->stopped.store(true);
    if (b->head_probe) {
      gst_pad_remove_probe(b->head_pad.get(), b->head_probe);
      b->head_probe = 0;
    }
    // Queued after the packets the appsrc still holds: they are written first.
    if (!b->failed) gst_app_src_end_of_stream(GST_APP_SRC(b->appsrc.get()));
  }
}

bool CallRecorder::wait_finished(guint bound_ms, std::function<void()> done) {
  finish();
  if (waited_) return static_cast<bool>(on_finished_);  // still waiting: the first `done` comes
  waited_ = true;
  if (!started_) return false;  // never started (the call's start failed): nothing to finish
  bool pending = false;
  for (auto& b : branches_) pending = pending || (!b->failed && !b->eos_written());
  if (!pending) return false;
  on_finished_ = std::move(done);
  finish_bound_ = run_after_ms(bound_ms, [this, bound_ms] {
    for (auto& b : branches_)
      if (!b->failed && !b->eos_written())
        g_warning(
            "[%s] recording %s: its end not written after %u ms; the file may lack its "
            "last page",
            plan_.call_id.c_str(), b->path.c_str(), bound_ms);
    if (auto fn = std::exchange(on_finished_, nullptr)) fn();
  });
  return true;
}

void CallRecorder::on_branch_done() {
  if (!on_finished_) return;
  for (auto& b : branches_)
    if (!b->failed && !b->eos_written()) return;
  finish_bound_.cancel();
  if (auto fn = std::exchange(on_finished_, nullptr)) fn();
}

void CallRecorder::start(GstElement* pipeline) {
  started_ = true;
  for (auto& b : branches_) {
    // Started apart from the pipeline (its state was locked): a file that cannot be opened fails
    // this branch, not the call's start.
    if (gst_element_sync_state_with_parent(b->bin.get())) {
      gst_element_set_locked_state(b->bin.get(), FALSE);  // stopped with the pipeline
      continue;
    }
    if (!b->failed) fail(*b, "cannot start (is " + plan_.dir + " writable?)");
    gst_element_set_state(b->bin.get(), GST_STATE_NULL);
    gst_bin_remove(GST_BIN(pipeline), b->bin.get());
  }
}

void CallRecorder::fail(Branch& b, const std::string& why) {
  b.failed = true;
  b.stopped.store(true);
  g_failures.fetch_add(1, std::memory_order_relaxed);
  g_warning("[%s] recording %s stopped: %s; the call goes on unrecorded in that direction",
            plan_.call_id.c_str(), b.path.c_str(), why.c_str());
  on_branch_done();
}

bool CallRecorder::handle_error(GstMessage* message) {
  GstObject* src = GST_MESSAGE_SRC(message);
  for (auto& b : branches_) {
    if (src != GST_OBJECT(b->bin.get()) &&
        !gst_object_has_as_ancestor(src, GST_OBJECT(b->bin.get())))
      continue;
    if (b->failed) return true;  // the same failure, seen again from another element
    GError* raw = nullptr;
    gst_message_parse_error(message, &raw, nullptr);
    UniqueError err(raw);
    fail(*b, std::string(GST_OBJECT_NAME(src)) + ": " + (err ? err->message : "?"));
    return true;
  }
  return false;
}

json::ObjectBuilder CallRecorder::describe() const {
  json::ObjectBuilder out;
  for (const auto& b : branches_) {
    const char* state = b->failed ? "failed" : b->eos_written() ? "finished" : "recording";
    out.set(b->direction.c_str(), state);
  }
  return out;
}

}  // namespace rtgw::recording
