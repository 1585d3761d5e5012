#include "prov/core/secret_box.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include "prov/core/ids.hpp"

namespace prov {

namespace {

constexpr std::size_t key_size = 32;
constexpr std::size_t nonce_size = 12;
constexpr std::size_t tag_size = 16;
constexpr std::string_view prefix = "v1:";

struct ctx_deleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, ctx_deleter>;

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

std::atomic<std::uint64_t> next_serial{1};

/// A thread's cipher, set up with the key of the box it last sealed with.
struct sealing_cipher {
  std::uint64_t serial = 0;  ///< the box's key it holds (0: none)
  cipher_ctx ctx;
};

result<std::string> from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) {
    return make_error(errc::invalid_argument, "odd number of hex digits");
  }
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(errc::invalid_argument, "not a hex digit");
    }
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(data), static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return make_error(errc::corrupt, "base64 length is not a multiple of 4");
  }
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(text), static_cast<int>(text.size()));
  if (n < 0) {
    return make_error(errc::corrupt, "malformed base64");
  }
  std::size_t len = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=') {
    --len;
    if (text.size() >= 2 && text[text.size() - 2] == '=') {
      --len;
    }
  }
  out.resize(len);
  return out;
}

result<secret_box> secret_box::from_key(std::string_view key32) {
  if (key32.size() != key_size) {
    return make_error(errc::invalid_argument, "secret key must be 32 bytes");
  }
  return secret_box{std::string{key32}};
}

result<secret_box> secret_box::open_or_create(const std::string& path, const char* env_var) {
  if (const char* env = env_var != nullptr ? std::getenv(env_var) : nullptr; env != nullptr && *env != '\0') {
    auto key = from_hex(env);
    if (!key || key->size() != key_size) {
      return make_error(errc::invalid_argument, std::string{env_var} + " must be 64 hex characters (a 32-byte key)");
    }
    return from_key(*key);
  }
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in{path, std::ios::binary};
    std::string key{std::istreambuf_iterator<char>{in}, {}};
    if (key.size() != key_size) {
      return make_error(errc::corrupt, "secret key file " + path + " must hold exactly 32 bytes");
    }
    return from_key(key);
  }
  std::string key(key_size, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
    return make_error(errc::internal, "RAND_bytes failed");
  }
  const auto old_mask = ::umask(077);
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(key.data(), static_cast<std::streamsize>(key.size()));
    out.flush();
    if (!out) {
      ::umask(old_mask);
      return make_error(errc::io_error, "cannot write secret key file " + path);
    }
  }
  ::umask(old_mask);
  return from_key(key);
}

secret_box::secret_box(std::string key) : _key(std::move(key)), _serial(next_serial.fetch_add(1)) {}

std::string secret_box::seal(std::string_view plaintext) const {
  std::string blob(nonce_size + plaintext.size() + tag_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(blob.data());
  random_bytes(out, nonce_size);
  thread_local sealing_cipher cipher;
  if (cipher.serial != _serial) {
    cipher.serial = 0;
    cipher.ctx.reset(EVP_CIPHER_CTX_new());
    if (!cipher.ctx || EVP_EncryptInit_ex(cipher.ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(_key), nullptr) != 1) {
      throw std::runtime_error("AES-256-GCM set-up failed");
    }
    cipher.serial = _serial;
  }
  auto* ctx = cipher.ctx.get();
  int len = 0;
  // A new nonce on the kept key schedule.
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, out) != 1 ||
      EVP_EncryptUpdate(ctx, out + nonce_size, &len, bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, out + nonce_size + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, tag_size, out + nonce_size + plaintext.size()) != 1) {
    cipher.serial = 0;  // set up afresh next time
    throw std::runtime_error("AES-256-GCM encryption failed");
  }
  return std::string{prefix} + base64_encode(blob);
}

result<std::string> secret_box::open(std::string_view sealed) const {
  if (!looks_sealed(sealed)) {
    return make_error(errc::corrupt, "not a sealed value");
  }
  auto blob = base64_decode(sealed.substr(prefix.size()));
  if (!blob || blob->size() < nonce_size + tag_size) {
    return make_error(errc::corrupt, "sealed value is malformed");
  }
  const auto* in = bytes(*blob);
  const auto text_size = blob->size() - nonce_size - tag_size;
  std::string plain(text_size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  cipher_ctx ctx{EVP_CIPHER_CTX_new()};
  int len = 0;
  std::string tag = blob->substr(nonce_size + text_size);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(_key), in) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len, in + nonce_size, static_cast<int>(text_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out + len, &len) != 1) {
    return make_error(errc::corrupt, "sealed value does not open with this key (tampered or another key)");
  }
  return plain;
}

bool secret_box::looks_sealed(std::string_view value) noexcept { return value.substr(0, prefix.size()) == prefix; }

}  // namespace prov
