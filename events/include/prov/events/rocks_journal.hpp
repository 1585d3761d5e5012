#pragma once
/// The embedded journal on RocksDB with group commit.
///
/// One writer thread owns every write: `append` only enqueues. The writer takes everything
/// queued (up to `max_batch_events`), checks each append's expected versions in order (an
/// append sees the versions left by the appends before it, in its group and in the groups
/// written before it), assigns dense global positions and writes one `WriteBatch`. Rejected
/// appends (version conflict, invalid input) are answered without touching the others.
///
/// With `sync` (the default) a second thread, the syncer, makes each written group durable
/// (one WAL fsync for the whole group), then publishes it: moves the head, calls the commit
/// listeners and every handler. While it syncs, the writer checks and writes the next group, so
/// a group's CPU work overlaps the previous group's fsync. Readers never see past the head:
/// written events stay invisible until their group is synced. A failed sync fails its appends
/// and every later one (the journal must be reopened: the failed group may or may not be on
/// disk). Without `sync` the writer publishes each group itself.
///
/// On-disk record in the `log` column family (format 1):
///   u8 format(=1) | varint stream length | stream bytes | varint sequence |
///   varint time (microseconds since epoch) | varint type_id | u8 version | payload bytes

#include <cstdint>
#include <memory>
#include <optional>

#include "prov/core/clock.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/rocks_store.hpp"

namespace prov::events {

struct rocks_journal_options {
  bool sync = true;                    ///< fsync each group before answering it (false: survive process crash only)
  std::size_t max_batch_events = 4096; ///< upper bound of events per group commit
};

/// Counters of a RocksDB journal's writer (for tests and metrics). `groups` < `appends` shows
/// that group commit is sharing writes.
struct rocks_journal_stats {
  std::uint64_t groups = 0;   ///< WriteBatches written (successfully or not)
  std::uint64_t appends = 0;  ///< appends committed
  std::uint64_t events = 0;   ///< events committed

  bool operator==(const rocks_journal_stats&) const = default;
};

/// Creates the journal over an open store. `clock` stamps commit times; both must outlive it.
/// Reads the current head from the log on construction.
result<std::unique_ptr<journal>> make_rocks_journal(rocks_store& store, const clock& clk,
                                                    rocks_journal_options options = {});

/// The writer's counters if `j` was made by `make_rocks_journal`, else nullopt.
std::optional<rocks_journal_stats> rocks_journal_stats_of(const journal& j);

}  // namespace prov::events
