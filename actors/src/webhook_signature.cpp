#include "prov/actors/webhook_signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace prov::actors {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // One-shot HMAC; an empty key is a valid (if useless) key, so pass a non-null pointer.
  static const unsigned char empty = 0;
  const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
  const auto* d = data.empty() ? &empty : reinterpret_cast<const unsigned char*>(data.data());
  if (::HMAC(::EVP_sha256(), k, static_cast<int>(key.size()), d, data.size(), mac, &size) == nullptr) {
    return {};
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(digits[mac[i] >> 4]);
    out.push_back(digits[mac[i] & 0x0f]);
  }
  return out;
}

std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  std::string signed_text = std::to_string(unix_seconds);
  signed_text.push_back('.');
  signed_text.append(body);
  return "sha256=" + hmac_sha256_hex(secret, signed_text);
}

}  // namespace prov::actors
