// SPDX-License-Identifier: MIT
// Which `Host` values name this machine's loopback.
//
// Owns: the DNS-rebinding guard of the keyless loopback mode. A page a developer visits can make
// its own name resolve to 127.0.0.1 and then talk to the gateway as a same-origin page; the
// browser still sends that name in `Host`, so a keyless gateway answers only requests whose Host
// is `localhost`, a `*.localhost` name (RFC 6761: browsers resolve them to loopback themselves),
// an IPv4 address in 127.0.0.0/8 or `[::1]`, each with or without a port.
//
// Threads: any (pure); called by the route layer on the main loop.
#pragma once

#include <string>

namespace rtgw::http {

// `host` is the raw Host header value; a missing one (HTTP/1.0) is not loopback.
bool is_loopback_host(const std::string& host);

}  // namespace rtgw::http
