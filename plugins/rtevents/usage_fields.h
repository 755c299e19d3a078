// SPDX-License-Identifier: MIT
// The token fields of a usage record, declared once (part of the event vocabulary, vocab.h).
//
// Owns: `TokenCounts` (a turn's token counts; the plugin's `Usage` and the gateway's
// `usage::UsageRecord` both derive from it), the field table `kTokenFields` (one row per count:
// where it sits in a Realtime `usage` object, its GstStructure field, its record / JSONL /
// SQL column name, its `rtgw_tokens_total` kind and what pricing reads it as), the nested objects
// it sits in (`kTokenGroups`), and the conversions that need nothing but the table: reading an
// upstream `usage` object, writing and reading the meter's GstStructure fields, adding counts.
//
// Every other consumer walks the same table: the JSONL log line (usage/usage_ledger.cpp), the
// PostgreSQL columns (usage/postgres_ledger.cpp), pricing (usage/pricing.cpp, by `TokenPrice`
// tag) and the token metrics (accounting/call_accounting.cpp). Adding a token field is one row
// here (and its member in TokenCounts) plus its test (tests/unit/test_usage_fields.cpp walks the
// table through every consumer).
//
// Threads: any (constant tables and pure functions).
#pragma once

#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "json.h"

namespace rtgw::rtevents {

// A turn's token counts, as the upstream's `usage` object carries them. Every count is within
// [0, usage::kMaxTurnTokens] when read from an event (read_token_counts).
struct TokenCounts {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t total_tokens = 0;
  std::int64_t input_text_tokens = 0;
  std::int64_t input_audio_tokens = 0;
  std::int64_t input_image_tokens = 0;
  std::int64_t input_cached_tokens = 0;
  std::int64_t input_cached_text_tokens = 0;  // input_token_details.cached_tokens_details
  std::int64_t input_cached_audio_tokens = 0;
  std::int64_t input_cached_image_tokens = 0;
  std::int64_t output_text_tokens = 0;
  std::int64_t output_audio_tokens = 0;
  // The upstream sent input_token_details.cached_tokens_details (its rows are then written to the
  // log and the table; without it the log omits the object and the columns are NULL, and pricing
  // reads every cached token as text).
  bool cached_details_present = false;
};

// The objects of a `usage` object that hold token counts, in the order they are written.
enum class TokenGroup { kUsage, kInputDetails, kCachedDetails, kOutputDetails };

struct TokenGroupInfo {
  TokenGroup group;
  TokenGroup parent;
  const char* key;         // its member name inside the parent
  bool only_with_details;  // written only when TokenCounts::cached_details_present
};

inline constexpr TokenGroupInfo kTokenGroups[] = {
    {TokenGroup::kInputDetails, TokenGroup::kUsage, "input_token_details", false},
    {TokenGroup::kCachedDetails, TokenGroup::kInputDetails, "cached_tokens_details", true},
    {TokenGroup::kOutputDetails, TokenGroup::kUsage, "output_token_details", false},
};

// What pricing (usage/pricing.h) reads a count as: its direction, modality (kAll: every modality,
// e.g. `input_tokens`), and whether it counts cached input. kUnpriced: not a component of a price
// (`total_tokens`, the budget's count).
enum class TokenFlow { kUnpriced, kInput, kOutput };
enum class TokenModality { kAll, kText, kAudio, kImage };

struct TokenPrice {
  TokenFlow flow = TokenFlow::kUnpriced;
  TokenModality modality = TokenModality::kAll;
  bool cached = false;
};

struct TokenField {
  std::int64_t TokenCounts::*member;
  // The record's name for it: the `UsageRecord` member, the PostgreSQL column.
  const char* name;
  // Where it sits in a Realtime `usage` object (and a JSONL line, which nests it alike).
  TokenGroup group;
  const char* key;
  // The `rtusage-turn` GstStructure field rtusagemeter posts (gint64).
  const char* gst_field;
  // The `kind` label of `rtgw_tokens_total`; nullptr: no series.
  const char* metric_kind;
  TokenPrice price;
  // Its PostgreSQL column is NULL (and its JSONL object left out) unless cached_details_present.
  bool only_with_details = false;
};

// The table. Row order is the order of the JSONL line's members and of the table's columns.
// clang-format off
inline constexpr TokenField kTokenFields[] = {
  {&TokenCounts::input_tokens, "input_tokens", TokenGroup::kUsage, "input_tokens",
   "input-tokens", "input", {TokenFlow::kInput, TokenModality::kAll, false}},
  {&TokenCounts::output_tokens, "output_tokens", TokenGroup::kUsage, "output_tokens",
   "output-tokens", "output", {TokenFlow::kOutput, TokenModality::kAll, false}},
  {&TokenCounts::total_tokens, "total_tokens", TokenGroup::kUsage, "total_tokens",
   "total-tokens", nullptr, {}},
  {&TokenCounts::input_text_tokens, "input_text_tokens", TokenGroup::kInputDetails, "text_tokens",
   "input-text-tokens", "input_text", {TokenFlow::kInput, TokenModality::kText, false}},
  {&TokenCounts::input_audio_tokens, "input_audio_tokens", TokenGroup::kInputDetails,
   "audio_tokens", "input-audio-tokens", "input_audio",
   {TokenFlow::kInput, TokenModality::kAudio, false}},
  {&TokenCounts::input_image_tokens, "input_image_tokens", TokenGroup::kInputDetails,
   "image_tokens", "input-image-tokens", "input_image",
   {TokenFlow::kInput, TokenModality::kImage, false}},
  {&TokenCounts::input_cached_tokens, "input_cached_tokens", TokenGroup::kInputDetails,
   "cached_tokens", "input-cached-tokens", "input_cached",
   {TokenFlow::kInput, TokenModality::kAll, true}},
  {&TokenCounts::input_cached_text_tokens, "input_cached_text_tokens", TokenGroup::kCachedDetails,
   "text_tokens", "input-cached-text-tokens", "input_cached_text",
   {TokenFlow::kInput, TokenModality::kText, true}, true},
  {&TokenCounts::input_cached_audio_tokens, "input_cached_audio_tokens",
   TokenGroup::kCachedDetails, "audio_tokens", "input-cached-audio-tokens", "input_cached_audio",
   {TokenFlow::kInput, TokenModality::kAudio, true}, true},
  {&TokenCounts::input_cached_image_tokens, "input_cached_image_tokens",
   TokenGroup::kCachedDetails, "image_tokens", "input-cached-image-tokens", "input_cached_image",
   {TokenFlow::kInput, TokenModality::kImage, true}, true},
  {&TokenCounts::output_text_tokens, "output_text_tokens", TokenGroup::kOutputDetails,
   "text_tokens", "output-text-tokens", "output_text",
   {TokenFlow::kOutput, TokenModality::kText, false}},
  {&TokenCounts::output_audio_tokens, "output_audio_tokens", TokenGroup::kOutputDetails,
   "audio_tokens", "output-audio-tokens", "output_audio",
   {TokenFlow::kOutput, TokenModality::kAudio, false}},
};
// clang-format on
inline constexpr std::size_t kTokenFieldCount = std::size(kTokenFields);

// The GstStructure field saying TokenCounts::cached_details_present (gboolean).
inline constexpr const char* kCachedDetailsGstField = "input-cached-details-present";

inline std::int64_t& count_of(TokenCounts& c, const TokenField& f) { return c.*f.member; }
inline std::int64_t count_of(const TokenCounts& c, const TokenField& f) { return c.*f.member; }

// The sum of the counts pricing reads as (flow, modality, cached) (one row each today).
std::int64_t priced_count(const TokenCounts& c, TokenFlow flow, TokenModality modality,
                          bool cached);

// The member names from the `usage` object down to `group` (0 for kUsage), outermost first;
// returns how many it wrote to `keys` (at most 4).
std::size_t group_path(TokenGroup group, const char* keys[4]);

// Reads the counts of an upstream `usage` object (`usage` may be null or not an object: all 0).
// A count reads as usage.h says (numbers only, rounded up, clamped at usage::kMaxTurnTokens with
// `*clamped` set); cached_details_present when its object is there.
TokenCounts read_token_counts(const json::Value* usage, bool* clamped);

// Appends the rows' GstStructure fields (gint64) to `s`, in table order, in two parts so that the
// `rtusage-turn` message keeps its field order (gst-launch-1.0 -m prints it; scripts read it):
// kCounts every row but the cached details, kCachedDetails kCachedDetailsGstField and those rows.
enum class GstTokenPart { kCounts, kCachedDetails };
void set_gst_token_fields(GstStructure* s, const TokenCounts& c, GstTokenPart part);
// Reads them back (a missing or mistyped field reads as 0 / false).
TokenCounts get_gst_token_fields(const GstStructure* s);

// Adds `from`'s counts to `to`'s, saturating (usage/saturating.h); cached_details_present ORed.
void add_token_counts(TokenCounts& to, const TokenCounts& from);

}  // namespace rtgw::rtevents
