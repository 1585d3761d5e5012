#pragma once
/// 8-byte big-endian integers: the journal's and the read models' keys (so byte order is
/// numeric order) and the positions stored in `meta`.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace prov {

inline constexpr std::size_t be64_size = 8;

inline void append_be64(std::string& out, std::uint64_t v) {
  char bytes[be64_size];
  for (std::size_t i = 0; i < be64_size; ++i) {
    bytes[be64_size - 1 - i] = static_cast<char>(v & 0xffU);
    v >>= 8U;
  }
  out.append(bytes, be64_size);
}

inline std::string be64(std::uint64_t v) {
  std::string out;
  append_be64(out, v);
  return out;
}

/// Reads 8 big-endian bytes; the caller checks that there are 8.
inline std::uint64_t read_be64(const char* p) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < be64_size; ++i) {
    v = (v << 8U) | static_cast<std::uint8_t>(p[i]);
  }
  return v;
}

/// The value of the first 8 bytes of `in`; the caller checks that there are 8.
inline std::uint64_t read_be64(std::string_view in) noexcept { return read_be64(in.data()); }

/// The 8-byte value of `s`, or nullopt if it is not exactly 8 bytes long.
inline std::optional<std::uint64_t> decode_be64(std::string_view s) noexcept {
  if (s.size() != be64_size) {
    return std::nullopt;
  }
  return read_be64(s.data());
}

}  // namespace prov
