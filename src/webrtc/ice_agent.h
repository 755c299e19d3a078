// SPDX-License-Identifier: MIT
// The gateway's ICE agent for webrtcbin (issue 22): every call's libnice agent on one shared
// thread, with RFC 7675 consent freshness, installed through webrtcbin's construct-only
// `ice-agent` property.
//
// What it is, and why this shape (docs/media-trust.md, "The ICE agent, consent freshness and
// threads"): a subclass of the stock GstWebRTCNice that keeps every one of its ICE methods (STUN,
// TURN, ICE-TCP, mDNS resolution, add-local-ip-address, port ranges, statistics) and replaces only
// what 1.22 hard-codes per instance:
//   - the libnice agent: created with nice_agent_new_full() on one of the shared
//     contexts, round robin (ice_context.h) with NICE_AGENT_OPTION_CONSENT_FRESHNESS, instead of on
//     a new context with a thread of its own (the stock `<name>:ice` thread);
//   - the receive element of each ICE transport: `rtgwicesrc` (ice_source.h), pushing from the
//     shared thread, instead of `nicesrc` and its streaming thread.
// 1.22 creates the agent in GstWebRTCNice's private `constructed` and keeps it in its private
// struct, so this subclass writes the agent, context and loop into that struct; its layout is
// 1.22.0's, and install_shared_ice_agent() first checks it against a stock instance and keeps
// the stock agent when it does not match.
//
// Installing: a subclass of webrtcbin whose GObject `constructor` supplies `ice-agent` (unless
// the caller gave one) is registered as the `webrtcbin` factory, so every webrtcbin the process
// makes (pipeline files, the echo worker) gets the shared agent.
//
// Owns: the registered types. Threads: install_* on the main thread before any webrtcbin exists;
// the agent's signals run on its `rtgw-ice-N`; its methods on webrtcbin's threads (as stock).
#pragma once

#include <gst/gst.h>

#include <string>

namespace rtgw::webrtc {

// How long libnice 0.1.21 waits for an answer to its consent checks (sent every 4-6 s) before it
// declares consent lost and fails the component: NICE_AGENT_TIMER_CONSENT_TIMEOUT, 10 s, fixed at
// build time (RFC 7675 says 30 s). A call with the shared agent ends this long after its peer
// went silent, whatever webrtc.peer_timeout_seconds says above it.
inline constexpr int kConsentTimeoutSeconds = 10;

// Registers `rtgwicesrc` and the `webrtcbin` subclass. Returns "" when installed, else why the
// stock agent stays (the layout check failed, or webrtcbin is missing). Idempotent: later calls
// return the first answer.
std::string install_shared_ice_agent();

// True once install_shared_ice_agent() succeeded in this process.
bool shared_ice_agent_installed();

// Checks GstWebRTCNice's private layout against a stock instance ("" when it matches).
std::string check_nice_layout();

// A new (floating) shared-context ICE agent named `name`, as the webrtcbin subclass creates.
GstObject* new_shared_ice_agent(const char* name);

}  // namespace rtgw::webrtc
