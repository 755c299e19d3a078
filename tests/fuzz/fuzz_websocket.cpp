// SPDX-License-Identifier: MIT
// Fuzz target `websocket`: what the gateway reads from a WebSocket, above libsoup's own frame
// parser. Each input line is one text message to the built-in `echo` worker (EchoProtocol, the
// default configuration's worker); every reply must be a JSON object. The whole input also goes
// through the close-reason helpers (a reason is at most 123 bytes, a prefix, cut on a UTF-8
// boundary).
#include <glib.h>

#include "common/json.h"
#include "common/websocket.h"
#include "fuzz_util.h"
#include "workers/echo_protocol.h"

using namespace rtgw;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = fuzz::as_view(data, size);

  std::size_t replies = 0;
  workers::EchoProtocol echo(
      [&](const std::string& reply) {
        replies++;
        auto node = json::parse(reply);
        if (!node || JSON_NODE_TYPE(node.get()) != JSON_NODE_OBJECT)
          fuzz::fail("the echo worker sent something that is not a JSON object", reply);
      },
      [] { return 120.0; });
  echo.start();
  for (std::string_view message : fuzz::lines(in)) {
    if (message.empty()) continue;
    echo.on_event(std::string(message));
  }
  if (replies == 0) fuzz::fail("the echo worker never sent session.created");

  const std::string reason(in);
  const std::string clipped = clip_close_reason(reason);
  if (clipped.size() > 123) fuzz::fail("close reason above 123 bytes");
  if (reason.compare(0, clipped.size(), clipped) != 0) fuzz::fail("close reason not a prefix");
  if (g_utf8_validate(reason.data(), static_cast<gssize>(reason.size()), nullptr) &&
      !g_utf8_validate(clipped.data(), static_cast<gssize>(clipped.size()), nullptr))
    fuzz::fail("close reason cut inside a UTF-8 character", clipped);
  if (size >= 2) (void)sendable_close_code(data[0] << 8 | data[1]);
  return 0;
}
