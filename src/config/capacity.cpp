// SPDX-License-Identifier: MIT
#include "config/capacity.h"

#include <algorithm>

namespace rtgw::config {

SizedCaps size_caps(std::uint64_t fd_limit) {
  const std::int64_t limit =
      static_cast<std::int64_t>(std::min<std::uint64_t>(fd_limit, kFdLimitCeiling));
  const std::int64_t usable = std::max<std::int64_t>(limit - kReservedFds, 0);
  SizedCaps c;
  // Connections first (each an fd, and each may become a call's signalling request), then calls
  // from what is left. Every cap is at least 1 so that a tiny limit still serves one call.
  c.max_connections = static_cast<int>(
      std::clamp<std::int64_t>(usable / kConnectionShareDivisor, 8, kMaxConnectionsCeiling));
  c.max_calls = static_cast<int>(
      std::clamp<std::int64_t>((usable - c.max_connections) / kFdsPerCall, 1, kMaxCallsCeiling));
  // One key (and its tokens) may hold half the gateway: another key always finds room.
  c.max_calls_per_key = std::max(1, c.max_calls / 2);
  // Set-ups are the cheap way to hold a call's resources (no ICE needed): a quarter of the calls
  // may be setting up at once (at least 4, never more than max_calls), half of that per key.
  c.max_setups = std::min(c.max_calls, std::max(4, c.max_calls / 4));
  c.max_setups_per_key = std::max(1, c.max_setups / 2);
  return c;
}

void apply_sized_caps(Config& config, std::uint64_t fd_limit) {
  LimitsConfig& l = config.limits;
  const SizedCaps sized = size_caps(fd_limit);
  l.fd_limit = fd_limit;
  l.sized.clear();
  auto resolve = [&](int& field, int value, const char* name) {
    if (field != LimitsConfig::kAuto) return;
    field = value;
    l.sized.emplace_back(name);
  };
  resolve(l.max_connections, sized.max_connections, "max_connections");
  resolve(l.max_calls, sized.max_calls, "max_calls");
  // Connections kept for privileged requests: a tenth of the cap unless configured; a configured
  // share must leave room for the rest (checked here too, since the cap may have been sized).
  if (l.reserved_connections < 0)
    l.reserved_connections = l.max_connections / 10;
  else if (l.max_connections > 0 && l.reserved_connections >= l.max_connections)
    throw ConfigError(config.source, "$.limits.reserved_connections",
                      std::to_string(l.reserved_connections) +
                          " leaves no connection for requests without a key: it must be below "
                          "limits.max_connections (" +
                          std::to_string(l.max_connections) + ")");
  // The per-key and set-up defaults follow an explicit max_calls (0: no limit, so none either).
  const bool calls_unlimited = l.max_calls == 0;
  SizedCaps from_calls = sized;
  if (!calls_unlimited && l.max_calls != sized.max_calls) {
    from_calls.max_calls_per_key = std::max(1, l.max_calls / 2);
    from_calls.max_setups = std::min(l.max_calls, std::max(4, l.max_calls / 4));
    from_calls.max_setups_per_key = std::max(1, from_calls.max_setups / 2);
  }
  resolve(l.max_calls_per_key, calls_unlimited ? 0 : from_calls.max_calls_per_key,
          "max_calls_per_key");
  resolve(l.max_setups, calls_unlimited ? sized.max_setups : from_calls.max_setups, "max_setups");
  resolve(l.max_setups_per_key,
          calls_unlimited ? sized.max_setups_per_key : from_calls.max_setups_per_key,
          "max_setups_per_key");
  for (auto& key : config.auth.keys)
    if (key.max_concurrent_calls == LimitsConfig::kAuto)
      key.max_concurrent_calls = l.max_calls_per_key;
}

}  // namespace rtgw::config
