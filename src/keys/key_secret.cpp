// SPDX-License-Identifier: MIT
#include "keys/key_secret.h"

#include <glib.h>

#include "common/base64url.h"
#include "common/random.h"
#include "common/ref.h"

namespace rtgw::keys {

std::string generate_key() { return kKeyPrefix + base64url(random_bytes(32)); }

std::string hash_key(const std::string& key) {
  UniqueStr hex(g_compute_checksum_for_data(
      G_CHECKSUM_SHA256, reinterpret_cast<const guchar*>(key.data()), key.size()));
  return hex.get();
}

}  // namespace rtgw::keys
