#include "host_probe.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace prov::bench {

namespace {

// 16 MiB of 32-bit links: half this machine's L3, which the host's other tenants share, so
// the walk slows down as they take the cache. Small beside the engine's own peak RSS.
constexpr std::size_t slots = std::size_t{4} << 20U;
constexpr std::size_t steps = std::size_t{1} << 19U;

/// xorshift64: a fixed sequence, so every run walks the same cycle.
std::uint64_t next(std::uint64_t& s) {
  s ^= s << 13U;
  s ^= s >> 7U;
  s ^= s << 17U;
  return s;
}

}  // namespace

double host_probe_ms() {
  // Sattolo's shuffle: one cycle through every slot, so the walk never settles in a short loop.
  std::vector<std::uint32_t> link(slots);
  for (std::size_t i = 0; i < slots; ++i) {
    link[i] = static_cast<std::uint32_t>(i);
  }
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = slots - 1; i > 0; --i) {
    std::swap(link[i], link[next(seed) % i]);
  }
  const auto start = std::chrono::steady_clock::now();
  std::uint32_t at = 0;
  std::uint64_t mix = 0;
  for (std::size_t i = 0; i < steps; ++i) {
    at = link[at];
    mix = mix * 31 + at;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // The walk's result is used, so the loop cannot be dropped.
  volatile std::uint64_t sink = mix;
  (void)sink;
  return std::chrono::duration<double, std::milli>(elapsed).count();
}

}  // namespace prov::bench
