// SPDX-License-Identifier: MIT
#include "common/pipeline.h"

#include <sstream>
#include <stdexcept>

namespace rtgw {

std::string load_pipeline_description(const std::string& path) {
  gchar* contents = nullptr;
  gsize length = 0;
  UniqueError err;
  if (!g_file_get_contents(path.c_str(), &contents, &length, ErrorOut(err)))
    throw std::runtime_error("pipeline file " + path + ": " + (err ? err->message : "cannot read"));
  UniqueStr owned(contents);
  std::istringstream in(std::string(contents, length));
  std::string line, out;
  while (std::getline(in, line)) {
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    out += line + "\n";
  }
  return out;
}

Ref<GstElement> build_pipeline(const std::string& description, const char* what,
                               std::initializer_list<const char*> required) {
  UniqueError err;
  GstElement* raw = gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS,
                                          ErrorOut(err));
  auto pipeline = Ref<GstElement>::sink(raw);
  std::string prefix = std::string("the ") + what + " pipeline";
  if (!pipeline)
    throw std::runtime_error(prefix + " does not build: " + (err ? err->message : "?"));
  if (!GST_IS_PIPELINE(pipeline.get()))
    throw std::runtime_error(prefix + " description must describe several elements");
  for (const char* name : required)
    if (!Ref<GstElement>::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), name)))
      throw std::runtime_error(prefix + " has no element named '" + name + "'");
  return pipeline;
}

SourceGuard watch_bus(GstElement* pipeline, std::function<void(GstMessage*)> on_message) {
  using Handler = std::function<void(GstMessage*)>;
  auto bus = Ref<GstBus>::adopt(gst_element_get_bus(pipeline));
  return SourceGuard(gst_bus_add_watch_full(
      bus.get(), G_PRIORITY_DEFAULT,
      [](GstBus*, GstMessage* message, gpointer data) -> gboolean {
        UserData<Handler>::from(data)(message);
        return G_SOURCE_CONTINUE;
      },
      UserData<Handler>::make(std::move(on_message)), &UserData<Handler>::destroy));
}

Ref<GstPromise> make_promise(std::function<void(const GstStructure* reply)> on_reply) {
  using Handler = std::function<void(const GstStructure*)>;
  return Ref<GstPromise>::adopt(gst_promise_new_with_change_func(
      [](GstPromise* promise, gpointer data) {
        const GstStructure* reply = nullptr;
        if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED)
          reply = gst_promise_get_reply(promise);
        try {
          UserData<Handler>::from(data)(reply);
        } catch (...) {
          g_warning("promise handler threw");
        }
      },
      UserData<Handler>::make(std::move(on_reply)), &UserData<Handler>::destroy));
}

}  // namespace rtgw
