// SPDX-License-Identifier: MIT
// Fuzz target `config`: configuration text through config::load_from_text (what `--config FILE`
// and --check-config read), with a fixed environment for `env:NAME` secrets and RTGW_*
// overrides; then what start-up does with a loaded config (describe, listen address, models).
// Only ConfigError may be thrown.
#include "config/config.h"
#include "fuzz_util.h"

using namespace rtgw;

namespace {

std::optional<std::string> fake_env(const std::string& name) {
  if (name == "OPENAI_API_KEY") return std::string("sk-fuzz-openai");
  if (name == "RTGW_TEAM_A_KEY") return std::string("sk-team-a");
  if (name == "RTGW_ADMIN_KEY") return std::string("sk-admin");
  if (name == "RTGW_TOKEN_SECRET") return std::string("token-secret");
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(fuzz::as_view(data, size));
  try {
    config::Config c = config::load_from_text(text, "fuzz.json", {}, fake_env);
    (void)config::describe(c);
    (void)c.listen_host();
    (void)c.listen_port();
    (void)c.listens_on_loopback();
    for (const auto& m : c.models) {
      if (c.find_model(m.name) == nullptr) fuzz::fail("a loaded model is not found", m.name);
    }
    for (const auto& k : c.auth.keys)
      for (const auto& pattern : k.models) (void)config::glob_match(pattern, "gpt-realtime-mini");
  } catch (const config::ConfigError&) {
  }
  return 0;
}
