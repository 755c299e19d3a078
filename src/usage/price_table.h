// SPDX-License-Identifier: MIT
// A model's price table (`models[].pricing` in the config), US dollars.
//
// Owns: the table's shape. It lives in usage, the folder that prices turns with it
// (usage/pricing.h); config reads it from the file and includes this header, never the reverse,
// so there is no config <-> usage include cycle.
//
// Threads: plain data, read-only once the config is loaded.
#pragma once

#include <optional>

namespace rtgw::usage {

// A price left out is unknown: a turn that needs it has no cost (usage/pricing.h says which fall
// back).
struct Pricing {
  // per_million_tokens
  std::optional<double> text_input;
  std::optional<double> text_cached_input;
  std::optional<double> audio_input;
  std::optional<double> audio_cached_input;
  std::optional<double> image_input;
  std::optional<double> text_output;
  std::optional<double> audio_output;
  // per_minute
  std::optional<double> transcription;
  std::optional<double> audio;  // translation sessions' audio (SPEC "Translation sessions")
  // What a token the table has no price for costs (usage/pricing.h); none: the table's highest
  // per-token price.
  std::optional<double> fallback_per_million;
};

}  // namespace rtgw::usage
