// SPDX-License-Identifier: MIT
// The checks of a loaded config beyond the file's own (config::load): the ones --check-config
// runs, and a reload runs before it applies anything.
//
// Owns: nothing; it checks that both pipeline descriptions load and have their named elements,
// that the policy object is valid, that the TLS pair loads, and that the ICE interfaces exist.
//
// Threads: the main thread (--check-config before the main loop; a reload on it).
#pragma once

#include "config/config.h"

namespace rtgw::app {

// Throws (std::runtime_error or config::ConfigError) with the message --check-config prints.
// `tls` false: the TLS pair is left to its loader (a reload's TlsIdentity::reload checks it).
void check_loaded_config(const config::Config& config, bool tls = true);

}  // namespace rtgw::app
