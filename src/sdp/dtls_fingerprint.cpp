// SPDX-License-Identifier: MIT
#include "sdp/dtls_fingerprint.h"

#include <glib.h>

#include <algorithm>
#include <memory>

namespace rtgw::sdp::dtls {
namespace {

constexpr std::string_view kPemBegin = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view kPemEnd = "-----END CERTIFICATE-----";

GChecksumType checksum_type(Hash hash) {
  switch (hash) {
    case Hash::kSha1:
      return G_CHECKSUM_SHA1;
    case Hash::kSha256:
      return G_CHECKSUM_SHA256;
    case Hash::kSha384:
      return G_CHECKSUM_SHA384;
    case Hash::kSha512:
      return G_CHECKSUM_SHA512;
  }
  return G_CHECKSUM_SHA256;
}

// Strength order for "the strongest hash named".
int strength(Hash hash) { return static_cast<int>(hash); }

std::optional<Hash> parse_hash(std::string_view name) {
  struct Known {
    std::string_view name;
    Hash hash;
  };
  static constexpr Known kKnown[] = {{"sha-1", Hash::kSha1},
                                     {"sha-256", Hash::kSha256},
                                     {"sha-384", Hash::kSha384},
                                     {"sha-512", Hash::kSha512}};
  for (const Known& k : kKnown)
    if (name.size() == k.name.size() &&
        g_ascii_strncasecmp(name.data(), k.name.data(), name.size()) == 0)
      return k.hash;
  return std::nullopt;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

struct GFree {
  void operator()(void* p) const { g_free(p); }
};

}  // namespace

const char* hash_name(Hash hash) {
  switch (hash) {
    case Hash::kSha1:
      return "sha-1";
    case Hash::kSha256:
      return "sha-256";
    case Hash::kSha384:
      return "sha-384";
    case Hash::kSha512:
      return "sha-512";
  }
  return "?";
}

std::size_t hash_size(Hash hash) {
  return static_cast<std::size_t>(g_checksum_type_get_length(checksum_type(hash)));
}

std::optional<Fingerprint> parse_fingerprint(std::string_view value) {
  value = trim(value);
  std::size_t space = value.find_first_of(" \t");
  if (space == std::string_view::npos) return std::nullopt;
  auto hash = parse_hash(value.substr(0, space));
  if (!hash) return std::nullopt;
  std::string_view hex = trim(value.substr(space));
  Fingerprint out;
  out.hash = *hash;
  std::size_t want = hash_size(*hash);
  // Exactly want * 3 - 1 characters: "XX" bytes joined by ':'.
  if (hex.size() != want * 3 - 1) return std::nullopt;
  out.digest.reserve(want);
  for (std::size_t i = 0; i < want; ++i) {
    std::size_t at = i * 3;
    if (i > 0 && hex[at - 1] != ':') return std::nullopt;
    int hi = g_ascii_xdigit_value(hex[at]);
    int lo = g_ascii_xdigit_value(hex[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.digest.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::string to_string(const Fingerprint& fingerprint) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = hash_name(fingerprint.hash);
  out += ' ';
  for (std::size_t i = 0; i < fingerprint.digest.size(); ++i) {
    if (i) out += ':';
    out += kHex[fingerprint.digest[i] >> 4];
    out += kHex[fingerprint.digest[i] & 0xf];
  }
  return out;
}

std::vector<Fingerprint> media_fingerprints(const GstSDPMessage* message, guint media_index) {
  std::vector<Fingerprint> out;
  auto collect = [&out](const char* key, const char* value) {
    if (g_strcmp0(key, "fingerprint") != 0 || !value) return false;
    if (auto fp = parse_fingerprint(value)) out.push_back(std::move(*fp));
    return true;
  };
  bool media_level = false;
  if (media_index < gst_sdp_message_medias_len(message)) {
    const GstSDPMedia* media = gst_sdp_message_get_media(message, media_index);
    for (guint i = 0; i < gst_sdp_media_attributes_len(media); ++i) {
      const GstSDPAttribute* a = gst_sdp_media_get_attribute(media, i);
      media_level |= collect(a->key, a->value);
    }
  }
  // Session-level lines apply only to m-lines that name none of their own.
  if (!media_level)
    for (guint i = 0; i < gst_sdp_message_attributes_len(message); ++i) {
      const GstSDPAttribute* a = gst_sdp_message_get_attribute(message, i);
      collect(a->key, a->value);
    }
  return out;
}

std::optional<std::vector<std::uint8_t>> pem_to_der(std::string_view pem) {
  std::size_t begin = pem.find(kPemBegin);
  if (begin == std::string_view::npos) return std::nullopt;
  begin += kPemBegin.size();
  std::size_t end = pem.find(kPemEnd, begin);
  if (end == std::string_view::npos) return std::nullopt;
  // Strict base64: whitespace between lines is allowed, any other stray character is not
  // (g_base64_decode itself skips what it does not know).
  std::string b64;
  b64.reserve(end - begin);
  bool padding = false;
  for (char c : pem.substr(begin, end - begin)) {
    if (is_space(c)) continue;
    bool alnum = g_ascii_isalnum(c) || c == '+' || c == '/';
    if (c == '=')
      padding = true;
    else if (!alnum || padding)
      return std::nullopt;
    b64 += c;
  }
  if (b64.empty() || b64.size() % 4 != 0) return std::nullopt;
  std::size_t pad = b64.size() - b64.find_last_not_of('=') - 1;
  if (pad > 2) return std::nullopt;
  gsize len = 0;
  std::unique_ptr<guchar, GFree> raw(g_base64_decode(b64.c_str(), &len));
  if (!raw || len == 0) return std::nullopt;
  return std::vector<std::uint8_t>(raw.get(), raw.get() + len);
}

std::vector<std::uint8_t> digest_of(Hash hash, const std::vector<std::uint8_t>& der) {
  GChecksumType type = checksum_type(hash);
  std::unique_ptr<GChecksum, decltype(&g_checksum_free)> sum(g_checksum_new(type),
                                                             &g_checksum_free);
  g_checksum_update(sum.get(), der.data(), static_cast<gssize>(der.size()));
  std::vector<std::uint8_t> out(static_cast<std::size_t>(g_checksum_type_get_length(type)));
  gsize len = out.size();
  g_checksum_get_digest(sum.get(), out.data(), &len);
  out.resize(len);
  return out;
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMatch:
      return "match";
    case Verdict::kMismatch:
      return "mismatch";
    case Verdict::kNoFingerprint:
      return "no usable fingerprint";
    case Verdict::kBadCertificate:
      return "no readable certificate";
  }
  return "?";
}

Verdict verify_certificate(const std::vector<Fingerprint>& expected, std::string_view pem,
                           std::string* actual) {
  if (expected.empty()) return Verdict::kNoFingerprint;
  Hash strongest = expected.front().hash;
  for (const Fingerprint& fp : expected)
    if (strength(fp.hash) > strength(strongest)) strongest = fp.hash;
  auto der = pem_to_der(pem);
  if (!der) return Verdict::kBadCertificate;
  Fingerprint have{strongest, digest_of(strongest, *der)};
  if (actual) *actual = to_string(have);
  bool match = std::any_of(expected.begin(), expected.end(),
                           [&have](const Fingerprint& fp) { return fp == have; });
  return match ? Verdict::kMatch : Verdict::kMismatch;
}

}  // namespace rtgw::sdp::dtls
