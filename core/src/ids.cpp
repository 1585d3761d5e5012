#include "prov/core/ids.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <pthread.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace prov {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void rand_bytes(unsigned char* p, size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
}

/// Bumped in a forked child: a buffer filled before the fork is then never served again,
/// so parent and child cannot hand out the same bytes.
std::atomic<std::uint64_t> fork_generation{0};

/// CSPRNG bytes drawn from OpenSSL a block at a time, per thread. Every `RAND_bytes` call
/// costs a DRBG round with a cipher set-up and a lock: with one call per id, the pipeline
/// bench spent 7 % more CPU per request. A block serves dozens of ids. Bytes are handed out
/// once and wiped from the buffer as they go.
class random_pool {
 public:
  void fill(unsigned char* p, size_t n) {
    if (n > sizeof(_block) / 2) {
      rand_bytes(p, n);  // large draws bypass the pool
      return;
    }
    if (_generation != fork_generation.load(std::memory_order_relaxed) || _left < n) {
      refill();
    }
    unsigned char* from = _block + (sizeof(_block) - _left);
    std::memcpy(p, from, n);
    OPENSSL_cleanse(from, n);
    _left -= n;
  }

  ~random_pool() { OPENSSL_cleanse(_block, sizeof(_block)); }

 private:
  void refill() {
    static std::once_flag registered;
    std::call_once(registered, [] {
      pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
    });
    _generation = fork_generation.load(std::memory_order_relaxed);
    rand_bytes(_block, sizeof(_block));
    _left = sizeof(_block);
  }

  unsigned char _block[512];
  size_t _left = 0;
  std::uint64_t _generation = 0;
};

void fill_random(unsigned char* p, size_t n) {
  thread_local random_pool pool;
  pool.fill(p, n);
}

std::string to_hex(const unsigned char* p, size_t n) {
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = hex_digits[p[i] >> 4];
    out[2 * i + 1] = hex_digits[p[i] & 0xf];
  }
  return out;
}

/// 8-4-4-4-12 hex digits, written in place (one allocation per id: ids are made on every
/// submission and provider call).
std::string format_uuid(const std::array<unsigned char, 16>& b) {
  std::string out(36, '-');
  std::size_t at = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      ++at;  // the dash already there
    }
    out[at++] = hex_digits[b[i] >> 4];
    out[at++] = hex_digits[b[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string make_uuid_v7(timestamp now) {
  std::array<unsigned char, 16> b{};
  fill_random(b.data(), b.size());
  const auto ms = static_cast<std::uint64_t>(now.time_since_epoch().count() / 1000);
  for (int i = 0; i < 6; ++i) {
    b[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x70);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return format_uuid(b);
}

std::string make_uuid_v4() {
  std::array<unsigned char, 16> b{};
  fill_random(b.data(), b.size());
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return format_uuid(b);
}

void random_bytes(unsigned char* p, size_t n) { fill_random(p, n); }

std::string random_hex(size_t n) {
  std::string bytes(n, '\0');
  fill_random(reinterpret_cast<unsigned char*>(bytes.data()), n);
  return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()), n);
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("EVP_Digest failed");
  }
  return to_hex(md, len);
}

std::uint64_t stable_hash64(std::string_view data, std::uint64_t seed) noexcept {
  std::uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

bool is_valid_id(std::string_view s, size_t max) noexcept {
  if (s.empty() || s.size() > max) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace prov
