// SPDX-License-Identifier: MIT
// The one lookup of a key by name, config-file keys and virtual keys alike.
//
// Owns: nothing but two handles: the config whose `auth.keys` it reads (the one place key
// lookups by name read config keys: the current snapshot, so a reload applies at once) and the
// virtual key directory (keys/key_directory.h; null without a key store). Code that needs a
// key's limits or budgets by its name (accounting, budgets) asks find(): config keys first,
// then virtual keys (an alias never equals a config key's name: the key store refuses that).
//
// Threads: main loop. A pointer find() returned is valid until the main loop next runs a key
// store refresh or write: use it at once, do not keep it.
#pragma once

#include <string>

#include "config/config.h"
#include "config/snapshots.h"

namespace rtgw::keys {
class KeyDirectory;
}

namespace rtgw::auth {

class KeyBook {
 public:
  explicit KeyBook(config::ConfigView config) : config_(std::move(config)) {}
  void set_directory(const keys::KeyDirectory* directory) { directory_ = directory; }

  const config::KeyConfig* find(const std::string& name) const;

 private:
  config::ConfigView config_;
  const keys::KeyDirectory* directory_ = nullptr;
};

}  // namespace rtgw::auth
