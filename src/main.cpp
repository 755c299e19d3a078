// SPDX-License-Identifier: MIT
// realtime-gateway: command line, GStreamer start-up, and the gateway's main loop.
#include <gst/gst.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>

#include "app/config_checks.h"
#include "app/fd_limit.h"
#include "app/gateway.h"
#include "app/logging.h"
#include "app/malloc_tuning.h"
#include "app/platform_versions.h"
#include "calls/call.h"
#include "common/pipeline.h"
#include "common/pipeline_reaper.h"
#include "common/ref.h"
#include "config/capacity.h"
#include "config/config.h"
#include "config/schema.h"
#include "events/event_path.h"
#include "http/tls_identity.h"
#include "recording/recording_plan.h"
#include "rtevents/rtevents.h"
#include "rtgw_version.h"
#include "webrtc/ice_agent.h"
#include "webrtc/ice_context.h"
#include "webrtc/receive_bypass.h"
#include "webrtc/sctp_stack.h"

namespace {

constexpr int kReaperExitWaitMs = 3000;  // bound on stopping the last pipelines at exit
constexpr int kMallocArenas = 2;         // M_ARENA_MAX, see main()

struct Options {
  gchar* config = nullptr;
  gchar* listen = nullptr;
  gchar* pipeline = nullptr;
  gboolean check_config = FALSE;
  gboolean config_reference = FALSE;
  gboolean version = FALSE;
};

}  // namespace

int main(int argc, char** argv) {
  // glibc's per-thread caches keep freed memory in each of a call's ~14 threads; the cap is a
  // tunable glibc reads only at exec, so this may re-execute the binary once (app/malloc_tuning.h).
  rtgw::app::apply_malloc_tunables(argv);
  // Each call brings ~26 threads; glibc gives threads their own malloc arenas (up to 8 per
  // core), each holding freed memory. Two arenas serve a relay's small, short-lived buffers as
  // well and keep RSS per call lower (tests/bench/README.md). MALLOC_ARENA_MAX still wins.
  if (!g_getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, kMallocArenas);
  // Before GStreamer or GLib open anything: a soft limit of 1024 runs out at a few dozen calls,
  // and GLib aborts when it cannot make a descriptor (app/fd_limit.h). Logged once the log
  // writer is installed; the default caps are sized from the result.
  const rtgw::app::FdLimit fd_limit = rtgw::app::raise_fd_limit();
  Options opts;
  GOptionEntry entries[] = {
      {"config", 'c', 0, G_OPTION_ARG_FILENAME, &opts.config,
       "JSON config file (default: the built-in echo model on 127.0.0.1:8080)", "FILE"},
      {"listen", 'l', 0, G_OPTION_ARG_STRING, &opts.listen,
       "HOST:PORT to listen on (beats RTGW_LISTEN and the config's \"listen\")", "HOST:PORT"},
      {"pipeline", 0, 0, G_OPTION_ARG_FILENAME, &opts.pipeline,
       "per-call pipeline description (beats RTGW_PIPELINE_FILE and \"pipeline_file\")", "FILE"},
      {"check-config", 0, 0, G_OPTION_ARG_NONE, &opts.check_config,
       "validate the config, print what would run, and exit (non-zero on any error)", nullptr},
      {"config-reference", 0, 0, G_OPTION_ARG_NONE, &opts.config_reference,
       "print every config key and variable as markdown (docs/config.md) and exit", nullptr},
      {"version", 0, 0, G_OPTION_ARG_NONE, &opts.version, "print the version and exit", nullptr},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr}};

  std::unique_ptr<GOptionContext, decltype(&g_option_context_free)> context(
      g_option_context_new("- WebRTC/WebSocket gateway for OpenAI-Realtime-compatible servers"),
      g_option_context_free);
  g_option_context_set_summary(
      context.get(),
      "Terminates a client's WebRTC call (POST /v1/realtime/calls), opens its own to an upstream\n"
      "worker, and relays Opus audio and the oai-events data channel through policy and metering.\n"
      "Caps left out of the config are sized from the open-file limit, whose soft value is\n"
      "raised to the hard one at start-up.");
  // The variables come from the config schema (config/schema.h): one row per key.
  const std::string env_help = rtgw::config::env_help();
  g_option_context_set_description(context.get(), env_help.c_str());
  g_option_context_add_main_entries(context.get(), entries, nullptr);
  g_option_context_add_group(context.get(), gst_init_get_option_group());
  rtgw::UniqueError err;
  if (!g_option_context_parse(context.get(), &argc, &argv, rtgw::ErrorOut(err))) {
    std::fprintf(stderr, "realtime-gateway: %s (see --help)\n", err->message);
    return 2;
  }
  rtgw::UniqueStr config_file(opts.config), listen(opts.listen), pipeline(opts.pipeline);
  if (opts.config_reference) {
    std::cout << rtgw::config::reference_markdown();
    return 0;
  }
  if (opts.version) {
    std::printf("realtime-gateway %s\n", RTGW_VERSION);
    return 0;
  }
  gst_init(&argc, &argv);
  rtevents_register_static();

  rtgw::config::Overrides overrides;
  if (listen) overrides.listen = listen.get();
  if (pipeline) overrides.pipeline_file = pipeline.get();
  try {
    rtgw::config::Config config = rtgw::config::load(config_file ? config_file.get() : "",
                                                     overrides, rtgw::config::process_env());
    rtgw::config::apply_sized_caps(config, fd_limit.soft);
    rtgw::app::install_log_writer(config.json_logs);
    if (opts.check_config) {
      std::cout << fd_limit.describe() << "\n";
      std::cout << rtgw::app::describe_malloc_tuning() << "\n";
      // The same checks a reload runs (app/config_checks.h).
      rtgw::app::check_loaded_config(config);
      if (config.webrtc.ice_agent == "shared") {
        std::string why = rtgw::webrtc::check_nice_layout();
        if (!why.empty())
          std::cout << "warning: webrtc.ice_agent \"shared\" unavailable, webrtcbin's own agent "
                       "will run: "
                    << why << "\n";
      }
      std::cout << rtgw::config::describe(config) << "platform: " << rtgw::app::platform_versions()
                << "\n"
                << "config OK\n";
      return 0;
    }
    rtgw::webrtc::set_receive_queue_bypass(config.webrtc.receive_queue_bypass);
    if (config.webrtc.ice_agent == "shared") {
      rtgw::webrtc::set_shared_ice_poll(config.webrtc.ice_epoll);
      rtgw::webrtc::set_ice_threads(static_cast<unsigned>(config.webrtc.ice_threads));
      std::string why = rtgw::webrtc::install_shared_ice_agent();
      if (why.empty())
        g_message("ICE agent: shared (one libnice thread for every call, consent freshness on)");
      else
        g_warning("ICE agent: webrtcbin's own, one thread per webrtcbin (%s)", why.c_str());
    }
    // usrsctp stays up from here to exit instead of being torn down whenever the gateway goes
    // idle (webrtc/sctp_stack.h).
    std::optional<rtgw::webrtc::SctpStackHold> sctp_stack(std::in_place);
    if (!sctp_stack->held())
      g_warning("SCTP stack: not held (%s); usrsctp starts and stops with the calls",
                sctp_stack->error().c_str());
    g_message("%s", rtgw::app::describe_malloc_tuning().c_str());
    if (fd_limit.error.empty())
      g_message("%s", fd_limit.describe().c_str());
    else
      g_warning("%s", fd_limit.describe().c_str());
    {
      const auto& l = config.limits;
      g_message(
          "caps: max_calls=%d max_calls_per_key=%d max_setups=%d max_setups_per_key=%d "
          "max_sidebands_per_call=%d max_connections=%d (0 = unlimited; %zu sized from the "
          "open-file limit %llu)",
          l.max_calls, l.max_calls_per_key, l.max_setups, l.max_setups_per_key,
          l.max_sidebands_per_call, l.max_connections, l.sized.size(),
          static_cast<unsigned long long>(l.fd_limit));
    }
    int code;
    {
      rtgw::app::Gateway gateway(std::move(config));
      gateway.set_reload_overrides(overrides);
      code = gateway.run();
    }
    // Pipelines of calls and sessions that just ended are being stopped on the reaper's threads:
    // wait for them (bounded; a hung state change is left behind).
    if (!rtgw::wait_for_pipeline_reaps(std::chrono::milliseconds(kReaperExitWaitMs)))
      g_warning("%d pipeline(s) still stopping after %d ms; exiting without gst_deinit",
                rtgw::pending_pipeline_reaps(), kReaperExitWaitMs);
    else if (g_getenv("GST_TRACERS")) {
      sctp_stack.reset();
      gst_deinit();
    }  // lets GST_TRACERS=leaks report what outlived the gateway
    // The process's exit-time destructors and atexit handlers must not run beside the threads
    // GStreamer and GLib are still winding down (task-pool threads freeing their thread-local
    // data): under load glibc aborted there with "corrupted size vs. prev_size" and, after every
    // pipeline was reaped, "malloc_consolidate(): invalid chunk size" (test_faults'
    // SIGTERM-with-20-calls test, 1 run in 6 with two busy cores). The gateway is already gone
    // (usage log and ledger flushed): flush stdio and leave at once.
    std::fflush(nullptr);
    std::_Exit(code);
  } catch (const rtgw::config::ConfigError& e) {
    std::fprintf(stderr, "realtime-gateway: config error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "realtime-gateway: %s\n", e.what());
    return 1;
  }
}
