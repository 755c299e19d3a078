// SPDX-License-Identifier: MIT
#include "workers/providers/registry.h"

#include <stdexcept>

namespace rtgw::workers::providers {

const std::vector<const Provider*>& all() {
  // The one list of dialects: a new upstream kind adds its accessor here.
  static const std::vector<const Provider*> dialects = {&openai(), &azure(), &generic(), &echo()};
  return dialects;
}

const Provider* find(const std::string& name) {
  for (const Provider* p : all())
    if (name == p->name()) return p;
  return nullptr;
}

const Provider& get(const std::string& name) {
  if (const Provider* p = find(name)) return *p;
  throw std::invalid_argument("no upstream provider named \"" + name + "\"");
}

}  // namespace rtgw::workers::providers

// config/worker_dialect.h: the config reader's view of the same list.
namespace rtgw::config {

const WorkerDialect* find_worker_dialect(const std::string& provider) {
  return workers::providers::find(provider);
}

std::string worker_dialect_names() {
  std::string names;
  for (const auto* p : workers::providers::all())
    names += (names.empty() ? "" : ", ") + std::string(p->name());
  return names;
}

}  // namespace rtgw::config
