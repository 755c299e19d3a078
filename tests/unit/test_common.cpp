// SPDX-License-Identifier: MIT
// common/: the GLib glue (main_thread.h, ref.h: liveness tokens drop posts for an owner that is
// gone, one-shot timers leave a harmless guard once fired, guards cancel what has not run, signal
// connections disconnect when they go, user data is freed exactly once), JSON parsing bounds, and
// WebSocket close frames.
#include <gio/gio.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "common/base64url.h"
#include "common/json.h"
#include "common/main_thread.h"
#include "common/ref.h"
#include "common/websocket.h"

namespace rtgw {
namespace {

// Runs the default main context until `done()` or `ms` pass.
template <typename Pred>
bool spin_until(Pred done, int ms = 2000) {
  gint64 deadline = g_get_monotonic_time() + gint64{ms} * 1000;
  while (!done() && g_get_monotonic_time() < deadline) g_main_context_iteration(nullptr, FALSE);
  return done();
}

void spin_for(int ms) {
  spin_until([] { return false; }, ms);
}

TEST(MainThread, PostIsQueuedNotRunInline) {
  bool ran = false;
  post_to_main([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_TRUE(spin_until([&] { return ran; }));
}

TEST(MainThread, PostIfAliveDropsTheCallOnceTheOwnerIsGone) {
  int ran = 0;
  auto owner = std::make_unique<Lifetime>();
  post_if_alive(owner->watch(), [&] { ran++; });
  Liveness before_end = owner->watch();
  owner.reset();
  EXPECT_FALSE(before_end.alive());
  spin_for(50);
  EXPECT_EQ(ran, 0);

  Lifetime alive;
  post_if_alive(alive.watch(), [&] { ran++; });
  EXPECT_TRUE(spin_until([&] { return ran == 1; }));
  alive.end();
  EXPECT_FALSE(alive.watch().alive());
}

TEST(MainThread, PostFromAnotherThreadRunsOnTheMainContext) {
  Lifetime owner;
  GThread* ran_on = nullptr;
  std::thread t(
      [&, alive = owner.watch()] { post_if_alive(alive, [&] { ran_on = g_thread_self(); }); });
  t.join();
  EXPECT_TRUE(spin_until([&] { return ran_on != nullptr; }));
  EXPECT_EQ(ran_on, g_thread_self());
}

TEST(MainThread, OneShotTimerFiresOnceAndItsGuardStaysHarmless) {
  int fired = 0;
  SourceGuard guard = run_after_ms(10, [&] { fired++; });
  EXPECT_TRUE(static_cast<bool>(guard));
  EXPECT_TRUE(spin_until([&] { return fired == 1; }));
  spin_for(50);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(static_cast<bool>(guard));
  guard.cancel();  // the source is gone already: no critical, nothing happens
  guard = run_after_ms(10, [&] { fired++; });
  EXPECT_TRUE(spin_until([&] { return fired == 2; }));
}

TEST(MainThread, CancelledTimerNeverFires) {
  int fired = 0;
  {
    SourceGuard guard = run_after_ms(10, [&] { fired++; });
  }
  SourceGuard other = run_after_ms(10, [&] { fired++; });
  other.cancel();
  spin_for(60);
  EXPECT_EQ(fired, 0);
}

TEST(MainThread, TimerMayCancelItsOwnGuardAndRepeatingTimerStopsOnFalse) {
  int fired = 0;
  SourceGuard guard;
  guard = run_after_ms(5, [&] {
    fired++;
    guard.cancel();  // the owner ends inside its own timer (hang_up from a timeout)
  });
  EXPECT_TRUE(spin_until([&] { return fired == 1; }));

  int ticks = 0;
  SourceGuard every = run_every_ms(5, [&] { return ++ticks < 3; });
  EXPECT_TRUE(spin_until([&] { return ticks == 3; }));
  spin_for(40);
  EXPECT_EQ(ticks, 3);
}

TEST(MainThread, SignalConnectionDisconnectsWhenItGoes) {
  auto cancellable = Ref<GCancellable>::adopt(g_cancellable_new());
  int calls = 0;
  auto owned = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owned;
  {
    SignalConnection c = connect_signal<void(GCancellable*)>(
        cancellable.get(), "cancelled", [&calls, owned](GCancellable*) { calls++; });
    owned.reset();
    EXPECT_FALSE(watch.expired());  // the closure holds its captures while connected
  }
  EXPECT_TRUE(watch.expired());  // disconnected: the closure is freed
  g_cancellable_cancel(cancellable.get());
  EXPECT_EQ(calls, 0);

  auto other = Ref<GCancellable>::adopt(g_cancellable_new());
  SignalConnection c =
      connect_signal<void(GCancellable*)>(other.get(), "cancelled", [&](GCancellable* which) {
        EXPECT_EQ(which, other.get());
        calls++;
      });
  g_cancellable_cancel(other.get());
  EXPECT_EQ(calls, 1);
}

TEST(MainThread, LifetimeConnectionIsFreedWithTheInstance) {
  auto owned = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owned;
  auto cancellable = Ref<GCancellable>::adopt(g_cancellable_new());
  connect_signal_for_lifetime<void(GCancellable*)>(cancellable.get(), "cancelled",
                                                   [owned](GCancellable*) {});
  owned.reset();
  EXPECT_FALSE(watch.expired());
  cancellable.reset();
  EXPECT_TRUE(watch.expired());
}

TEST(MainThread, AsyncReadyRunsOnceAndFreesItsClosure) {
  auto owned = std::make_shared<int>(0);
  std::weak_ptr<int> watch = owned;
  bool ran = false;
  auto file = Ref<GFile>::adopt(g_file_new_for_path("/"));
  auto ready = async_ready([&ran, owned](GObject* source, GAsyncResult* result) {
    UniqueError err;
    auto info =
        Ref<GFileInfo>::adopt(g_file_query_info_finish(G_FILE(source), result, ErrorOut(err)));
    ran = info != nullptr;
  });
  owned.reset();
  g_file_query_info_async(file.get(), G_FILE_ATTRIBUTE_STANDARD_TYPE, G_FILE_QUERY_INFO_NONE,
                          G_PRIORITY_DEFAULT, nullptr, ready.callback, ready.user_data);
  EXPECT_TRUE(spin_until([&] { return ran; }));
  EXPECT_TRUE(watch.expired());
}

TEST(Json, LargeAndSmallDoublesComeOutAsJson) {
  // json-glib alone writes 1e20 as `1e+20.0` (found by the beta fuzz target).
  auto root =
      rtgw::json::parse(R"({"a":1e20,"b":"1e+20.0 stays","c":[1.5e-7,-2E+300,7],"d":true})");
  ASSERT_TRUE(root);
  const std::string text = rtgw::json::to_string(root.get());
  EXPECT_NE(text.find(R"("a":1e+20,)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("1e+20.0 stays")"), std::string::npos) << text;
  auto again = rtgw::json::parse(text);
  ASSERT_TRUE(again) << text;
  JsonObject* o = json_node_get_object(again.get());
  EXPECT_DOUBLE_EQ(json_object_get_double_member(o, "a"), 1e20);
  JsonArray* c = json_object_get_array_member(o, "c");
  EXPECT_DOUBLE_EQ(json_array_get_double_element(c, 0), 1.5e-7);
  EXPECT_DOUBLE_EQ(json_array_get_double_element(c, 1), -2e300);
  EXPECT_EQ(json_array_get_int_element(c, 2), 7);
}
TEST(Json, NestingBound) {
  std::string error;
  EXPECT_FALSE(rtgw::json::parse(std::string(100000, '['), &error));
  EXPECT_NE(error.find("deeper than 64"), std::string::npos) << error;
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(rtgw::json::parse(ok));
  EXPECT_FALSE(rtgw::json::parse("[" + ok + "]"));
  // Brackets inside strings, escaped quotes included, are not nesting.
  std::string in_string = "{\"s\":\"\\\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(rtgw::json::parse(in_string, &error)) << error;
  EXPECT_FALSE(rtgw::json::parse("[[[", &error));
}

TEST(Json, LoneSurrogateEscapesBecomeReplacementCharacters) {
  // Found by tests/fuzz (token): json-glib 1.6 decodes a lone surrogate escape into invalid UTF-8,
  // so the session it serialized again (to a worker, into a token) was not JSON.
  for (const char* text : {R"({"a":"x\udc00y"})", R"({"\ud800":"t"})", R"({"a":"\ud800\u0041"})",
                           R"({"a":"\uDBFF"})", R"({"a":"\\udc00"})"}) {
    std::string error;
    auto node = rtgw::json::parse(text, &error);
    ASSERT_TRUE(node) << text << ": " << error;
    std::string again = rtgw::json::to_string(node.get());
    EXPECT_TRUE(g_utf8_validate(again.data(), static_cast<gssize>(again.size()), nullptr)) << text;
    EXPECT_TRUE(rtgw::json::parse(again, &error)) << text << " -> " << again << ": " << error;
  }
  auto node = rtgw::json::parse(R"({"a":"x\udc00y","b":"\ud83d\ude00"})");
  ASSERT_TRUE(node);
  JsonObject* o = json_node_get_object(node.get());
  EXPECT_EQ(rtgw::json::get_string(o, "a"), "x\uFFFDy");    // U+FFFD, nothing eaten
  EXPECT_EQ(rtgw::json::get_string(o, "b"), "\U0001F600");  // a proper pair is untouched
}

TEST(Json, EscapesOutsideJsonAreRefused) {
  // Found by tests/fuzz (token): json-glib 1.6 reads `\312` as the byte 0xCA and `\ud8H` as CESU
  // bytes, so what it serialized again was not UTF-8, not JSON.
  for (const char* text :
       {R"({"a":"b\312c"})", R"({"a":"\ud8H>>"})", R"({"a":"\ud8>>>>>>0."})", R"({"a":"\q"})",
        R"({"a":"\u00zz"})", R"({"a":"\ud800\uzzzz"})", R"({"a":"\)"}) {
    std::string error;
    EXPECT_FALSE(rtgw::json::parse(text, &error)) << text;
    EXPECT_NE(error.find("invalid escape"), std::string::npos) << text << ": " << error;
  }
  std::string error;
  auto node = rtgw::json::parse(R"({"a":"\"\\\/\b\f\n\r\t\u00e9"})", &error);
  ASSERT_TRUE(node) << error;
  EXPECT_EQ(rtgw::json::get_string(json_node_get_object(node.get()), "a"), "\"\\/\b\f\n\r\t\u00e9");
}

TEST(Json, NumbersBeyondADoubleAreRefused) {
  // Found by tests/fuzz (beta): json-glib reads `3e8944` as infinity and writes it back as
  // `inf.0`, so a translated upstream event was no longer JSON.
  for (const char* text : {R"({"rate":3e8944})", R"([1,[-1e999]])", R"(1e400)"}) {
    std::string error;
    EXPECT_FALSE(rtgw::json::parse(text, &error)) << text;
    EXPECT_NE(error.find("out of range"), std::string::npos) << text << ": " << error;
  }
  std::string error;
  auto node = rtgw::json::parse(R"({"a":1.7976931348623157e308,"b":-5e-324,"c":[0.5]})", &error);
  ASSERT_TRUE(node) << error;
}

TEST(WebSocket, CloseReasonFitsTheFrame) {
  EXPECT_EQ(rtgw::clip_close_reason("short"), "short");
  std::string ascii(200, 'a');
  EXPECT_EQ(rtgw::clip_close_reason(ascii).size(), 123u);
  // 'é' is two bytes: 61 of them are 122 bytes, the 62nd would end at byte 124.
  std::string accented;
  for (int i = 0; i < 70; i++) accented += "\xc3\xa9";
  std::string clipped = rtgw::clip_close_reason(accented);
  EXPECT_EQ(clipped.size(), 122u);
  EXPECT_TRUE(g_utf8_validate(clipped.data(), static_cast<gssize>(clipped.size()), nullptr));
}

TEST(WebSocket, SendableCloseCodes) {
  for (int code : {1000, 1001, 1008, 1009, 1011, 1013, 3000, 4001, 4999})
    EXPECT_TRUE(rtgw::sendable_close_code(code)) << code;
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 2000, 5000})
    EXPECT_FALSE(rtgw::sendable_close_code(code)) << code;
}

// RFC 4648 section 10's vectors, URL-safe alphabet, no padding; every length mod 3 round trips.
TEST(Base64Url, EncodesWithoutPaddingAndRoundTrips) {
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("fo"), "Zm8");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("foob"), "Zm9vYg");
  // 0xfb 0xff: '+' and '/' in plain base64 become '-' and '_'.
  EXPECT_EQ(base64url(std::string("\xfb\xff\xbf", 3)), "-_-_");
  std::string bytes;
  for (int i = 0; i < 64; ++i) {
    bytes.push_back(static_cast<char>(i * 37 + 11));
    std::string text = base64url(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos) << text;
    EXPECT_EQ(unbase64url(text), bytes) << text;
  }
}

TEST(Base64Url, DecoderRefusesCharactersOutsideTheAlphabet) {
  EXPECT_EQ(unbase64url("Zm9v"), "foo");
  EXPECT_EQ(unbase64url("Zm8="), std::nullopt) << "padding is not part of the form";
  EXPECT_EQ(unbase64url("Zm+v"), std::nullopt) << "plain base64's '+'";
  EXPECT_EQ(unbase64url("Zm/v"), std::nullopt) << "plain base64's '/'";
  EXPECT_EQ(unbase64url("Zm 9v"), std::nullopt);
}

}  // namespace
}  // namespace rtgw
