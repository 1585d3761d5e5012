#pragma once
/// Secrets at rest: AES-256-GCM with a 32-byte key from a file or the environment. Sealed
/// values are `"v1:" + base64(nonce(12) | ciphertext | tag(16))`; opening checks the tag, so a
/// tampered or foreign value is refused, never returned garbled. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/error.hpp"

namespace prov {

class secret_box {
 public:
  /// A box with the given 32-byte key.
  static result<secret_box> from_key(std::string_view key32);

  /// The key from `env_var` (64 hex characters) if set; else from `path` (32 raw bytes),
  /// created with a fresh random key (mode 0600) if it does not exist.
  static result<secret_box> open_or_create(const std::string& path, const char* env_var = "PROVISIOND_SECRET_KEY");

  /// Encrypts with a fresh random nonce (from the calling thread's CSPRNG block). Each thread
  /// keeps the cipher set up for the last box it sealed with, so the AES key schedule is not
  /// redone per value.
  std::string seal(std::string_view plaintext) const;

  /// Decrypts a value made by `seal` with the same key (`errc::corrupt` otherwise).
  result<std::string> open(std::string_view sealed) const;

  /// True if `value` has the sealed form (says nothing about the key).
  static bool looks_sealed(std::string_view value) noexcept;

 private:
  explicit secret_box(std::string key);
  std::string _key;
  std::uint64_t _serial;  ///< unique per key ever loaded: names the key in per-thread caches
};

/// Standard base64 with padding.
std::string base64_encode(std::string_view data);
result<std::string> base64_decode(std::string_view text);

}  // namespace prov
