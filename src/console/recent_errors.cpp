// SPDX-License-Identifier: MIT
#include "console/recent_errors.h"

#include <glib.h>

#include <utility>

namespace rtgw::console {

namespace {

// Cut at a UTF-8 character boundary so the JSON stays valid text.
void cut(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t at = max;
  while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  s.resize(at);
  s += "…";
}

}  // namespace

void RecentErrors::note(ErrorEntry entry) {
  entry.seq = ++seq_;
  if (entry.unix_time == 0) entry.unix_time = g_get_real_time() / 1e6;
  for (std::string* s : {&entry.kind, &entry.code, &entry.message, &entry.id, &entry.key})
    cut(*s, kMaxText);
  entries_.push_back(std::move(entry));
  while (entries_.size() > kCapacity) entries_.pop_front();
}

}  // namespace rtgw::console
