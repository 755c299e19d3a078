// SPDX-License-Identifier: MIT
// The HTTP layer's name for the SPEC's API error (common/api_error.h). Handlers throw HttpError;
// the route layer (http/server.cpp) turns it into `{"error": {...}}` exactly once.
//
// Threads: main loop (thrown and caught inside the HTTP handlers).
#pragma once

#include "common/api_error.h"

namespace rtgw::http {

using HttpError = ::rtgw::ApiError;
// Shorthands for the SPEC's error table (errors::bad_request, ...).
namespace errors = ::rtgw::api_errors;

}  // namespace rtgw::http
