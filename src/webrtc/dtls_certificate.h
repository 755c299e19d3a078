// SPDX-License-Identifier: MIT
// The DTLS certificate of the process's webrtcbins (issue 28: the ECDSA lever).
//
// GStreamer 1.22's DTLS elements use one RSA-2048 certificate per process, made when the first
// dtlsdec is created. RSA costs the DTLS server a 2048-bit private-key operation per handshake
// (and the client a signature check); ECDSA P-256 does the same job for a fraction of it, and it
// is what browsers use themselves. `webrtc.dtls_certificate: "ecdsa"` gives every dtlssrtpdec the
// certificate made here through its `pem` property (a dtlsdec keeps one agent per PEM, so all
// calls share one SSL context).
//
// webrtcbin 1.22 writes the wrong a=fingerprint for such a certificate: it hashes every base64
// line of the dtlssrtpdec's `pem`, and a `pem` must hold the private key too (GstDtlsCertificate
// reads both from it), so the key's bytes go into the hash. `with_own_fingerprint()` puts the
// certificate's true fingerprint into the local SDP before it leaves the gateway (webrtcbin does
// not use its own fingerprint; peers check theirs against it).
//
// Owns: the process's ECDSA P-256 self-signed certificate and key (made once, on first use,
// valid 30 days from then; a process running longer keeps using it: WebRTC peers check the
// fingerprint, not the dates).
//
// Threads: any. `apply()` runs on the thread that adds the element (a webrtcbin `:pc` thread,
// from the pipeline's `deep-element-added`, before the element leaves NULL).
#pragma once

#include <gst/gst.h>

#include <string>

namespace rtgw::webrtc::dtls_certificate {

enum class Kind { kRsa, kEcdsa };

// "rsa" | "ecdsa" (config::validate checks the value first).
Kind parse(const std::string& name);

// The process's ECDSA P-256 certificate then its private key, PEM. Made once (thread-safe);
// throws std::runtime_error if OpenSSL cannot make it.
const std::string& ecdsa_pem();

// For `deep-element-added`: a dtlssrtpdec gets the ECDSA certificate when `kind` says so; any
// other element, or kRsa, is left alone (GStreamer's own RSA certificate).
void apply(GstElement* added, Kind kind);

// "sha-256 AB:CD:..." of the ECDSA certificate (throws as ecdsa_pem()).
const std::string& ecdsa_fingerprint();

// `sdp` with every a=fingerprint line naming the ECDSA certificate (pure text; kRsa: unchanged).
std::string with_own_fingerprint(std::string sdp, Kind kind);

}  // namespace rtgw::webrtc::dtls_certificate
