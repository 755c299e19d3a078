// SPDX-License-Identifier: MIT
// Fuzz target `http_headers`: request header values the server reads before any route. Now the
// `Host` check of the keyless loopback mode (http::is_loopback_host); the input is the header
// value (libsoup hands over a C string: no NUL, CR or LF).
//
// Invariant checked (src/http/host_check.h): an accepted Host is `localhost`, a `*.localhost`
// name, a dotted-quad IPv4 address in 127.0.0.0/8 or `[::1]` (any case, names and addresses with
// an optional trailing dot), each with an optional `:port` of digits. Checked here with a separate,
// plain reading of those forms, not with GIO.
#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "fuzz_util.h"
#include "http/host_check.h"

using namespace rtgw;

namespace {

bool all_digits(std::string_view s) {
  return s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// 127.d.d.d, each part 1-3 decimal digits up to 255 (the first exactly "127": "0127" is octal
// to some resolvers).
bool loopback_quad(std::string_view name) {
  int part = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = name.find('.', start);
    std::string_view p = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (p.empty() || p.size() > 3 || !all_digits(p) || std::stoi(std::string(p)) > 255)
      return false;
    if (part == 0 && p != "127") return false;
    ++part;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return part == 4;
}

bool promised_form(std::string_view host) {
  std::string_view name;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    std::size_t close = host.find(']');
    if (close == std::string_view::npos) return false;
    std::string literal(host.substr(1, close - 1));
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
    if (!all_digits(port)) return false;
    unsigned char bytes[16];
    static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return inet_pton(AF_INET6, literal.c_str(), bytes) == 1 &&
           std::memcmp(bytes, kLoopback, 16) == 0;
  }
  std::size_t colon = host.find(':');
  name = host.substr(0, colon);
  if (colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    if (!all_digits(port)) return false;
  }
  std::string n = lower(name);
  if (!n.empty() && n.back() == '.') n.pop_back();  // the URL standard's IPv4 form allows one too
  if (loopback_quad(n)) return true;
  if (n == "localhost") return true;
  const std::string_view suffix = ".localhost";
  return n.size() > suffix.size() && std::string_view(n).substr(n.size() - suffix.size()) == suffix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);
  // A header value never holds NUL, CR or LF.
  if (in.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) return 0;
  const std::string host(in);
  if (http::is_loopback_host(host) && !promised_form(host))
    fuzz::fail("is_loopback_host accepted a host that is no loopback form", host);
  return 0;
}
