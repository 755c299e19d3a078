// SPDX-License-Identifier: MIT
#include "http/host_check.h"

#include <gio/gio.h>

#include "common/ref.h"

namespace rtgw::http {

bool is_loopback_host(const std::string& raw) {
  std::string host = raw;
  std::string name;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string::npos) return false;
    name = host.substr(1, close - 1);
    std::string rest = host.substr(close + 1);
    if (!rest.empty() &&
        (rest.front() != ':' || rest.find_first_not_of("0123456789", 1) != std::string::npos))
      return false;
    // Brackets hold an IPv6 literal, nothing else: no names ("[a.localhost]"), no IPv4
    // ("[127.0.0.1]"), no trailing dot ("[::1.]").
    auto address = Ref<GInetAddress>::adopt(g_inet_address_new_from_string(name.c_str()));
    return address && g_inet_address_get_family(address.get()) == G_SOCKET_FAMILY_IPV6 &&
           g_inet_address_get_is_loopback(address.get());
  } else {
    auto colon = host.rfind(':');
    name = colon == std::string::npos ? host : host.substr(0, colon);
    if (colon != std::string::npos &&
        host.find_first_not_of("0123456789", colon + 1) != std::string::npos)
      return false;
    if (name.find(':') != std::string::npos) return false;  // an unbracketed IPv6 literal
  }
  if (name.empty()) return false;
  for (auto& ch : name) ch = static_cast<char>(g_ascii_tolower(ch));
  if (!name.empty() && name.back() == '.') name.pop_back();  // "localhost." is the same name
  if (name == "localhost") return true;
  const std::string suffix = ".localhost";
  if (name.size() > suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return true;
  // Only dotted-quad IPv4 and bracketed IPv6 literals: g_inet_address_new_from_string would also
  // take forms a resolver reads differently.
  auto address = Ref<GInetAddress>::adopt(g_inet_address_new_from_string(name.c_str()));
  if (!address) return false;
  if (g_inet_address_get_family(address.get()) == G_SOCKET_FAMILY_IPV4) {
    int dots = 0;
    for (char ch : name) dots += ch == '.';
    if (dots != 3) return false;
  }
  return g_inet_address_get_is_loopback(address.get());
}

}  // namespace rtgw::http
