#pragma once
/// Which consumer offsets the command consumer may commit. A command is begun when its message
/// is consumed and finished when it has been answered (its events durable and its result
/// delivered). Commands finish out of order; the committed offset of a partition may only move
/// to just after the longest finished prefix, so an unfinished earlier command is never
/// skipped: after a crash or a rebalance it is consumed again. Single-threaded; pure, no I/O.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace prov::kafka {

class offset_tracker {
 public:
  /// The message at `offset` of `partition` was consumed (offsets ascend per partition).
  void begin(std::int32_t partition, std::int64_t offset);

  /// The command at `offset` was answered. Unknown offsets are ignored.
  void finish(std::int32_t partition, std::int64_t offset);

  /// Commands begun and not finished, over all partitions.
  std::size_t unfinished() const noexcept;
  std::size_t unfinished(std::int32_t partition) const noexcept;

  /// The offset to commit for each partition whose commit point moved since the last call
  /// (the next offset to consume: the first unfinished one, or last finished + 1).
  std::map<std::int32_t, std::int64_t> take_commits();

  /// The commit point of `partition` (nullopt if nothing was consumed there).
  std::optional<std::int64_t> commit_point(std::int32_t partition) const;

  /// Forgets a partition (revoked in a rebalance).
  void forget(std::int32_t partition);

 private:
  struct lane {
    std::set<std::int64_t> unfinished;
    std::int64_t next = -1;       ///< one past the highest offset begun
    std::int64_t committed = -1;  ///< last commit point handed out
  };
  static std::int64_t point(const lane& l) noexcept;
  std::map<std::int32_t, lane> _lanes;
};

}  // namespace prov::kafka
