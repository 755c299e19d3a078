// SPDX-License-Identifier: MIT
#include "usage/postgres_url.h"

#include <libpq-fe.h>

#include <memory>

namespace rtgw::usage {
namespace {

struct ConninfoFree {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
struct PqFree {
  void operator()(char* p) const { PQfreemem(p); }
};

bool is_uri(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

}  // namespace

std::optional<std::string> conninfo_error(const std::string& conninfo) {
  if (conninfo.empty()) return std::string("empty connection string");
  char* raw_error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> options(
      PQconninfoParse(conninfo.c_str(), &raw_error));
  std::unique_ptr<char, PqFree> error(raw_error);
  if (options) return std::nullopt;
  std::string reason = error ? error.get() : "cannot parse the connection string";
  while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
  // libpq quotes the string itself in some messages: keep the password out of them.
  auto at = reason.find(conninfo);
  if (at != std::string::npos) reason.replace(at, conninfo.size(), mask_conninfo(conninfo));
  return reason;
}

std::string mask_conninfo(const std::string& conninfo) {
  if (is_uri(conninfo)) {
    std::string out = conninfo;
    // user:password@ in the authority (before the first '/', '?' or '#' after the scheme).
    std::size_t start = out.find("://") + 3;
    std::size_t end = out.find_first_of("/?#", start);
    if (end == std::string::npos) end = out.size();
    std::size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      std::size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
    // ?password=... / &password=...
    for (const char* p : {"?password=", "&password="}) {
      std::size_t pos = out.find(p);
      if (pos == std::string::npos) continue;
      std::size_t value = pos + std::char_traits<char>::length(p);
      std::size_t stop = out.find_first_of("&#", value);
      out.replace(value, (stop == std::string::npos ? out.size() : stop) - value, "***");
    }
    return out;
  }
  // key=value: rebuilt from libpq's parse (quoting is libpq's business).
  std::unique_ptr<PQconninfoOption, ConninfoFree> options(
      PQconninfoParse(conninfo.c_str(), nullptr));
  if (!options) return "(unparsable connection string)";
  std::string out;
  for (PQconninfoOption* o = options.get(); o->keyword; o++) {
    if (!o->val) continue;
    std::string keyword = o->keyword;
    if (!out.empty()) out += ' ';
    out += keyword + "=" + (keyword == "password" ? std::string("***") : std::string(o->val));
  }
  return out;
}

}  // namespace rtgw::usage
