#pragma once
/// Identifier generation: time-ordered request ids, random tokens, provider-style ids.

#include <cstdint>
#include <string>
#include <string_view>

#include "prov/core/clock.hpp"

namespace prov {

/// A UUIDv7 (time-ordered, 74 random bits) in canonical 8-4-4-4-12 form.
std::string make_uuid_v7(timestamp now);

/// A random UUIDv4 in canonical form (provider-style resource ids).
std::string make_uuid_v4();

/// `n` random bytes from OpenSSL's CSPRNG, as lowercase hex (2n characters).
std::string random_hex(size_t n);

/// Fills `p` with `n` bytes from OpenSSL's CSPRNG, drawn a block at a time per thread (a
/// `RAND_bytes` call per small draw costs a DRBG round and a lock).
void random_bytes(unsigned char* p, size_t n);

/// Lowercase hex of SHA-256(data).
std::string sha256_hex(std::string_view data);

/// A stable, seedable 64-bit hash (FNV-1a then a splitmix finalizer). Not cryptographic:
/// used where the simulation needs deterministic "random" decisions per idempotency key.
std::uint64_t stable_hash64(std::string_view data, std::uint64_t seed = 0) noexcept;

/// True if `s` is a non-empty id of at most `max` characters from [A-Za-z0-9._:-].
bool is_valid_id(std::string_view s, size_t max = 128) noexcept;

}  // namespace prov
