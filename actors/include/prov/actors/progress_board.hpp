#pragma once
/// Where each live request last made progress, for stuck detection. Request actors
/// note every change they commit; the watchdog scans the board periodically. A shared table
/// instead of a message per append: a request makes six appends, and a message each cost the
/// sender an allocation and a mailbox hand-off and the watchdog a wake-up, for a table entry.
///
/// How long a request has gone without progress is measured on the clock's `elapsed` reading,
/// not the wall clock: a wall clock stepped forward (NTP, an operator, a virtual machine
/// resumed) must not fail every request in flight as stuck. The wall clock is read once, when
/// a change is noted, for the age of its event (a request resumed after a restart carries the
/// time it last moved, from the log).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "prov/core/clock.hpp"
#include "prov/core/string_hash.hpp"
#include "prov/events/request.hpp"

namespace prov::actors {

/// A clock's two readings at one moment.
struct clock_reading {
  timestamp wall{};
  std::chrono::microseconds elapsed{0};

  static clock_reading of(const clock& c) { return {c.now(), c.elapsed()}; }

  /// Wall time `t` on the elapsed reading: where it falls if the wall clock is not set
  /// between `t` and this reading.
  std::chrono::microseconds elapsed_at(timestamp t) const { return elapsed + (t - wall); }
};

class progress_board {
 public:
  /// Request `id` is now in `state`, its last event at `at` (wall time, from the log), noted
  /// at `now`. Only active requests and rollbacks are watched; one that waits for a person
  /// (manual input) is not "stuck".
  void note(std::string_view id, events::lifecycle_state state, timestamp at, bool waits_for_person, clock_reading now);

  /// Calls `stuck(id, state, no_progress)` for each watched request without progress for
  /// longer than `limit` at `now` (the clock's `elapsed` reading) and not reported within the
  /// last `limit`, and marks it reported. `stuck` runs after the board's locks are released.
  void scan(std::chrono::microseconds now, std::chrono::microseconds limit,
            const std::function<void(const std::string&, events::lifecycle_state, std::chrono::microseconds)>& stuck);

  /// How long request `id` has gone without progress at `now` (the clock's `elapsed`
  /// reading); nullopt if it is not watched.
  std::optional<std::chrono::microseconds> idle(std::string_view id, std::chrono::microseconds now) const;

  /// Requests watched now.
  std::size_t size() const;

 private:
  /// Both times on the `elapsed` reading; before its start for a change older than it.
  struct entry {
    events::lifecycle_state state = events::lifecycle_state::queued;
    std::chrono::microseconds last_progress = std::chrono::microseconds::min();
    std::chrono::microseconds reported = std::chrono::microseconds::min();  ///< min: never
  };
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, entry, string_hash, std::equal_to<>> requests;
  };
  static constexpr std::size_t shard_count = 16;

  shard& shard_of(std::string_view id) { return _shards[string_hash{}(id) % shard_count]; }
  const shard& shard_of(std::string_view id) const { return _shards[string_hash{}(id) % shard_count]; }

  std::array<shard, shard_count> _shards;
};

}  // namespace prov::actors
