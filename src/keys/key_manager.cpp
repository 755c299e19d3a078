// SPDX-License-Identifier: MIT
#include "keys/key_manager.h"

#include <glib.h>

#include <stdexcept>

#include "common/main_thread.h"

namespace rtgw::keys {
namespace {
std::int64_t unix_now() { return g_get_real_time() / G_USEC_PER_SEC; }
}  // namespace

KeyManager::KeyManager(Options options)
    : options_(std::move(options)),
      directory_(options_.config_names, options_.default_max_calls),
      store_(std::make_unique<KeyStore>(options_.store)) {}

void KeyManager::start() {
  StoreResult first = store_->load_blocking(0, options_.store.timeout);
  if (first.status == StoreResult::kOk) {
    std::vector<std::string> clashes = directory_.apply(first.rows);
    if (!clashes.empty()) {
      std::string names;
      for (const auto& c : clashes) names += (names.empty() ? "'" : ", '") + c + "'";
      throw std::runtime_error("auth.key_store: virtual key alias(es) " + names +
                               " are also config key names (auth.keys[].name): rename one");
    }
    directory_.set_loaded();
    g_message("key store: %zu virtual key(s) loaded", directory_.size());
  } else {
    g_warning("key store: the first load failed (%s): virtual keys authenticate once it answers",
              first.detail.c_str());
  }
  // Twice per period: a change is seen within cache_seconds (plus one read) without Redis.
  guint period_ms = static_cast<guint>(options_.cache_seconds) * 500;
  poll_ = run_every_ms(period_ms, [this] {
    refresh();
    directory_.check_expiry(unix_now());
    return true;
  });
}

void KeyManager::refresh() {
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  refreshing_ = true;
  store_->load(directory_.max_seq(), [this, alive = lifetime_.watch()](StoreResult r) {
    if (!alive) return;
    refreshing_ = false;
    if (r.status == StoreResult::kOk) {
      directory_.apply(r.rows);
      if (!directory_.loaded()) {
        directory_.set_loaded();
        g_message("key store: %zu virtual key(s) loaded", directory_.size());
      }
    }
    if (refresh_again_) {
      refresh_again_ = false;
      refresh();
    }
  });
}

void KeyManager::on_remote_change(const std::string&) { refresh(); }

KeyStore::Done KeyManager::applying(KeyStore::Done done) {
  return [this, alive = lifetime_.watch(), done = std::move(done)](StoreResult r) {
    if (!alive) return;
    if (r.status == StoreResult::kOk) {
      directory_.apply(r.rows, /*advance_seq=*/false);
      if (publish_)
        for (const auto& row : r.rows) publish_(row.alias);
    }
    done(std::move(r));
  };
}

void KeyManager::generate(VirtualKey row, const std::string& actor, KeyStore::Done done) {
  store_->generate(std::move(row), actor, applying(std::move(done)));
}

void KeyManager::update(RowRef ref, KeyFields fields, const std::string& actor,
                        KeyStore::Done done) {
  store_->update(std::move(ref), std::move(fields), actor, applying(std::move(done)));
}

void KeyManager::remove(std::vector<RowRef> refs, const std::string& actor, KeyStore::Done done) {
  store_->remove(std::move(refs), actor, applying(std::move(done)));
}

void KeyManager::regenerate(RowRef ref, std::string new_hash, const std::string& actor,
                            KeyStore::Done done) {
  store_->regenerate(std::move(ref), std::move(new_hash), actor, applying(std::move(done)));
}

}  // namespace rtgw::keys
