// SPDX-License-Identifier: MIT
// What a metered turn costs, from its model's price table.
//
// Owns: the pricing rule (pure: a usage record and a price table in, US dollars out), and what a
// table lacks (for --check-config's warning).
//
// The rule (SPEC "Pricing and spend"):
// - cached input tokens are charged at the cached price of their modality: the split comes from
//   input_token_details.cached_tokens_details when the upstream sent it, else every cached token
//   is text. Cached image tokens are charged at image_input (there is no cached image price).
// - the rest of each input modality (text, audio, image) at its own price; output text and audio
//   at theirs; tokens the upstream counted in input_tokens/output_tokens but attributed to no
//   modality are priced as text.
// - a duration-billed transcription at per_minute.transcription times its seconds / 60; a
//   translation report's audio seconds at per_minute.audio times its seconds / 60, beside its
//   tokens at their prices.
// - a cached price left out of the table falls back to the modality's full price.
// - any other per-token price the table leaves out is charged at the fallback: the table's
//   `fallback_per_million` when set, else its highest per-token price. What is known is priced
//   as usual, so one missing price never makes a turn free (issue 21: a table without
//   image_input priced a turn with 1 image token and 200,000 text and audio tokens at null).
// - the cost is unknown (nullopt) only when nothing can price a component the turn has: no table,
//   a table with no per-token price and no fallback_per_million for a turn with tokens, or
//   duration-billed seconds without per_minute.transcription, translation audio seconds without
//   per_minute.audio.
// - token counts are read saturated (usage/saturating.h), so the sum is finite.
//
// Threads: any (pure).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "usage/price_table.h"
#include "usage/usage_ledger.h"

namespace rtgw::usage {

// The turn's cost in US dollars; nullopt when there is no table or nothing in it can price a
// component the turn has (see above).
std::optional<double> price_turn(const UsageRecord& record, const Pricing* table);

// What a token without its own price costs (USD per million): `fallback_per_million`, else the
// table's highest per_million_tokens price; nullopt when the table has neither.
std::optional<double> fallback_per_million(const Pricing& table);

// The per-token prices (text_input, audio_input, image_input, text_output, audio_output) the
// table leaves out; cached prices are not listed (they fall back to the full price).
std::vector<std::string> missing_token_prices(const Pricing& table);

}  // namespace rtgw::usage
