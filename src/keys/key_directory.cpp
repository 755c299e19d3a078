// SPDX-License-Identifier: MIT
#include "keys/key_directory.h"

#include <glib.h>

#include <algorithm>

namespace rtgw::keys {

const char* kind_name(KeyChange::Kind kind) {
  switch (kind) {
    case KeyChange::kCreated:
      return "created";
    case KeyChange::kUpdated:
      return "updated";
    case KeyChange::kRevoked:
      return "revoked";
    case KeyChange::kDeleted:
      return "deleted";
    case KeyChange::kExpired:
      return "expired";
  }
  return "?";
}

KeyDirectory::KeyDirectory(std::set<std::string> config_names, int default_max_calls)
    : config_names_(std::move(config_names)), default_max_calls_(default_max_calls) {}

void KeyDirectory::announce(const std::string& alias, KeyChange::Kind kind) {
  g_message("virtual key '%s' %s", alias.c_str(), kind_name(kind));
  KeyChange change{alias, kind};
  for (const auto& fn : listeners_) fn(change);
}

void KeyDirectory::remove(const std::string& alias) {
  auto it = by_alias_.find(alias);
  if (it == by_alias_.end()) return;
  hash_to_alias_.erase(it->second->key.hash);
  by_alias_.erase(it);
  expiry_announced_.erase(alias);
}

std::vector<std::string> KeyDirectory::apply(const std::vector<VirtualKey>& input,
                                             bool advance_seq) {
  std::vector<VirtualKey> rows = input;
  std::sort(rows.begin(), rows.end(),
            [](const VirtualKey& a, const VirtualKey& b) { return a.seq < b.seq; });
  std::vector<std::string> refused;
  for (const auto& row : rows) {
    if (advance_seq) max_seq_ = std::max(max_seq_, row.seq);
    // The row's previous state: by hash (an update, a delete), else by alias (a regenerate
    // changed the hash).
    std::shared_ptr<const Entry> before;
    if (auto h = hash_to_alias_.find(row.hash); h != hash_to_alias_.end())
      before = by_alias_.at(h->second);
    else if (auto a = by_alias_.find(row.alias); a != by_alias_.end() && !row.deleted_at)
      before = a->second;
    if (before && before->key.seq == row.seq && before->key.hash == row.hash)
      continue;  // seen already (this instance wrote it)
    if (row.deleted_at) {
      if (before && before->key.hash == row.hash) {
        remove(before->key.alias);
        announce(row.alias, KeyChange::kDeleted);
      }
      continue;
    }
    if (config_names_.count(row.alias)) {
      g_warning("virtual key '%s': the alias is a config key's name: the virtual key is ignored",
                row.alias.c_str());
      refused.push_back(row.alias);
      if (before) remove(before->key.alias);
      continue;
    }
    if (before) remove(before->key.alias);
    // Another live row that held this alias (renamed away in a row not yet seen) gives way.
    if (auto a = by_alias_.find(row.alias); a != by_alias_.end()) remove(row.alias);
    auto entry = std::make_shared<Entry>(Entry{row, to_key_config(row, default_max_calls_)});
    by_alias_[row.alias] = entry;
    hash_to_alias_[row.hash] = row.alias;
    if (before && before->key.alias != row.alias)
      announce(before->key.alias, KeyChange::kDeleted);  // renamed: the old name is gone
    if (!before || before->key.alias != row.alias)
      announce(row.alias, row.revoked_at ? KeyChange::kRevoked : KeyChange::kCreated);
    else if (row.revoked_at && !before->key.revoked_at)
      announce(row.alias, KeyChange::kRevoked);
    else if (before->key.hash != row.hash)
      announce(row.alias, KeyChange::kUpdated);  // regenerated: only the old secret stops
    else
      announce(row.alias, KeyChange::kUpdated);
  }
  return refused;
}

void KeyDirectory::check_expiry(std::int64_t now) {
  std::vector<std::string> expired;
  for (const auto& [alias, entry] : by_alias_) {
    const auto& k = entry->key;
    if (!k.expired(now) || k.revoked_at) continue;
    auto it = expiry_announced_.find(alias);
    if (it != expiry_announced_.end() && it->second == *k.expires_at) continue;
    expiry_announced_[alias] = *k.expires_at;
    expired.push_back(alias);
  }
  for (const auto& alias : expired) announce(alias, KeyChange::kExpired);
}

const KeyDirectory::Entry* KeyDirectory::find_hash(const std::string& hash) const {
  auto h = hash_to_alias_.find(hash);
  if (h == hash_to_alias_.end()) return nullptr;
  return find_alias(h->second);
}

const KeyDirectory::Entry* KeyDirectory::find_alias(const std::string& alias) const {
  auto it = by_alias_.find(alias);
  return it == by_alias_.end() ? nullptr : it->second.get();
}

std::vector<const KeyDirectory::Entry*> KeyDirectory::page(int page, int size) const {
  std::vector<const Entry*> out;
  std::size_t skip = static_cast<std::size_t>(page - 1) * static_cast<std::size_t>(size);
  std::size_t i = 0;
  for (const auto& [alias, entry] : by_alias_) {
    if (i++ < skip) continue;
    if (out.size() >= static_cast<std::size_t>(size)) break;
    out.push_back(entry.get());
  }
  return out;
}

}  // namespace rtgw::keys
