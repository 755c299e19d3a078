// SPDX-License-Identifier: MIT
#include "auth/key_book.h"

#include "keys/key_directory.h"

namespace rtgw::auth {

const config::KeyConfig* KeyBook::find(const std::string& name) const {
  for (const auto& key : config_.current().auth.keys)
    if (key.name == name) return &key;
  if (directory_)
    if (const auto* entry = directory_->find_alias(name)) return &entry->config;
  return nullptr;
}

}  // namespace rtgw::auth
