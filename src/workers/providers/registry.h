// SPDX-License-Identifier: MIT
// The upstream dialects, keyed by the config's `provider` name.
//
// Owns: the one list of dialects (registry.cpp); each dialect's accessor is defined in its own
// file. config/ reaches the same list through config/worker_dialect.h, without including this.
//
// Threads: any.
#pragma once

#include <string>
#include <vector>

#include "workers/providers/provider.h"

namespace rtgw::workers::providers {

// The dialect named `name`; nullptr when there is none.
const Provider* find(const std::string& name);
// The dialect named `name`; throws std::invalid_argument when there is none (the config reader
// refuses such a worker first, so this only fires on a config built by hand).
const Provider& get(const std::string& name);
// Every dialect, in registry order.
const std::vector<const Provider*>& all();

// One accessor per dialect file.
const Provider& openai();   // openai.cpp
const Provider& azure();    // azure.cpp
const Provider& generic();  // generic.cpp
const Provider& echo();     // echo.cpp

}  // namespace rtgw::workers::providers
