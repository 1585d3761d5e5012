#pragma once
/// How many heap allocations this process has made, for the "no per-event allocations on the
/// hot path" bar: unlike time, a count does not move with the neighbours' load. Read from
/// jemalloc's statistics (the executables link it when installed); nothing without it.

#include <cstdint>
#include <optional>

namespace prov::bench {

/// Allocation requests (small and large, every thread) so far; nullopt under another malloc.
/// jemalloc merges a thread cache's counts when the cache is flushed, so a reading lags by up
/// to a few hundred allocations per thread: nothing next to a run's millions.
std::optional<std::uint64_t> allocations_so_far();

}  // namespace prov::bench
