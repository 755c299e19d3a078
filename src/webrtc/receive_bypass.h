// SPDX-License-Identifier: MIT
// The receive-queue bypass (issue 28): once a leg's ICE is connected, what `rtgwicesrc` reads is
// processed on the leg's ICE thread (`rtgw-ice-N`, its agent's context: ice_context.h), not handed
// to transportreceivebin's `queue` thread, and that queue's task is stopped so its thread goes back
// to GStreamer's pool.
//
// 1.22's transportreceivebin links `ICE src -> capsfilter -> queue -> dtlssrtpdec`. The queue
// (5 MiB, leaky=downstream while blocked) exists for one reason: until the bin is in PASS with ICE
// connected, a BLOCK probe on the queue's src pad holds data back, and the queue's thread is the
// one that blocks while the ICE source keeps receiving. In PASS it only costs a futex wake-up per
// packet (RTP, DTLS, SCTP-in-DTLS) and a thread per webrtcbin.
//
// Three modes, per ICE source:
//   QUEUED   the stock path: packets go through the queue and its thread.
//   DRAINING PASS is effective (no block probe on the queue's src pad) and dtlssrtpdec's sink has
//            had its sticky events: packets still go through the queue, under `mutex_`, until the
//            queue's thread pushes a packet with nothing left behind it. In that push (a probe on
//            dtlssrtpdec's sink, under that pad's stream lock) it takes `mutex_` (trylock: it
//            never waits), sees the queue empty, stops its own task (gst_task_stop: no join; the
//            thread finishes this push, leaves the task function and returns to the pool) and
//            switches to DIRECT.
//   DIRECT   a probe on the queue's sink pad (the ICE thread, in the push through the capsfilter)
//            chains each buffer into dtlssrtpdec's sink itself and reports it handled: probes
//            upstream of the queue (peer liveness counts packets on the ICE source's pad) still
//            see every packet.
// Back to QUEUED on the first packet that finds a block probe on the queue's src pad (ICE
// disconnected or failed, the bin set to BLOCK): the queue's task is restarted (under the queue
// src pad's object lock, only if the pad is not flushing and the stopped task's thread is gone:
// never a wait on the ICE thread), then the packet goes into the queue, where the block holds it
// on the queue's thread, as stock.
//
// Why it is safe:
//   - no reorder, no loss at the switch: DIRECT starts only when the queue is empty, decided under
//     `mutex_`, which the ICE thread holds while it enqueues in DRAINING; and it starts inside the
//     queue thread's last push, holding dtlssrtpdec's sink stream lock, so the ICE thread's first
//     direct packet waits until that last queued packet is through. Leaving DIRECT needs no drain:
//     the queue is empty (nothing entered it).
//   - the ICE thread never blocks on a BLOCK probe: a packet found blocked goes to the queue; a
//     packet that races the bin's switch to BLOCK reaches dtlssrtpdec a moment early, which is
//     harmless (the probe protects the queue's task from a FLUSHING return; a direct push just
//     returns it). rtgwicesrc's src pad is only pushed while not flushing, and the bypass is
//     bound between its READY->PAUSED and PAUSED->READY (after the ICE callback is detached).
//   - teardown: a pad deactivation (gst_pad_stop_task) joins a stopped task at once; a flush
//     (queue's pause_task) starts it again as stock; the restart checks the flushing flag under
//     the pad's object lock, so it never revives a task being stopped.
//   - what runs on the ICE thread in DIRECT is what ran on the queue's thread: DTLS, SRTP,
//     rtpbin (its new-SSRC pad-added takes webrtcbin's PC lock, briefly), rtpforward, the
//     other leg's send path up to dtlsenc's own queue (its pre-DTLS block is gone before the
//     media gate lets audio across), sctpdec (which hands off to its own src tasks).
//   - the two legs of a call may sit on different ICE threads (agents are spread round robin):
//     each source's bypass state (mode_, mutex_, restart_pending_) is only touched by its own
//     agent's thread and its own queue's thread, as with one ICE thread; and each leg's thread
//     entering the other leg's send path concurrently is what the two stock queue threads did.
// Only with the shared ICE agent (`rtgwicesrc`); `webrtc.receive_queue_bypass: false` keeps the
// stock path.
//
// Owns: the probes on the queue's sink pad and dtlssrtpdec's sink pad, references to the pads.
// Threads: bind/unbind in rtgwicesrc's state changes; push() on the source's agent's ICE thread
// under its pad's stream lock; the drain probe on the queue's thread.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "common/ref.h"

namespace rtgw::webrtc {

// Process-wide switch (config webrtc.receive_queue_bypass), set at start-up before any call.
void set_receive_queue_bypass(bool enabled);
bool receive_queue_bypass_enabled();

class ReceiveBypass {
 public:
  enum class Mode { kQueued, kDraining, kDirect };

  ReceiveBypass() = default;
  ~ReceiveBypass();
  ReceiveBypass(const ReceiveBypass&) = delete;
  ReceiveBypass& operator=(const ReceiveBypass&) = delete;

  // Finds `src_pad -> capsfilter -> queue -> peer` and installs the probes. False (stock path
  // kept) when switched off or the graph is not 1.22's. `owner` is kept alive by the probes.
  bool bind(GstElement* owner, GstPad* src_pad);
  // Removes the probes and forgets the pads. No push may be in flight.
  void unbind();

  // On the source's ICE thread: pushes `buffer` (taken) on `src_pad`, choosing the mode first.
  GstFlowReturn push(GstPad* src_pad, GstBuffer* buffer);

  Mode mode() const { return mode_.load(std::memory_order_acquire); }
  std::uint64_t direct_packets() const { return direct_.load(std::memory_order_relaxed); }
  std::uint64_t switches() const { return switches_.load(std::memory_order_relaxed); }

 private:
  static GstPadProbeReturn on_queue_sink(GstPad* pad, GstPadProbeInfo* info, gpointer data);
  static GstPadProbeReturn on_decoder_sink(GstPad* pad, GstPadProbeInfo* info, gpointer data);

  bool passing() const;  // no block probe on the queue's src pad
  bool decoder_has_segment() const;
  bool queue_empty() const;
  void try_restart_task();  // ICE thread; clears restart_pending_ when done or moot
  void stop_own_task();     // the queue's thread, in its push

  Ref<GstElement> queue_;
  Ref<GstPad> queue_sink_;
  Ref<GstPad> queue_src_;
  Ref<GstPad> decoder_sink_;
  gulong queue_sink_probe_ = 0;
  gulong decoder_sink_probe_ = 0;
  std::atomic<Mode> mode_{Mode::kQueued};
  std::mutex mutex_;              // DRAINING: held by the ICE thread while it enqueues
  bool restart_pending_ = false;  // ICE thread only: the task we stopped is not started again yet
  std::atomic<std::uint64_t> direct_{0};
  std::atomic<std::uint64_t> switches_{0};
};

}  // namespace rtgw::webrtc
