// SPDX-License-Identifier: MIT
// The virtual key admin API (SPEC "Run-time keys"): POST /key/generate, /key/update,
// /key/delete, /key/regenerate; GET /key/info, /key/list.
//
// Owns: the routes' HTTP side only: who may call (admin keys: 401 without a key, 403 for a
// non-admin; 501 key_store_not_configured without `auth.key_store`), the bodies' parsing
// (keys/admin_request.h, pure), the answers' JSON, and the store's outcomes as the SPEC's errors
// (404 key_not_found, 400 key_alias_exists, 503 key_store_unavailable). Writes wait for the key
// store off the main loop (the message is paused meanwhile); reads answer from the mirror.
//
// Threads: main loop.
#pragma once

#include <libsoup/soup.h>

#include <string>

#include "http/server.h"

namespace rtgw::http {

inline constexpr const char* kKeyRoutesPrefix = "/key/";

// Answers `method` `path` (under kKeyRoutesPrefix). Throws HttpError.
void handle_key_route(const Services& services, SoupServerMessage* msg, const std::string& method,
                      const std::string& path, GHashTable* query);

}  // namespace rtgw::http
