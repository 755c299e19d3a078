// SPDX-License-Identifier: MIT
#include "common/base64url.h"

#include <glib.h>

#include "common/ref.h"

namespace rtgw {

std::string base64url(const std::string& bytes) {
  UniqueStr b64(g_base64_encode(reinterpret_cast<const guchar*>(bytes.data()), bytes.size()));
  std::string out = b64.get();
  for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::optional<std::string> unbase64url(std::string text) {
  // Strict: g_base64_decode itself skips what it does not know.
  for (char c : text)
    if (!g_ascii_isalnum(c) && c != '-' && c != '_') return std::nullopt;
  for (auto& c : text) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (text.size() % 4) text += '=';
  gsize len = 0;
  UniqueStr raw(reinterpret_cast<gchar*>(g_base64_decode(text.c_str(), &len)));
  if (!raw) return std::nullopt;
  return std::string(raw.get(), len);
}

}  // namespace rtgw
