#include "allocation_count.hpp"

#include <cstddef>

#if PROV_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace prov::bench {

#if PROV_JEMALLOC

namespace {

std::optional<std::uint64_t> read_counter(const char* name) {
  std::uint64_t value = 0;
  std::size_t size = sizeof value;
  if (mallctl(name, &value, &size, nullptr, 0) != 0) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<std::uint64_t> allocations_so_far() {
  // The statistics are a snapshot taken at the last "epoch": advance it first.
  std::uint64_t epoch = 1;
  std::size_t size = sizeof epoch;
  if (mallctl("epoch", &epoch, &size, &epoch, size) != 0) {
    return std::nullopt;
  }
  // Arena 4096 is MALLCTL_ARENAS_ALL: the sum over every arena.
  const auto small = read_counter("stats.arenas.4096.small.nrequests");
  const auto large = read_counter("stats.arenas.4096.large.nrequests");
  if (!small || !large) {
    return std::nullopt;
  }
  return *small + *large;
}

#else

std::optional<std::uint64_t> allocations_so_far() { return std::nullopt; }

#endif

}  // namespace prov::bench
