#pragma once
/// Which journal positions the outbox may record as published. Each position read from the
/// journal is added with the number of Kafka messages it became (0 for events that publish
/// nothing); each successful delivery report acknowledges one message of its position. The
/// stored outbox position may only move to `done_through()`: the highest position such that
/// every message at or below it has been acknowledged — so a crash republishes only the tail
/// that was not yet acknowledged. Single-threaded (the publisher's thread); pure, no I/O.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace prov::kafka {

class position_tracker {
 public:
  /// Starts with every position up to `done_through` already published.
  explicit position_tracker(std::uint64_t done_through = 0) noexcept : _last_added(done_through) {}

  /// Records that `position` (greater than every position added before) became `messages`
  /// messages now waiting for delivery reports.
  void add(std::uint64_t position, std::size_t messages);

  /// One message of `position` was delivered. Unknown positions (after a `reset`) are ignored.
  void ack(std::uint64_t position) noexcept;

  /// Every position <= this one is fully delivered.
  std::uint64_t done_through() const noexcept;

  /// The last position added (the next to add is greater).
  std::uint64_t last_added() const noexcept { return _last_added; }

  /// Messages produced and not yet acknowledged.
  std::size_t in_flight() const noexcept { return _in_flight; }

  /// Forgets everything unacknowledged: positions after `done_through` will be added again.
  void reset(std::uint64_t done_through) noexcept;

 private:
  std::deque<std::pair<std::uint64_t, std::size_t>> _pending;  ///< (position, unacknowledged), ascending
  std::uint64_t _last_added = 0;
  std::size_t _in_flight = 0;
};

}  // namespace prov::kafka
