// SPDX-License-Identifier: MIT
#include "usage/pricing.h"

#include <algorithm>
#include <cstdint>

#include "rtevents/usage_fields.h"
#include "usage/saturating.h"

namespace rtgw::usage {

std::optional<double> fallback_per_million(const Pricing& p) {
  if (p.fallback_per_million) return p.fallback_per_million;
  std::optional<double> highest;
  for (const auto& price : {p.text_input, p.text_cached_input, p.audio_input, p.audio_cached_input,
                            p.image_input, p.text_output, p.audio_output})
    if (price && (!highest || *price > *highest)) highest = price;
  return highest;
}

std::vector<std::string> missing_token_prices(const Pricing& p) {
  std::vector<std::string> missing;
  auto check = [&](const char* name, const std::optional<double>& price) {
    if (!price) missing.emplace_back(name);
  };
  check("text_input", p.text_input);
  check("audio_input", p.audio_input);
  check("image_input", p.image_input);
  check("text_output", p.text_output);
  check("audio_output", p.audio_output);
  return missing;
}

std::optional<double> price_turn(const UsageRecord& r, const Pricing* table) {
  if (!table) return std::nullopt;
  const Pricing& p = *table;
  const std::optional<double> fallback = fallback_per_million(p);
  // Sum of tokens x price-per-million, divided once at the end.
  double micro = 0;
  bool known = true;
  auto charge = [&](std::int64_t tokens, const std::optional<double>& price) {
    if (tokens <= 0) return;
    const std::optional<double>& used = price ? price : fallback;
    if (!used) {
      known = false;
      return;
    }
    micro = saturating_add(micro, static_cast<double>(tokens) * *used);
  };
  auto cached_price = [](const std::optional<double>& cached, const std::optional<double>& full) {
    return cached ? cached : full;
  };

  // The counts by the field table's pricing tags (rtevents/usage_fields.h).
  using rtevents::TokenFlow;
  using rtevents::TokenModality;
  auto count = [&](TokenFlow flow, TokenModality modality, bool cached) {
    return rtevents::priced_count(r, flow, modality, cached);
  };
  // One modality of one direction: its count (which includes its cached part), its cached part
  // and their prices. A modality without a cached price charges its cached tokens at the full
  // price (cached image tokens at image_input).
  struct Part {
    TokenModality modality;
    const std::optional<double>& price;
    const std::optional<double>* cached_rate;  // null: the modality has no cached price
    std::int64_t full = 0;
    std::int64_t cached = 0;
  };

  // Input: which tokens were cached, by modality: the split of cached_tokens_details when the
  // upstream sent it, else every cached token is text.
  Part input[] = {{TokenModality::kText, p.text_input, &p.text_cached_input},
                  {TokenModality::kAudio, p.audio_input, &p.audio_cached_input},
                  {TokenModality::kImage, p.image_input, nullptr}};
  std::int64_t attributed_in = 0;
  for (Part& part : input) {
    const std::int64_t all = count(TokenFlow::kInput, part.modality, false);
    const std::int64_t cached = r.cached_details_present
                                    ? count(TokenFlow::kInput, part.modality, true)
                                : part.modality == TokenModality::kText
                                    ? count(TokenFlow::kInput, TokenModality::kAll, true)
                                    : 0;
    // text_tokens/audio_tokens/image_tokens include their cached part.
    if (part.cached_rate) {
      part.full = std::max<std::int64_t>(0, all - cached);
      part.cached = cached;
    } else {
      part.full = std::max(all, cached);
    }
    attributed_in = saturating_add(attributed_in, std::max(all, cached));
  }
  // Input tokens attributed to no modality are text.
  input[0].full = saturating_add(
      input[0].full, count(TokenFlow::kInput, TokenModality::kAll, false) - attributed_in);
  for (const Part& part : input) {
    charge(part.full, part.price);
    if (part.cached_rate) charge(part.cached, cached_price(*part.cached_rate, part.price));
  }

  // Output: text and audio; tokens attributed to neither are text.
  Part output[] = {{TokenModality::kText, p.text_output, nullptr},
                   {TokenModality::kAudio, p.audio_output, nullptr}};
  std::int64_t attributed_out = 0;
  for (Part& part : output) {
    part.full = count(TokenFlow::kOutput, part.modality, false);
    attributed_out = saturating_add(attributed_out, part.full);
  }
  output[0].full = saturating_add(
      output[0].full, count(TokenFlow::kOutput, TokenModality::kAll, false) - attributed_out);
  for (const Part& part : output) charge(part.full, part.price);

  double usd = micro / 1e6;
  if (r.transcription_seconds > 0) {
    if (!p.transcription)
      known = false;
    else
      usd = saturating_add(usd, r.transcription_seconds / 60.0 * *p.transcription);
  }
  if (r.audio_seconds > 0) {
    if (!p.audio)
      known = false;
    else
      usd = saturating_add(usd, r.audio_seconds / 60.0 * *p.audio);
  }
  if (!known) return std::nullopt;
  return usd;
}

}  // namespace rtgw::usage
