// SPDX-License-Identifier: MIT
#include "app/logging.h"

#include <glib.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/log_text.h"

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
  // json-glib escapes control characters, but writes bytes that are not UTF-8 as they are.
  line.set("message", escape_log_text(message));
  std::string text = line.str() + "\n";
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
  return G_LOG_WRITER_HANDLED;
}

// GLib's own writer, with the message escaped: a peer's string with a newline in it cannot start
// a line of its own (nor garble the terminal).
GLogWriterOutput write_plain(GLogLevelFlags level, const GLogField* fields, gsize n_fields,
                             gpointer data) {
  std::vector<GLogField> copy(fields, fields + n_fields);
  std::string escaped;
  for (GLogField& field : copy) {
    if (g_strcmp0(field.key, "MESSAGE") != 0 || !field.value) continue;
    std::string_view message(static_cast<const char*>(field.value),
                             field.length < 0 ? strlen(static_cast<const char*>(field.value))
                                              : static_cast<std::size_t>(field.length));
    if (!log_text_needs_escape(message)) break;
    escaped = escape_log_text(message);
    field.value = escaped.c_str();
    field.length = -1;
    break;
  }
  return g_log_writer_default(level, copy.data(), copy.size(), data);
}

}  // namespace

void install_log_writer(bool json) {
  g_log_set_writer_func(json ? write_json : write_plain, nullptr, nullptr);
}

}  // namespace rtgw::app
