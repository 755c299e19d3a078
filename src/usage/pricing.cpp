// SPDX-License-Identifier: MIT
#include "usage/pricing.h"

#include <algorithm>
#include <cstdint>

#include "usage/saturating.h"

namespace rtgw::usage {

std::optional<double> fallback_per_million(const config::Pricing& p) {
  if (p.fallback_per_million) return p.fallback_per_million;
  std::optional<double> highest;
  for (const auto& price : {p.text_input, p.text_cached_input, p.audio_input, p.audio_cached_input,
                            p.image_input, p.text_output, p.audio_output})
    if (price && (!highest || *price > *highest)) highest = price;
  return highest;
}

std::vector<std::string> missing_token_prices(const config::Pricing& p) {
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

std::optional<double> price_turn(const UsageRecord& r, const config::Pricing* table) {
  if (!table) return std::nullopt;
  const config::Pricing& p = *table;
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

  // Input: which tokens were cached, by modality.
  std::int64_t cached_text = 0, cached_audio = 0, cached_image = 0;
  if (r.cached_details_present) {
    cached_text = r.input_cached_text_tokens;
    cached_audio = r.input_cached_audio_tokens;
    cached_image = r.input_cached_image_tokens;
  } else {
    cached_text = r.input_cached_tokens;
  }
  // text_tokens/audio_tokens/image_tokens include their cached part.
  std::int64_t text = std::max<std::int64_t>(0, r.input_text_tokens - cached_text);
  std::int64_t audio = std::max<std::int64_t>(0, r.input_audio_tokens - cached_audio);
  std::int64_t image = std::max<std::int64_t>(r.input_image_tokens, cached_image);
  std::int64_t attributed_in =
      saturating_add(saturating_add(std::max(r.input_text_tokens, cached_text),
                                    std::max(r.input_audio_tokens, cached_audio)),
                     image);
  text = saturating_add(text, r.input_tokens - attributed_in);
  charge(text, p.text_input);
  charge(cached_text, cached_price(p.text_cached_input, p.text_input));
  charge(audio, p.audio_input);
  charge(cached_audio, cached_price(p.audio_cached_input, p.audio_input));
  charge(image, p.image_input);

  // Output.
  std::int64_t out_text = r.output_text_tokens;
  out_text = saturating_add(
      out_text, r.output_tokens - saturating_add(r.output_text_tokens, r.output_audio_tokens));
  charge(out_text, p.text_output);
  charge(r.output_audio_tokens, p.audio_output);

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
