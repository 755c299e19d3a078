// SPDX-License-Identifier: MIT
#include "http/tls_identity.h"

#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace rtgw::http {

namespace {

// One end of a local stream socket pair as a GIOStream.
Ref<GIOStream> socket_stream(int fd) {
  UniqueError err;
  auto socket = Ref<GSocket>::adopt(g_socket_new_from_fd(fd, ErrorOut(err)));
  if (!socket) {
    close(fd);
    throw std::runtime_error(std::string("socket: ") + (err ? err->message : "failed"));
  }
  g_socket_set_timeout(socket.get(), 5);  // the check never hangs start-up
  return Ref<GIOStream>::adopt(
      G_IO_STREAM(g_socket_connection_factory_create_connection(socket.get())));
}

gboolean accept_any(GTlsConnection*, GTlsCertificate*, GTlsCertificateFlags, gpointer) {
  return TRUE;  // the check is about the key, not about who issued the certificate
}

// A TLS handshake between a server using `certificate` and a client that accepts any
// certificate: it fails when the private key does not match the certificate's public key (the
// client cannot verify the server's signature). GnuTLS loads a mismatched pair without a word.
std::string handshake_error(GTlsCertificate* certificate) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return "socketpair failed";
  Ref<GIOStream> server_side = socket_stream(fds[0]);
  Ref<GIOStream> client_side = socket_stream(fds[1]);
  UniqueError err;
  auto server = Ref<GIOStream>::adopt(
      G_IO_STREAM(g_tls_server_connection_new(server_side.get(), certificate, ErrorOut(err))));
  if (!server) return err ? err->message : "no TLS backend (glib-networking)";
  auto client = Ref<GIOStream>::adopt(
      G_IO_STREAM(g_tls_client_connection_new(client_side.get(), nullptr, ErrorOut(err))));
  if (!client) return err ? err->message : "no TLS backend (glib-networking)";
  g_signal_connect(client.get(), "accept-certificate", G_CALLBACK(accept_any), nullptr);
  std::string client_error;
  std::thread peer([&client, &client_error] {
    UniqueError e;
    if (!g_tls_connection_handshake(G_TLS_CONNECTION(client.get()), nullptr, ErrorOut(e)))
      client_error = e ? e->message : "handshake failed";
    g_io_stream_close(client.get(), nullptr, nullptr);
  });
  UniqueError server_error;
  gboolean ok =
      g_tls_connection_handshake(G_TLS_CONNECTION(server.get()), nullptr, ErrorOut(server_error));
  if (!ok) g_io_stream_close(server.get(), nullptr, nullptr);  // unblocks the client
  peer.join();
  g_io_stream_close(server.get(), nullptr, nullptr);
  if (!client_error.empty()) return client_error;
  if (!ok) return server_error ? server_error->message : "handshake failed";
  return "";
}

}  // namespace

Ref<GTlsCertificate> check_tls_pair(const std::string& cert_file, const std::string& key_file) {
  UniqueError err;
  auto certificate = Ref<GTlsCertificate>::adopt(
      g_tls_certificate_new_from_files(cert_file.c_str(), key_file.c_str(), ErrorOut(err)));
  if (!certificate)
    throw std::runtime_error("tls.cert_file " + cert_file + ", tls.key_file " + key_file + ": " +
                             (err ? err->message : "cannot be loaded"));
  std::string why = handshake_error(certificate.get());
  if (!why.empty())
    throw std::runtime_error("tls.key_file " + key_file + " does not match tls.cert_file " +
                             cert_file + " (a TLS handshake with the pair failed: " + why + ")");
  return certificate;
}

TlsIdentity::TlsIdentity(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)),
      key_file_(std::move(key_file)),
      certificate_(check_tls_pair(cert_file_, key_file_)) {}

std::string TlsIdentity::reload(const std::string& cert_file, const std::string& key_file) {
  try {
    certificate_ = check_tls_pair(cert_file, key_file);
  } catch (const std::exception& e) {
    return e.what();
  }
  cert_file_ = cert_file;
  key_file_ = key_file;
  generation_++;
  return "";
}

std::string TlsIdentity::describe() const {
  UniqueStr subject;
  Ref<GDateTime> not_after;
  {
    gchar* s = nullptr;
    GDateTime* t = nullptr;
    g_object_get(certificate_.get(), "subject-name", &s, "not-valid-after", &t, nullptr);
    subject.reset(s);
    not_after = Ref<GDateTime>::adopt(t);
  }
  std::string text = "subject " + std::string(subject ? subject.get() : "?");
  if (not_after) {
    UniqueStr when(g_date_time_format_iso8601(not_after.get()));
    text += ", valid until " + std::string(when ? when.get() : "?");
  }
  return text + " (" + cert_file_ + ")";
}

}  // namespace rtgw::http
