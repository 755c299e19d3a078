// SPDX-License-Identifier: MIT
// The WebSocket frame limiter (http/websocket_frame_limit.h): whole messages bounded on the bytes
// before libsoup assembles them, and the slow-body/reserved-connection config keys beside it.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "config/capacity.h"
#include "config/config.h"
#include "http/websocket_frame_limit.h"

namespace {

using rtgw::http::WebSocketFrameLimiter;

const std::string kRequest =
    "GET /v1/realtime?model=echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";

// A masked client frame (mask 0: the payload is as given).
std::string frame(unsigned opcode, bool fin, const std::string& payload) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  std::uint64_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n < 65536) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xFF);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((n >> shift) & 0xFF);
  }
  f += std::string(4, '\0');
  return f + payload;
}

// Feeds `bytes` in pieces of `step` (frame headers split across reads included).
std::string feed(WebSocketFrameLimiter& limiter, const std::string& bytes, std::size_t step) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += step)
    limiter.feed(bytes.data() + i, std::min(step, bytes.size() - i), out);
  return out;
}

// The request, then the route layer's verdict (a WebSocket handshake), then `frames`.
std::string feed_upgrade(WebSocketFrameLimiter& limiter, const std::string& frames,
                         std::size_t step) {
  std::string out = feed(limiter, kRequest, step);
  limiter.expect_frames(true);
  return out + feed(limiter, frames, step);
}

TEST(WebSocketFrameLimit, PassesTheRequestAndMessagesWithinTheBound) {
  for (std::size_t step : {1u, 3u, 7u, 4096u}) {
    WebSocketFrameLimiter limiter(1000);
    std::string in = frame(1, true, std::string(1000, 'a')) +
                     frame(1, false, std::string(400, 'b')) + frame(9, true, "ping") +
                     frame(0, false, std::string(400, 'c')) +
                     frame(0, true, std::string(200, 'd')) + frame(2, true, "x");
    EXPECT_EQ(feed_upgrade(limiter, in, step), kRequest + in) << step;
    EXPECT_FALSE(limiter.tripped());
    EXPECT_TRUE(limiter.in_frames());
  }
}

TEST(WebSocketFrameLimit, ManyNonFinalFragmentsTripAndAreDropped) {
  for (std::size_t step : {1u, 5u, 65536u}) {
    WebSocketFrameLimiter limiter(4096);
    std::string in;
    for (int i = 0; i < 200; i++) in += frame(i == 0 ? 1 : 0, false, std::string(1024, 'f'));
    std::string close = frame(8, true, std::string("\x03\xe8", 2));
    std::string out = feed_upgrade(limiter, in + close, step);
    EXPECT_TRUE(limiter.tripped());
    EXPECT_EQ(limiter.tripped_at(), 5u * 1024);
    // The request, the four fragments within the bound, then nothing but the close frame.
    std::string expected = kRequest;
    for (int i = 0; i < 4; i++) expected += frame(i == 0 ? 1 : 0, false, std::string(1024, 'f'));
    EXPECT_EQ(out, expected + close) << step;
  }
}

TEST(WebSocketFrameLimit, OneFrameAboveTheBoundNeverPasses) {
  WebSocketFrameLimiter limiter(1000);
  std::string out = feed_upgrade(limiter, frame(1, true, std::string(70000, 'z')), 1000);
  EXPECT_TRUE(limiter.tripped());
  EXPECT_EQ(limiter.tripped_at(), 70000u);
  EXPECT_EQ(out, kRequest);
  // A 64-bit length that would overflow a sum.
  WebSocketFrameLimiter huge(1000);
  std::string header = frame(1, false, "abc");
  header += static_cast<char>(0x00);
  header += static_cast<char>(0x80 | 127);
  header += std::string(1, static_cast<char>(0x7F)) + std::string(7, static_cast<char>(0xFF));
  header += std::string(4, '\0');
  EXPECT_EQ(feed_upgrade(huge, header, 1), kRequest + frame(1, false, "abc"));
  EXPECT_TRUE(huge.tripped());
}

TEST(WebSocketFrameLimit, AFinalFragmentStartsTheCountAgain) {
  WebSocketFrameLimiter limiter(1000);
  std::string in;
  for (int i = 0; i < 10; i++)
    in += frame(1, false, std::string(600, 'a')) + frame(0, true, std::string(400, 'b'));
  EXPECT_EQ(feed_upgrade(limiter, in, 333), kRequest + in);
  EXPECT_FALSE(limiter.tripped());
}

TEST(WebSocketFrameLimit, OversizedControlFramesTrip) {
  WebSocketFrameLimiter limiter(100000);
  std::string out = feed_upgrade(limiter, frame(9, true, std::string(200, 'p')), 64);
  EXPECT_TRUE(limiter.tripped());
  EXPECT_EQ(out, kRequest);
}

TEST(WebSocketFrameLimit, OtherRequestsPassUntouched) {
  // A body that reads as frames far above the bound: not a WebSocket, so nothing is held.
  std::string body =
      frame(9, true, std::string(300, 'p')) + frame(1, false, std::string(5000, 'q'));
  std::string post =
      "POST /v1/realtime/calls HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  WebSocketFrameLimiter limiter(1000);
  std::string out = feed(limiter, post, 16);
  limiter.expect_frames(false);
  out += feed(limiter, body, 7);
  EXPECT_EQ(out, post + body);
  EXPECT_FALSE(limiter.tripped());
  // Read before the verdict (it follows, passes everything), then the verdict.
  WebSocketFrameLimiter early(1000);
  EXPECT_EQ(feed(early, post + body, 100), post + body);
  early.expect_frames(false);
  EXPECT_FALSE(early.tripped());
}

TEST(WebSocketFrameLimit, FramesReadBeforeTheVerdictStillCount) {
  // A client that pipelines its frames behind the handshake: followed, then tripped at once.
  WebSocketFrameLimiter limiter(1000);
  std::string frames =
      frame(1, false, std::string(800, 'a')) + frame(0, false, std::string(800, 'b'));
  EXPECT_EQ(feed(limiter, kRequest + frames, 50), kRequest + frames);
  EXPECT_FALSE(limiter.tripped());
  limiter.expect_frames(true);
  EXPECT_TRUE(limiter.tripped());
  std::string out;
  std::string more = frame(0, true, "c");
  limiter.feed(more.data(), more.size(), out);
  EXPECT_EQ(out, "");
}

TEST(WebSocketFrameLimit, FindsTheEndOfTheHeadersAsLibsoupDoes) {
  // Bare line feeds end the headers too (libsoup 3.2 accepts "\n\n" and "\n\r\n").
  for (std::string request : {std::string("GET / HTTP/1.1\nUpgrade: websocket\n\n"),
                              std::string("GET / HTTP/1.1\nUpgrade: websocket\n\r\n")}) {
    WebSocketFrameLimiter limiter(1000);
    std::string out = feed(limiter, request, 1);
    EXPECT_TRUE(limiter.in_frames()) << request;
    limiter.expect_frames(true);
    feed(limiter, frame(1, true, std::string(2000, 'x')), 9);
    EXPECT_TRUE(limiter.tripped()) << request;
  }
  // An empty line before anything else is no end (libsoup reads on).
  WebSocketFrameLimiter leading(1000);
  feed(leading, "\n", 1);
  EXPECT_FALSE(leading.in_frames());
  feed(leading, "\r\n", 1);
  EXPECT_FALSE(leading.in_frames());
}

std::optional<std::string> no_env(const std::string&) { return std::nullopt; }

TEST(WebSocketFrameLimit, SlowBodyAndReservedConnectionKeys) {
  const std::string models = R"("models": [{"name": "e", "workers": [{"provider": "echo"}]}])";
  auto defaults = rtgw::config::load_from_text("{" + models + "}", "f", {}, no_env);
  EXPECT_EQ(defaults.limits.body_timeout_seconds, 30);
  EXPECT_EQ(defaults.limits.min_body_bytes_per_second, 500);
  // The default reserve is a tenth of max_connections, known once the caps are sized.
  rtgw::config::apply_sized_caps(defaults, 1 << 16);
  EXPECT_EQ(defaults.limits.max_connections, 1024);
  EXPECT_EQ(defaults.limits.reserved_connections, 102);  // 1024 / 10
  auto c = rtgw::config::load_from_text(
      "{" + models +
          R"(, "limits": {"max_connections": 20, "reserved_connections": 5,
             "body_timeout_seconds": 4, "min_body_bytes_per_second": 0}})",
      "f", {}, no_env);
  EXPECT_EQ(c.limits.reserved_connections, 5);
  EXPECT_EQ(c.limits.body_timeout_seconds, 4);
  EXPECT_EQ(c.limits.min_body_bytes_per_second, 0);
  EXPECT_NE(rtgw::config::describe(c).find("reserved_connections=5"), std::string::npos);
  auto env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "RTGW_BODY_TIMEOUT_SECONDS") return "9";
    if (name == "RTGW_MIN_BODY_BYTES_PER_SECOND") return "100";
    if (name == "RTGW_RESERVED_CONNECTIONS") return "3";
    return std::nullopt;
  };
  auto from_env = rtgw::config::load_from_text("{" + models + "}", "f", {}, env);
  EXPECT_EQ(from_env.limits.body_timeout_seconds, 9);
  EXPECT_EQ(from_env.limits.min_body_bytes_per_second, 100);
  EXPECT_EQ(from_env.limits.reserved_connections, 3);
  try {
    rtgw::config::load_from_text(
        "{" + models + R"(, "limits": {"max_connections": 10, "reserved_connections": 10}})", "f",
        {}, no_env);
    FAIL() << "a reserve of every connection was accepted";
  } catch (const rtgw::config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.limits.reserved_connections"), std::string::npos);
  }
  EXPECT_THROW(rtgw::config::load_from_text(
                   "{" + models + R"(, "limits": {"body_timeout_seconds": 0}})", "f", {}, no_env),
               rtgw::config::ConfigError);
}

}  // namespace
