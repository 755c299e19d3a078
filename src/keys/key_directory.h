// SPDX-License-Identifier: MIT
// The in-memory key directory: this instance's mirror of the virtual key table.
//
// Owns: every live (not deleted) virtual key by alias and by hash, each with its KeyConfig (the
// form the rest of the gateway reads); the highest change sequence seen (the next incremental
// refresh reads rows after it); the change callbacks (keys::KeyChange), and which keys' expiry
// was already announced. Authentication reads it synchronously, so a PostgreSQL outage keeps
// serving the last mirror.
//
// Rows come from the key store (keys/key_store.h) in sequence order; apply() merges them and
// announces what changed: created, updated, revoked, deleted. check_expiry() announces each key
// whose expires_at passed, once. A row whose alias is a config key's name is refused (logged,
// kept out of the mirror): config keys win a clash.
//
// Threads: main loop only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "keys/virtual_key.h"

namespace rtgw::keys {

struct KeyChange {
  enum Kind { kCreated, kUpdated, kRevoked, kDeleted, kExpired };
  std::string alias;
  Kind kind;
};
const char* kind_name(KeyChange::Kind kind);

class KeyDirectory {
 public:
  struct Entry {
    VirtualKey key;
    config::KeyConfig config;
  };

  // `config_names`: the config file's key names (a virtual alias may not take one);
  // `default_max_calls`: limits.max_calls_per_key, for keys without their own limit.
  KeyDirectory(std::set<std::string> config_names, int default_max_calls);

  // Merges rows read from the table (any order; each replaces what the mirror has for its hash
  // and alias) and announces the changes. Returns the aliases refused for a clash.
  // `advance_seq` false (rows this instance just wrote): max_seq() stays, so rows other
  // instances committed before them are still read by the next refresh.
  std::vector<std::string> apply(const std::vector<VirtualKey>& rows, bool advance_seq = true);
  // Announces kExpired for keys whose expires_at is now past (once per key and expiry).
  void check_expiry(std::int64_t now);

  const Entry* find_hash(const std::string& hash) const;
  const Entry* find_alias(const std::string& alias) const;
  // Live keys ordered by alias: `size` of them from (page-1)*size.
  std::vector<const Entry*> page(int page, int size) const;
  std::size_t size() const { return by_alias_.size(); }
  std::int64_t max_seq() const { return max_seq_; }
  bool loaded() const { return loaded_; }
  void set_loaded() { loaded_ = true; }
  bool config_name(const std::string& name) const { return config_names_.count(name) > 0; }
  // A reload's config key names (the reload refused an alias clash before: see
  // Gateway::reload): later rows and /key/generate are checked against these.
  void set_config_names(std::set<std::string> names) { config_names_ = std::move(names); }

  using ChangeFn = std::function<void(const KeyChange&)>;
  void on_change(ChangeFn fn) { listeners_.push_back(std::move(fn)); }

 private:
  void announce(const std::string& alias, KeyChange::Kind kind);
  void remove(const std::string& alias);

  std::set<std::string> config_names_;
  int default_max_calls_;
  std::map<std::string, std::shared_ptr<const Entry>> by_alias_;
  std::map<std::string, std::string> hash_to_alias_;
  std::map<std::string, std::int64_t> expiry_announced_;  // alias -> the expires_at announced
  std::int64_t max_seq_ = 0;
  bool loaded_ = false;
  std::vector<ChangeFn> listeners_;
};

}  // namespace rtgw::keys
