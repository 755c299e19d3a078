// SPDX-License-Identifier: MIT
// SCTP association ids, allocated process-wide.
//
// Every webrtcbin 1.22 picks its SCTP association id with g_random_int_range(0, G_MAXUINT16)
// (webrtcsctptransport.c). usrsctp's associations are keyed by that id in one table per process:
// when the id is already live, the new sctpenc fails to reach PAUSED but leaves its task running,
// and finalizing that webrtcbin hangs (GStreamer issue 4188, fixed in 1.27.1+ only). That is
// about (live legs)/65535 per new leg: 0.3 % per leg at 100 live calls.
//
// Here each webrtcbin gets an id no other live one of the process holds (`assign()`, at
// pipeline build time), kept as object data on the webrtcbin and given back when the webrtcbin
// is finalized. `apply()` (from the pipeline's `deep-element-added`, before webrtcbin syncs the
// new element's state) writes it into the sctpenc and sctpdec webrtcbin adds when its data
// channel transport is created, over the random one.
//
// Owns: the set of live ids (one mutex).
//
// Threads: any. `assign()` on the main loop; `apply()` on the thread that adds the element (a
// webrtcbin `:pc` thread); the release on whatever thread drops the webrtcbin's last reference
// (the reaper's).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <functional>
#include <optional>

namespace rtgw::webrtc::sctp_ids {

// What the allocator would pick first (random by default). Tests replace it to force the clash
// the random choice would make; the env var RTGW_TEST_SCTP_ID_PROPOSAL=N (test hook, read once)
// makes the default proposer always say N. RTGW_TEST_SCTP_ID_UNALLOCATED=N (test hook) instead
// gives every sctpenc/sctpdec the id N, live or not: the clash the allocator prevents.
using Proposer = std::function<std::uint16_t()>;
void set_proposer(Proposer proposer);  // nullptr: the default

// An id no live holder has: the proposer's, or when that one is live the next free one after
// it. nullopt only when all 65535 are live.
std::optional<std::uint16_t> acquire();
void release(std::uint16_t id);
bool is_live(std::uint16_t id);
std::size_t live_count();

// Gives `webrtcbin` an id for its life (released when it is finalized). False when none is free
// (the webrtcbin keeps its own random one).
bool assign(GstElement* webrtcbin);
// The id assign() gave the webrtcbin `element` belongs to (nullopt: none).
std::optional<std::uint16_t> assigned(GstElement* element);
// The id the sctpenc inside `webrtcbin` actually uses (nullopt: it has no data channel transport
// yet). Main loop (walks the bin).
std::optional<std::uint16_t> in_use(GstElement* webrtcbin);
// For the pipeline's deep-element-added: an sctpenc or sctpdec inside an assigned webrtcbin gets
// its id. Returns true when it set one.
bool apply(GstElement* added);

}  // namespace rtgw::webrtc::sctp_ids
