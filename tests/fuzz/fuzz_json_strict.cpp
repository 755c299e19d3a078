// SPDX-License-Identifier: MIT
// Fuzz target `json_strict`: the strict JSON validator (plugins/rtevents/json_strict.h) itself,
// the gate in front of json-glib and of the event reader.
// - It never crashes, recurses or reads outside the text, whatever the nesting (iterative).
// - A refusal names a reason and an offset inside the text; the prefix before the offset never
//   holds a complete value followed by more (the offset is where the text stopped being JSON).
// - An accepted text is one JSON value for the span-preserving event reader too (a root, no
//   trailing bytes); a repaired text (lone surrogate escapes) has the same length and is accepted
//   as is; a lower depth bound never accepts more, and the json-glib profile never accepts more.
#include <string>

#include "fuzz_util.h"
#include "rtevents/json.h"
#include "rtevents/json_strict.h"

using namespace rtgw;
namespace strict = rtevents::strict_json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_view(data, size);
  const auto r = strict::check(text);
  if (!r.ok) {
    if (r.offset > text.size()) fuzz::fail("refusal offset beyond the text", text);
    if (!r.reason || !*r.reason) fuzz::fail("refusal without a reason", text);
    if (r.repaired) fuzz::fail("refused text carries a repair", text);
    if (r.message().find("(at byte ") == std::string::npos) fuzz::fail("message without offset");
    if (strict::check(text, strict::kMaxDepth, true).ok)
      fuzz::fail("the json-glib profile accepts what the strict check refuses", text);
    return 0;
  }
  // What the strict check accepts, the event reader reads whole.
  const auto lenient = rtevents::json::parse(text);
  if (!lenient.root || lenient.trailing)
    fuzz::fail("accepted text the event reader does not read as one value", text);
  if (r.repaired) {
    if (r.repaired->size() != text.size()) fuzz::fail("repair changed the length", text);
    const auto again = strict::check(*r.repaired);
    if (!again.ok || again.repaired) fuzz::fail("repaired text is not clean JSON", *r.repaired);
  }
  for (int depth : {0, 1, 2, 8}) {
    const auto shallow = strict::check(text, depth);
    if (shallow.ok && !r.ok) fuzz::fail("a lower bound accepted more", text);
    if (!shallow.ok && !shallow.too_deep)
      fuzz::fail("a lower bound refused for another reason than depth", text);
  }
  return 0;
}
