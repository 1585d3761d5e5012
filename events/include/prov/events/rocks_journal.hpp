#pragma once
/// The embedded journal on RocksDB with group commit.
///
/// One writer thread owns every write: `append` only enqueues. The writer takes everything
/// queued (up to `max_batch_events`), checks each append's expected versions in order (an
/// append sees the versions left by the appends before it, in its group and in the groups
/// written before it), assigns dense global positions and writes one `WriteBatch`. Rejected
/// appends (version conflict, invalid input) are answered without touching the others.
///
/// With `sync` (the default) a second thread, the syncer, makes the written groups durable
/// (one WAL fsync for all the groups written since the last one), then publishes them: moves
/// the head, calls the commit listeners and every handler. The writer does not wait for it:
/// between syncs it writes at once, and before each sync the syncer waits until everything
/// accepted so far is written, so an append queued during a sync rides the next one. During a
/// sync the writer writes early only once `early_write_events` events wait, so a busy journal
/// is not written one append at a time and a group's CPU work overlaps the fsync. Readers
/// never see past the head: written events stay invisible until they are synced. A failed sync
/// fails its appends and every later one (the journal must be reopened: the failed groups may
/// or may not be on disk). Without `sync` the writer publishes each group itself.
///
/// On-disk: in the `log` column family, one record per run of consecutive appends of a group
/// (up to `max_record_bytes`), keyed by its first position. The stream index is written at
/// checkpoints (`index_checkpoint_interval`): one entry per stream appended to since the last
/// one, with all its runs, and the position it indexes up to; until then the runs are kept in
/// memory, where reads find them, and on open they are read back from the log after that
/// position (format 4: `detail/journal_codec.hpp`).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "prov/core/clock.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/rocks_store.hpp"

namespace prov::events {

struct rocks_journal_options {
  bool sync = true;                    ///< fsync each group before answering it (false: survive process crash only)
  std::size_t max_batch_events = 4096; ///< upper bound of events per group commit
  /// With sync: while a sync runs, the writer writes the queued appends as soon as this many
  /// events wait (they then ride the next sync without a write after this one ends); fewer
  /// wait for the sync to end. Smaller: more, smaller writes; larger: more left to write
  /// between two syncs.
  std::size_t early_write_events = 32;
  /// A group's appends share one log record until it holds this many bytes of events; the
  /// append that reaches it ends the record, and the next one starts another. Larger: fewer
  /// log entries to write and read; a stream read steps over more of others' events.
  std::size_t max_record_bytes = 16 * 1024;
  /// The stream index is written with the first group this long after the last checkpoint
  /// (0: with every group), in one entry per stream for all its appends since: a request's
  /// six appends mostly share one. Longer: fewer entries, more of the log to read on open.
  std::chrono::milliseconds index_checkpoint_interval{200};
  /// ... or as soon as this many streams wait for one.
  std::size_t index_checkpoint_streams = std::size_t{1} << 16U;
  /// A clean stop writes a last checkpoint, so the next open reads nothing back from the log.
  /// Off only in tests that stop a journal as a crash would leave it.
  bool checkpoint_on_stop = true;
  /// Called once, on the writer's or the syncer's thread, when a WAL write or sync first
  /// fails (the journal has then failed: every later append is refused until it is
  /// reopened), with the cause. Must not block nor append.
  std::function<void(const error&)> on_failure;
};

/// Counters of a RocksDB journal's writer, and whether it failed (for tests, metrics and the
/// readiness check). `groups` < `appends` shows that group commit is sharing writes.
struct rocks_journal_stats {
  std::uint64_t groups = 0;   ///< WriteBatches written (successfully or not)
  std::uint64_t appends = 0;  ///< appends committed
  std::uint64_t events = 0;   ///< events committed
  std::uint64_t syncs = 0;    ///< WAL syncs (with sync on; each covers every group written before it)
  std::uint64_t index_checkpoints = 0;  ///< groups that wrote the stream index
  bool failed = false;  ///< a WAL write or sync failed: every later append fails until the journal is reopened

  bool operator==(const rocks_journal_stats&) const = default;
};

/// Creates the journal over an open store. `clock` stamps commit times; both must outlive it.
/// Reads the current head from the log on construction.
result<std::unique_ptr<journal>> make_rocks_journal(rocks_store& store, const clock& clk,
                                                    rocks_journal_options options = {});

/// The position of the last event in the log of the store in `db_dir` (0 if empty), opened
/// read-only for the call: a backup's copy, read back to say exactly what it holds (and that
/// it opens). Errors if it does not open or its last record does not decode.
result<std::uint64_t> read_log_head(const std::string& db_dir);

/// The writer's counters if `j` was made by `make_rocks_journal`, else nullopt.
std::optional<rocks_journal_stats> rocks_journal_stats_of(const journal& j);

}  // namespace prov::events
