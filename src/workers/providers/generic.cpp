// SPDX-License-Identifier: MIT
// `"provider": "generic"`: any OpenAI-compatible Realtime server (a self-hosted model server, a
// test double). It speaks the OpenAI dialect's paths and `Authorization: Bearer` key under its
// own `url`; it is a dialect of its own so that a server's quirks land here, not in openai.cpp.
#include "workers/providers/openai.h"
#include "workers/providers/registry.h"

namespace rtgw::workers::providers {
namespace {

class GenericDialect : public OpenAiDialect {
 public:
  const char* name() const override { return "generic"; }
};

}  // namespace

const Provider& generic() {
  static const GenericDialect dialect;
  return dialect;
}

}  // namespace rtgw::workers::providers
