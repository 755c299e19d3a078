// SPDX-License-Identifier: MIT
// The event vocabulary: one small static library (`rtevents_vocab`, plugins/rtevents/meson.build)
// that both the rtevents plugin and the gateway (src/) link, so that the two read events and
// usage alike.
//
// Owns:
// - the strict JSON validator (json_strict.h): the gate every JSON text passes first, and
//   `rtgw::json::parse` (src/common/json.h) runs before json-glib builds a tree;
// - the span-preserving event reader (json.h, json_chars.h): lenient, duplicate-aware, for events;
// - the one nesting bound both readers share (kJsonMaxDepth, below);
// - the usage record's token fields, declared once in a field table (usage_fields.h): reading
//   them from an upstream `usage` object, the GstStructure fields the meter posts, and the names
//   every other consumer (JSONL log, PostgreSQL columns, pricing, token metrics) takes from it.
//
// It has no elements and no GLib main loop state: pure functions and constant tables, any thread.
// The elements (rtevents_core) and the gateway library (src/meson.build) link it.
#pragma once

namespace rtgw::rtevents {

// Deepest nesting of arrays and objects: the strict validator refuses deeper text (the SPEC's
// bound: 64 levels pass, 65 do not), and the event reader builds values down to it (deeper ones,
// which only text the validator never saw can have, are validated but kept opaque).
inline constexpr int kJsonMaxDepth = 64;

}  // namespace rtgw::rtevents
