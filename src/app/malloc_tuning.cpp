// SPDX-License-Identifier: MIT
#include "app/malloc_tuning.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace rtgw::app {

namespace {

constexpr const char* kTunablesEnv = "GLIBC_TUNABLES";
constexpr const char* kChoiceEnv = "RTGW_MALLOC_TCACHE_MAX";
constexpr const char* kReexecEnv = "RTGW_MALLOC_REEXEC";
constexpr int kGlibcTcacheMaxLimit = 1032;  // glibc 2.36's MAX_TCACHE_SIZE for 64-bit

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// The value of `name` in a GLIBC_TUNABLES string ("a=1:b=2"), if present.
std::optional<std::string> tunable(std::string_view tunables, std::string_view name) {
  while (!tunables.empty()) {
    const auto colon = tunables.find(':');
    const std::string_view item = tunables.substr(0, colon);
    const auto eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name)
      return std::string(item.substr(eq + 1));
    if (colon == std::string_view::npos) break;
    tunables.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

}  // namespace

TcacheChoice tcache_choice(const char* env_value) {
  TcacheChoice c;
  c.max_bytes = kDefaultTcacheMaxBytes;
  if (!env_value || !*env_value) return c;
  if (std::strcmp(env_value, "glibc") == 0) {
    c.max_bytes.reset();
    return c;
  }
  // strtol alone would take leading blanks and a sign.
  const bool digits = *env_value >= '0' && *env_value <= '9';
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(env_value, &end, 10);
  if (!digits || errno != 0 || end == env_value || *end != '\0' || v < 0 ||
      v > kGlibcTcacheMaxLimit) {
    c.error = std::string(kChoiceEnv) + "=\"" + env_value +
              "\" is not a byte count in [0, 1032] or \"glibc\"; using " +
              std::to_string(kDefaultTcacheMaxBytes);
    return c;
  }
  c.max_bytes = static_cast<int>(v);
  return c;
}

std::optional<std::string> tunables_with_tcache_max(const char* current,
                                                    std::optional<int> max_bytes) {
  if (!max_bytes) return std::nullopt;
  const std::string_view cur = current ? current : "";
  if (tunable(cur, "glibc.malloc.tcache_max") || tunable(cur, "glibc.malloc.tcache_count"))
    return std::nullopt;
  std::string out(cur);
  if (!out.empty()) out += ':';
  out += "glibc.malloc.tcache_max=" + std::to_string(*max_bytes);
  return out;
}

std::string describe_malloc_tuning() {
  const char* cur = std::getenv(kTunablesEnv);
  const auto max = tunable(cur ? cur : "", "glibc.malloc.tcache_max");
  const auto count = tunable(cur ? cur : "", "glibc.malloc.tcache_count");
  std::string out = "malloc: per-thread cache ";
  if (kSanitized)
    out += "not tuned (sanitizer build: its allocator is not glibc's)";
  else if (!max && !count)
    out += "glibc's default (chunks up to 1032 bytes)";
  else
    out += "tcache_max " + (max ? *max + " bytes" : std::string("default")) + ", tcache_count " +
           (count ? *count : std::string("default")) + " (GLIBC_TUNABLES)";
  const TcacheChoice c = tcache_choice(std::getenv(kChoiceEnv));
  if (!c.error.empty()) out += "; " + c.error;
  return out;
}

void apply_malloc_tunables(char** argv) {
  if (kSanitized || std::getenv(kReexecEnv)) return;
  // valgrind runs a re-executed image natively unless told to follow children.
  const char* preload = std::getenv("LD_PRELOAD");
  if (preload && std::strstr(preload, "vgpreload")) return;
  const auto next = tunables_with_tcache_max(std::getenv(kTunablesEnv),
                                             tcache_choice(std::getenv(kChoiceEnv)).max_bytes);
  if (!next) return;
  const char* before = std::getenv(kTunablesEnv);
  const std::optional<std::string> saved =
      before ? std::optional<std::string>(before) : std::nullopt;
  if (setenv(kTunablesEnv, next->c_str(), 1) != 0 || setenv(kReexecEnv, "1", 1) != 0) return;
  // The binary's own path, not /proc/self/exe: the kernel names the process after the file
  // exec'd (`comm`, what ps, top and pgrep show), which would be "exe". /proc/self/exe only when
  // the path cannot be used (e.g. the file was replaced by an upgrade: "... (deleted)").
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) execv(self.c_str(), argv);
  execv("/proc/self/exe", argv);
  // Failed (no /proc?): run on with glibc's defaults, and put the environment back so the
  // start-up log does not report a setting glibc never read.
  if (saved)
    setenv(kTunablesEnv, saved->c_str(), 1);
  else
    unsetenv(kTunablesEnv);
  unsetenv(kReexecEnv);
}

}  // namespace rtgw::app
