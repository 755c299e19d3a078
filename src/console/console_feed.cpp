// SPDX-License-Identifier: MIT
#include "console/console_feed.h"

#include <glib.h>

#include <utility>

#include "common/api_error.h"
#include "usage/usage_ledger.h"

namespace rtgw::console {

void ConsoleFeed::on_turn(const usage::UsageRecord& record) {
  if (record.cost_usd)
    spend_.add(record.key_name, record.model, *record.cost_usd, g_get_real_time() / G_USEC_PER_SEC);
}

void ConsoleFeed::note_error(std::string kind, std::string code, std::string message,
                             std::string id, std::string key) {
  ErrorEntry e;
  e.kind = std::move(kind);
  e.code = std::move(code);
  e.message = std::move(message);
  e.id = std::move(id);
  e.key = std::move(key);
  errors_.note(std::move(e));
}

void ConsoleFeed::note_http_error(const ApiError& error, const char* method, const char* path) {
  const int status = error.status();
  const bool refusal = status == 402 || status == 403 || status == 429 || status == 503;
  note_error(refusal ? "refusal" : "http", error.code(),
             std::to_string(status) + " " + error.what(),
             std::string(method ? method : "") + " " + (path ? path : ""));
}

}  // namespace rtgw::console
