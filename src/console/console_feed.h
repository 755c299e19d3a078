// SPDX-License-Identifier: MIT
// What the operator console shows beyond the live registries: spend over time and recent errors.
//
// Owns: the spend series (console/spend_series.h) and the recent-errors ring
// (console/recent_errors.h). Fed by one-line hooks where turns are metered (the accounting) and
// where errors and refusals are produced (the HTTP error boundary, the accounting's call and
// session outcomes, policy blocks); read by the console stream (http/console_streams.h). Both are
// bounded and cheap (a map lookup per priced turn, a ring push per error), so they are fed
// whether or not a console is open.
//
// Threads: main loop only.
#pragma once

#include <string>

#include "console/recent_errors.h"
#include "console/spend_series.h"

namespace rtgw {
class ApiError;
namespace usage {
struct UsageRecord;
}
}  // namespace rtgw

namespace rtgw::console {

class ConsoleFeed {
 public:
  // A metered turn (its cost_usd as the relay priced it; unpriced turns draw nothing).
  void on_turn(const usage::UsageRecord& record);
  void note_error(std::string kind, std::string code, std::string message, std::string id = {},
                  std::string key = {});
  // An error answered to an HTTP client's `method` `path`: a refusal (402, 403, 429, 503) or
  // another error.
  void note_http_error(const ApiError& error, const char* method, const char* path);

  const SpendSeries& spend() const { return spend_; }
  const RecentErrors& errors() const { return errors_; }

 private:
  SpendSeries spend_;
  RecentErrors errors_;
};

}  // namespace rtgw::console
