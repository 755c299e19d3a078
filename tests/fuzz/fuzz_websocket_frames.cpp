// SPDX-License-Identifier: MIT
// Fuzz target `websocket_frames`: the bytes a client sends on an accepted connection, as the
// WebSocket frame limiter under libsoup reads them (http/websocket_frame_limit.h): request lines
// and headers, then frame headers and payloads of any length, fragmented or not, cut into reads
// of any size. The first byte picks the message bound and whether the request turns out to be a
// WebSocket handshake; the next ones the sizes of the reads. The limiter must never pass on more
// than it was given (it drops, it never invents), and once it tripped it stays tripped; the
// sanitizers catch the rest.
#include <algorithm>
#include <string>

#include "fuzz_util.h"
#include "http/websocket_frame_limit.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::uint8_t cuts = data[1];
  std::string_view in = rtgw::fuzz::as_view(data + 2, size - 2);

  rtgw::http::WebSocketFrameLimiter limiter(1ull << (mode & 31));
  std::string out;
  std::size_t fed = 0;
  bool told = false;
  bool tripped = false;
  std::size_t step = 1 + (cuts % 97);
  while (fed < in.size()) {
    const std::size_t n = std::min(step, in.size() - fed);
    limiter.feed(in.data() + fed, n, out);
    fed += n;
    if (!told && limiter.in_frames()) {
      limiter.expect_frames((mode & 0x80) != 0);
      told = true;
    }
    if (tripped && !limiter.tripped()) rtgw::fuzz::fail("the limiter untripped", std::string(in));
    tripped = limiter.tripped();
    if (out.size() > fed) rtgw::fuzz::fail("the limiter passed on more than it read", std::string(in));
    step = 1 + ((step * 31 + cuts) % 211);
  }
  return 0;
}
