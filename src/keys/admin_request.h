// SPDX-License-Identifier: MIT
// The admin API's request bodies and queries (POST /key/generate, /key/update, /key/delete,
// /key/regenerate; GET /key/info, /key/list), parsed strictly.
//
// Owns: turning request text into typed requests, and applying an update's fields to a row. A
// body must be a JSON object whose members are all known and of the right type: anything else
// is a 400 (ApiError, code `invalid_request_error` or `unknown_member`) whose message names the
// member. Pure functions (fuzzed by tests/fuzz/fuzz_key_admin.cc): no I/O, no clock except the
// `now` passed in.
//
// Threads: any.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keys/virtual_key.h"

namespace rtgw::keys {

// The settable fields of a key. Outer optional: the member was given; inner: given as null
// (cleared).
struct KeyFields {
  std::optional<std::string> key_alias;
  std::optional<std::vector<std::string>> models;
  std::optional<std::optional<int>> max_concurrent_calls;
  std::optional<std::optional<double>> budget_usd;
  std::optional<std::optional<std::int64_t>> budget_tokens;
  std::optional<std::optional<std::string>> budget_duration;
  std::optional<std::optional<std::int64_t>> expires_at;
  std::optional<std::optional<std::string>> policy_json;
  std::optional<std::optional<std::string>> metadata_json;
  std::optional<bool> revoked;  // update only
};

// Which key a request is about: its secret or its alias (exactly one).
struct KeyRef {
  std::optional<std::string> key;
  std::optional<std::string> alias;
  std::string describe() const;  // "key_alias 'x'" or "the given key" (never the secret)
};

struct GenerateRequest {
  KeyFields fields;
};
// `key` names the key and `key_alias` (if given) renames it; without `key`, `key_alias` names it.
struct UpdateRequest {
  KeyRef ref;
  KeyFields fields;
};
struct DeleteRequest {
  std::vector<KeyRef> refs;  // from `keys` and `key_aliases`; at least one
};
struct RegenerateRequest {
  KeyRef ref;
};
struct ListQuery {
  int page = 1;   // from 1
  int size = 50;  // 1 to kMaxPageSize
};
inline constexpr int kMaxPageSize = 100;

GenerateRequest parse_generate(const std::string& body);
UpdateRequest parse_update(const std::string& body);
DeleteRequest parse_delete(const std::string& body);
RegenerateRequest parse_regenerate(const std::string& body);
// GET /key/info's query: `key` or `key_alias` (`alias` too), exactly one.
KeyRef parse_info_query(const std::optional<std::string>& key,
                        const std::optional<std::string>& key_alias);
// GET /key/list's query (absent values take the defaults).
ListQuery parse_list_query(const std::optional<std::string>& page,
                           const std::optional<std::string>& size);

// A valid alias: 1 to 64 of [A-Za-z0-9._:-], not starting with "sk-" or "ek_" (which read as
// secrets).
bool valid_alias(const std::string& alias);
// "vk-" + 12 random hex digits.
std::string generated_alias();

// Applies `fields` to `key` (revoked: true sets revoked_at to `now` unless already set; false
// clears it).
void apply_fields(VirtualKey& key, const KeyFields& fields, std::int64_t now);

}  // namespace rtgw::keys
