// SPDX-License-Identifier: MIT
#include "usage/pricing.h"

#include <algorithm>
#include <cstdint>

namespace rtgw::usage {

std::optional<double> price_turn(const UsageRecord& r, const config::Pricing* table) {
  if (!table) return std::nullopt;
  const config::Pricing& p = *table;
  // Sum of tokens x price-per-million, divided once at the end.
  double micro = 0;
  bool known = true;
  auto charge = [&](std::int64_t tokens, const std::optional<double>& price) {
    if (tokens <= 0) return;
    if (!price) {
      known = false;
      return;
    }
    micro += static_cast<double>(tokens) * *price;
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
  std::int64_t attributed_in = std::max(r.input_text_tokens, cached_text) +
                               std::max(r.input_audio_tokens, cached_audio) + image;
  text += std::max<std::int64_t>(0, r.input_tokens - attributed_in);
  charge(text, p.text_input);
  charge(cached_text, cached_price(p.text_cached_input, p.text_input));
  charge(audio, p.audio_input);
  charge(cached_audio, cached_price(p.audio_cached_input, p.audio_input));
  charge(image, p.image_input);

  // Output.
  std::int64_t out_text = r.output_text_tokens;
  out_text +=
      std::max<std::int64_t>(0, r.output_tokens - r.output_text_tokens - r.output_audio_tokens);
  charge(out_text, p.text_output);
  charge(r.output_audio_tokens, p.audio_output);

  double usd = micro / 1e6;
  if (r.transcription_seconds > 0) {
    if (!p.transcription)
      known = false;
    else
      usd += r.transcription_seconds / 60.0 * *p.transcription;
  }
  if (!known) return std::nullopt;
  return usd;
}

}  // namespace rtgw::usage
