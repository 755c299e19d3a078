// SPDX-License-Identifier: MIT
// What a metered turn costs, from its model's price table.
//
// Owns: the pricing rule (pure: a usage record and a price table in, US dollars out).
//
// The rule (SPEC "Pricing and spend"):
// - cached input tokens are charged at the cached price of their modality: the split comes from
//   input_token_details.cached_tokens_details when the upstream sent it, else every cached token
//   is text. Cached image tokens are charged at image_input (there is no cached image price).
// - the rest of each input modality (text, audio, image) at its own price; output text and audio
//   at theirs; tokens the upstream counted in input_tokens/output_tokens but attributed to no
//   modality are priced as text.
// - a duration-billed transcription at per_minute.transcription times its seconds / 60.
// - a cached price left out of the table falls back to the modality's full price; any other price
//   a turn needs (a non-zero quantity) that the table leaves out makes the cost unknown (nullopt):
//   a missing price never reads as free.
//
// Threads: any (pure).
#pragma once

#include <optional>

#include "config/config.h"
#include "usage/usage_ledger.h"

namespace rtgw::usage {

// The turn's cost in US dollars; nullopt when there is no table or it lacks a price the turn
// needs.
std::optional<double> price_turn(const UsageRecord& record, const config::Pricing* table);

}  // namespace rtgw::usage
