// SPDX-License-Identifier: MIT
// The token field table's conversions. See usage_fields.h.
#include "usage_fields.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "usage/saturating.h"

namespace rtgw::rtevents {
namespace {

// One token field of one turn, within [0, kMaxTurnTokens]. A JSON integer reads as itself; one
// too large for 64 bits, a fraction or an exponent form reads as its value rounded up; anything
// over the cap reads as the cap and sets `*clamped`, so nonsense can only raise a count, never
// wrap it or read as 0.
std::int64_t count(const json::Value* obj, std::string_view key, bool* clamped) {
  if (!obj || !obj->is_object()) return 0;
  const json::Value* v = obj->last(key);
  if (!v || v->type != json::Type::kNumber) return 0;
  if (const auto n = v->as_int()) return usage::clamp_turn_tokens(*n, clamped);
  const std::string text(v->raw);
  char* end = nullptr;
  const double d = std::strtod(text.c_str(), &end);
  if (!end || *end != '\0' || std::isnan(d) || d <= 0) return 0;
  if (d > static_cast<double>(usage::kMaxTurnTokens)) {
    *clamped = true;
    return usage::kMaxTurnTokens;
  }
  return static_cast<std::int64_t>(std::ceil(d));
}

const json::Value* object_member(const json::Value* obj, std::string_view key) {
  if (!obj || !obj->is_object()) return nullptr;
  const json::Value* v = obj->last(key);
  return v && v->is_object() ? v : nullptr;
}

const TokenGroupInfo* info_of(TokenGroup group) {
  for (const auto& g : kTokenGroups)
    if (g.group == group) return &g;
  return nullptr;
}

// The object of `group` inside `usage`, or null.
const json::Value* group_object(const json::Value* usage, TokenGroup group) {
  const char* keys[4];
  const std::size_t n = group_path(group, keys);
  const json::Value* obj = usage && usage->is_object() ? usage : nullptr;
  for (std::size_t i = 0; i < n && obj; ++i) obj = object_member(obj, keys[i]);
  return obj;
}

}  // namespace

std::int64_t priced_count(const TokenCounts& c, TokenFlow flow, TokenModality modality,
                          bool cached) {
  std::int64_t sum = 0;
  for (const auto& f : kTokenFields)
    if (f.price.flow == flow && f.price.modality == modality && f.price.cached == cached)
      sum = usage::saturating_add(sum, count_of(c, f));
  return sum;
}

std::size_t group_path(TokenGroup group, const char* keys[4]) {
  const char* reversed[4];
  std::size_t n = 0;
  for (const TokenGroupInfo* g = info_of(group); g && n < 4; g = info_of(g->parent))
    reversed[n++] = g->key;
  for (std::size_t i = 0; i < n; ++i) keys[i] = reversed[n - 1 - i];
  return n;
}

TokenCounts read_token_counts(const json::Value* usage, bool* clamped) {
  TokenCounts c;
  for (const auto& f : kTokenFields)
    count_of(c, f) = count(group_object(usage, f.group), f.key, clamped);
  c.cached_details_present = group_object(usage, TokenGroup::kCachedDetails) != nullptr;
  return c;
}

void set_gst_token_fields(GstStructure* s, const TokenCounts& c, GstTokenPart part) {
  const bool details = part == GstTokenPart::kCachedDetails;
  if (details)
    gst_structure_set(s, kCachedDetailsGstField, G_TYPE_BOOLEAN,
                      c.cached_details_present ? TRUE : FALSE, nullptr);
  for (const auto& f : kTokenFields)
    if (f.only_with_details == details)
      gst_structure_set(s, f.gst_field, G_TYPE_INT64, static_cast<gint64>(count_of(c, f)), nullptr);
}

TokenCounts get_gst_token_fields(const GstStructure* s) {
  TokenCounts c;
  for (const auto& f : kTokenFields) {
    gint64 v = 0;
    if (gst_structure_get_int64(s, f.gst_field, &v)) count_of(c, f) = v;
  }
  gboolean present = FALSE;
  c.cached_details_present =
      gst_structure_get_boolean(s, kCachedDetailsGstField, &present) && present;
  return c;
}

void add_token_counts(TokenCounts& to, const TokenCounts& from) {
  for (const auto& f : kTokenFields) usage::add_to(count_of(to, f), count_of(from, f));
  to.cached_details_present = to.cached_details_present || from.cached_details_present;
}

}  // namespace rtgw::rtevents
