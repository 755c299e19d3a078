// SPDX-License-Identifier: MIT
// A small JSON reader for realtime events: lenient, span-preserving and duplicate-aware.
//
// Why not json-glib: the filter must (1) pass untouched events byte-for-byte, (2) remove one member
// from an event while leaving every other byte as the client wrote it, and (3) see what the
// upstream parser sees. json-glib silently truncates strings at "\u0000", wraps integers above
// 2^63, keeps only the last of duplicate keys and rejects a few inputs that lenient upstream
// parsers accept. Any such difference between our reading and the upstream's is a way around the
// policy.
//
// So this reader:
// - keeps every member of an object in source order, duplicates included (`Value::members`), with
//   the byte offsets of each member, so a member can be cut out of the original text
//   (`remove_spans`);
// - accepts what common lenient parsers accept (NaN/Infinity, lone surrogates, raw control
// characters
//   and invalid UTF-8 in strings, leading zeros, a UTF-8 BOM, trailing bytes after the first value)
//   so that "malformed" only means "no parser would read an event here";
// - builds values only down to `kMaxDepth`; deeper values are validated iteratively (no recursion,
//   no stack exhaustion) and kept as `Type::kOpaque`;
// - decodes strings lazily: a `Value` holds a view into the caller's text, which must outlive it.
//
// Thread-safety: plain values, no shared state. Throws only std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vocab.h"

namespace rtgw::rtevents::json {

// Values nested deeper than this are validated but not built (Type::kOpaque): the one bound of
// vocab.h, which the strict validator enforces first on every client event.
inline constexpr int kMaxDepth = kJsonMaxDepth;

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject, kOpaque };

struct Member;

struct Value {
  Type type = Type::kNull;
  bool boolean = false;         // kBool only
  bool has_escapes = false;     // kString only: raw contains a backslash
  std::string_view raw;         // exact source bytes of the value (quotes included for strings)
  std::vector<Value> items;     // kArray
  std::vector<Member> members;  // kObject, in source order, duplicates kept

  bool is_object() const { return type == Type::kObject; }
  bool is_string() const { return type == Type::kString; }

  // Decoded string (escapes resolved, "\u0000" kept as a NUL byte, lone surrogates -> U+FFFD);
  // nullopt unless this is a string.
  std::optional<std::string> as_string() const;
  // The value of an integer literal (no fraction, no exponent) that fits in int64; else nullopt.
  std::optional<std::int64_t> as_int() const;

  // Object lookups (nullptr / empty when not an object).
  // The last member named `key` (what json-glib, Python and Go would read).
  const Value* last(std::string_view key) const;
  // Every member named `key`, in source order.
  std::vector<const Value*> all(std::string_view key) const;
  // The last member named `key` if it is a string.
  std::optional<std::string> last_string(std::string_view key) const;
  // Every member named `key` that is a string, decoded, in source order.
  std::vector<std::string> all_strings(std::string_view key) const;
};

struct Member {
  std::string key;        // decoded key
  std::size_t begin = 0;  // offset of the key's opening quote in the parsed text
  std::size_t end = 0;    // offset just past the member's value
  Value value;
};

struct ParseResult {
  std::optional<Value> root;  // nullopt: not JSON
  std::string error;          // why, when root is nullopt
  bool trailing = false;      // non-whitespace bytes follow the first value
};

// Parses the first JSON value of `text`. The returned values view into `text`.
ParseResult parse(std::string_view text);

// Offset of `v` inside `text` (v must come from parse(text)).
inline std::size_t offset_of(std::string_view text, const Value& v) {
  return static_cast<std::size_t>(v.raw.data() - text.data());
}

// Byte ranges [first, second) to cut out of the parsed text so that the members of `object` for
// which `remove(index)` is true disappear and the rest stays valid JSON, byte-for-byte.
template <typename Pred>
std::vector<std::pair<std::size_t, std::size_t>> member_cuts(const Value& object, Pred remove);

// `text` without the given ranges (which must not overlap; any order).
std::string cut(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>> ranges);

// ---------------------------------------------------------------------------------------------
template <typename Pred>
std::vector<std::pair<std::size_t, std::size_t>> member_cuts(const Value& object, Pred remove) {
  std::vector<std::pair<std::size_t, std::size_t>> cuts;
  const auto& m = object.members;
  const std::size_t n = m.size();
  std::size_t i = 0;
  while (i < n) {
    if (!remove(i)) {
      ++i;
      continue;
    }
    std::size_t j = i;  // [i, j) is a run of removed members
    while (j < n && remove(j)) ++j;
    if (j < n) {
      // Followed by a kept member: cut from the run's first key up to the next kept key, which
      // takes the separating commas and whitespace with it.
      cuts.emplace_back(m[i].begin, m[j].begin);
    } else if (i > 0) {
      // Run at the end: cut from the end of the previous kept value through the run.
      cuts.emplace_back(m[i - 1].end, m[n - 1].end);
    } else {
      // Every member goes: cut the members, keep the braces and outer whitespace.
      cuts.emplace_back(m[0].begin, m[n - 1].end);
    }
    i = j;
  }
  return cuts;
}

}  // namespace rtgw::rtevents::json
