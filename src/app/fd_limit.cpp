// SPDX-License-Identifier: MIT
#include "app/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "config/capacity.h"

namespace rtgw::app {
namespace {

std::uint64_t value(rlim_t v) { return v == RLIM_INFINITY ? FdLimit::kUnlimited : v; }

std::string text(std::uint64_t v) {
  return v == FdLimit::kUnlimited ? "unlimited" : std::to_string(v);
}

}  // namespace

FdLimit raise_fd_limit() {
  FdLimit out;
  struct rlimit lim {};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    out.error = std::string("getrlimit: ") + std::strerror(errno);
    return out;
  }
  out.soft_before = out.soft = value(lim.rlim_cur);
  out.hard = value(lim.rlim_max);
  const std::uint64_t target = std::min<std::uint64_t>(out.hard, config::kFdLimitCeiling);
  if (out.soft_before >= target) return out;  // already there (or above the ceiling: left)
  struct rlimit raised = lim;
  raised.rlim_cur = static_cast<rlim_t>(target);
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    out.error = std::string("setrlimit: ") + std::strerror(errno);
    return out;
  }
  out.soft = target;
  return out;
}

std::string FdLimit::describe() const {
  std::string s = "open files: soft limit " + text(soft_before);
  if (soft != soft_before)
    s += " raised to " + text(soft);
  else if (!error.empty())
    s += " kept (" + error + ")";
  else
    s += " kept";
  return s + " (hard limit " + text(hard) + ")";
}

}  // namespace rtgw::app
