// SPDX-License-Identifier: MIT
// The listener's TLS certificate and key (tls.cert_file, tls.key_file): loading, checking that
// the key belongs to the certificate, and replacing the pair on reload.
//
// Owns: the pair in use. A reload that fails (a file missing or unreadable, a key that is not the
// certificate's) keeps the pair in use and says why; connections already open keep the pair they
// were accepted with (each GTlsServerConnection holds its own reference), so a reload never drops
// a live call or session.
//
// Threads: main loop. check_tls_pair() also runs from --check-config, before any loop.
#pragma once

#include <gio/gio.h>

#include <string>

#include "common/ref.h"

namespace rtgw::http {

// Loads the pair (PEM; the certificate file may hold the chain after the leaf) and proves that the
// key is the certificate's with a TLS handshake over a local socket pair. Throws
// std::runtime_error naming the file and the reason.
Ref<GTlsCertificate> check_tls_pair(const std::string& cert_file, const std::string& key_file);

class TlsIdentity {
 public:
  // Loads and checks the pair; throws std::runtime_error.
  TlsIdentity(std::string cert_file, std::string key_file);

  GTlsCertificate* certificate() const { return certificate_.get(); }
  // Re-reads `cert_file` and `key_file` (they may name new files). Returns "" when the new pair
  // is in use, else why the old one stays.
  std::string reload(const std::string& cert_file, const std::string& key_file);
  // A short description of the pair in use: subject and expiry of the leaf.
  std::string describe() const;
  int generation() const { return generation_; }

 private:
  std::string cert_file_;
  std::string key_file_;
  Ref<GTlsCertificate> certificate_;
  int generation_ = 1;
};

}  // namespace rtgw::http
