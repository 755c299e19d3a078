// SPDX-License-Identifier: MIT
// Readers for the config keys that are not one scalar: arrays of objects and open objects.
//
// Owns: `auth.keys[]`, `models[]` (workers, pricing), the `policy` object's text and what a
// `cluster` section implies. Each is named by its row in config/schema.cpp; member names and
// ranges come from the member rows there (`models[].workers[].max_calls`), so a member is still
// one row plus its read here.
//
// Threads: the loading thread only.
#pragma once

#include <json-glib/json-glib.h>

#include <string>

#include "config/config.h"

namespace rtgw::config {

class Reader;

void read_keys(const Reader& r, JsonNode* node, const std::string& path, Config& c);
void read_models(const Reader& r, JsonNode* node, const std::string& path, Config& c);
void read_policy(const Reader& r, JsonNode* node, const std::string& path, Config& c);
void read_cluster(const Reader& r, JsonNode* node, const std::string& path, Config& c);
void enable_cluster(Config& c);
// telemetry.headers: an object of strings, each value possibly "env:NAME".
void read_telemetry_headers(const Reader& r, JsonNode* node, const std::string& path, Config& c);

}  // namespace rtgw::config
