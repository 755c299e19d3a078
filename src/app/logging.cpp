// SPDX-License-Identifier: MIT
#include "app/logging.h"

#include <glib.h>

#include <cstdio>
#include <string>

#include "common/json.h"

namespace rtgw::app {
namespace {

const char* level_name(GLogLevelFlags level) {
  if (level & G_LOG_LEVEL_ERROR) return "error";
  if (level & G_LOG_LEVEL_CRITICAL) return "critical";
  if (level & G_LOG_LEVEL_WARNING) return "warning";
  if (level & G_LOG_LEVEL_MESSAGE) return "message";
  if (level & G_LOG_LEVEL_INFO) return "info";
  return "debug";
}

GLogWriterOutput write_json(GLogLevelFlags level, const GLogField* fields, gsize n_fields,
                            gpointer) {
  std::string message, domain;
  for (gsize i = 0; i < n_fields; i++) {
    if (fields[i].length >= 0) continue;  // only NUL-terminated string fields
    if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0 &&
        g_log_writer_default_would_drop(level, static_cast<const char*>(fields[i].value)))
      return G_LOG_WRITER_HANDLED;  // G_MESSAGES_DEBUG decides about debug/info, as usual
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
      message = static_cast<const char*>(fields[i].value);
    else if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
      domain = static_cast<const char*>(fields[i].value);
  }
  json::ObjectBuilder line;
  line.set("time", static_cast<double>(g_get_real_time()) / 1e6).set("level", level_name(level));
  if (!domain.empty()) line.set("domain", domain);
  // "[rtc_…] text": the call id becomes its own field.
  if (message.size() > 2 && message[0] == '[') {
    auto end = message.find("] ");
    if (end != std::string::npos && message.compare(1, 4, "rtc_") == 0) {
      line.set("call_id", message.substr(1, end - 1));
      message = message.substr(end + 2);
    }
  }
  line.set("message", message);
  std::string text = line.str() + "\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  return G_LOG_WRITER_HANDLED;
}

}  // namespace

void install_log_writer(bool json) {
  if (json) g_log_set_writer_func(write_json, nullptr, nullptr);
}

}  // namespace rtgw::app
