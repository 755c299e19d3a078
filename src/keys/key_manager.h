// SPDX-License-Identifier: MIT
// Virtual keys on this instance: the key store and its mirror kept in step.
//
// Owns: the KeyStore (PostgreSQL, its own thread) and the KeyDirectory (the mirror that
// authentication reads); the start-up load (every key, waited for; a virtual alias that is a
// config key's name is a start-up error); the refresh (rows after the mirror's highest sequence)
// twice per `auth.key_cache_seconds`, so a change made elsewhere is seen within that period
// without Redis; the expiry check on the same timer; and the admin writes: each goes to the
// store, its rows go into the mirror at once and the change is published (cluster mode: the
// publish hook, `Cluster::publish_key_change`), so other instances refresh without waiting for
// their poll.
//
// Threads: main loop (the constructor and start() on the main thread before it runs).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "common/ref.h"
#include "keys/key_directory.h"
#include "keys/key_store.h"

namespace rtgw::keys {

class KeyManager {
 public:
  struct Options {
    KeyStore::Options store;
    int cache_seconds = 1;
    std::set<std::string> config_names;
    int default_max_calls = 0;
  };
  explicit KeyManager(Options options);

  // Loads every key (waits up to the store's timeout) and starts the refresh timer. Throws
  // std::runtime_error when a virtual key's alias is a config key's name. A database that does
  // not answer is logged: the mirror fills when it does.
  void start();

  KeyDirectory& directory() { return directory_; }
  const KeyDirectory& directory() const { return directory_; }
  bool store_up() const { return store_->up(); }

  // Admin writes (keys/key_store.h). On kOk the rows are in the mirror and published before
  // `done` runs.
  void generate(VirtualKey row, const std::string& actor, KeyStore::Done done);
  void update(RowRef ref, KeyFields fields, const std::string& actor, KeyStore::Done done);
  void remove(std::vector<RowRef> refs, const std::string& actor, KeyStore::Done done);
  void regenerate(RowRef ref, std::string new_hash, const std::string& actor, KeyStore::Done done);

  // Cluster mode: announces a change to other instances (set by the composition root; unset:
  // other instances see it at their next refresh).
  void set_publish(std::function<void(const std::string& alias)> publish) {
    publish_ = std::move(publish);
  }
  // Another instance changed `alias`: refresh now.
  void on_remote_change(const std::string& alias);
  // Reads the rows changed since the mirror's sequence (one read at a time; one more is queued
  // when asked meanwhile).
  void refresh();

 private:
  KeyStore::Done applying(KeyStore::Done done);

  Options options_;
  KeyDirectory directory_;
  std::unique_ptr<KeyStore> store_;
  SourceGuard poll_;
  bool refreshing_ = false;
  bool refresh_again_ = false;
  std::function<void(const std::string&)> publish_;
  Lifetime lifetime_;
};

}  // namespace rtgw::keys
