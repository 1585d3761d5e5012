#pragma once
/// The embedded RocksDB database behind the journal and the projections: one DB in
/// `<data-dir>/db`, one column family per concern. Owned once per process and shared by
/// reference; RocksDB itself is thread-safe.
///
/// Column families (names are persisted, never rename):
/// - `log`         global log: key = position (8-byte big-endian), value = event record
/// - `streams`     stream index, one entry per append to a stream: key = stream id, 0x00, first
///                 sequence (8-byte BE); value = first position (8-byte BE), then the event
///                 count (8-byte BE) if more than one
/// - `projections` read models, owned by prov::projections (key prefixes documented there)
/// - `meta`        small settings, e.g. `format` = on-disk format version

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/error.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
class SliceTransform;
}  // namespace rocksdb

namespace prov::events {

struct rocks_store_options {
  std::string path;               ///< directory of the database (created if missing)
  std::size_t block_cache_mb = 64;
  std::size_t write_buffer_mb = 64;
  /// Run RocksDB's flush and compaction threads at the lowest CPU priority (nice 19), so that
  /// a memtable flush (about 100 ms of one core per 64 MB) takes idle CPU instead of the
  /// pipeline's: at a load near capacity, a flush at normal priority halves the engine's CPU
  /// for its duration and the queue it leaves shows in the p99 (docs/PERFORMANCE.md). A flush
  /// that gets no CPU at all eventually stalls writes, which frees the CPU it needs.
  /// RocksDB's thread pools belong to the process: this lowers them for every database in it
  /// (the simulated cloud's too), and a later `false` does not raise them again.
  bool background_low_priority = true;
  /// The environment RocksDB reads and writes through; null for the default. Tests put a
  /// fault-injecting file system here. It must outlive the store.
  rocksdb::Env* env = nullptr;
  /// Where the `projections` family's memtable keeps an insert hint: the prefix whose last
  /// insert the next one with the same prefix starts from (the projections own that key
  /// layout: `projections::insert_hint()`). Null: one hint per 4-byte prefix.
  std::shared_ptr<const rocksdb::SliceTransform> projections_insert_hint{};
};

class rocks_store {
 public:
  /// Opens (creating if needed) the database and all column families.
  static result<std::unique_ptr<rocks_store>> open(const rocks_store_options& options);

  ~rocks_store();
  rocks_store(const rocks_store&) = delete;
  rocks_store& operator=(const rocks_store&) = delete;

  rocksdb::DB* db() const noexcept { return _db; }
  rocksdb::ColumnFamilyHandle* log_cf() const noexcept { return _log; }
  rocksdb::ColumnFamilyHandle* streams_cf() const noexcept { return _streams; }
  rocksdb::ColumnFamilyHandle* projections_cf() const noexcept { return _projections; }
  rocksdb::ColumnFamilyHandle* meta_cf() const noexcept { return _meta; }

  /// Syncs the WAL and flushes memtables (used on shutdown). Refused once the WAL failed.
  status flush();

  /// Writes one key of the `meta` family through the WAL (positions the edges keep). Refused
  /// (`unavailable`) once the WAL failed.
  status put_meta(std::string_view key, std::string_view value);

  /// The journal's write-ahead log failed a write or a sync: what RocksDB wrote after that
  /// could not be trusted to survive, and Debian's RocksDB 7.8 aborts on a later write to a
  /// log file that failed one. Nothing is written through the WAL any more until the store
  /// is reopened: the journal refuses its appends, `put_meta`, `flush` and `checkpoint`
  /// refuse too.
  void mark_wal_failed() noexcept { _wal_failed.store(true, std::memory_order_release); }
  bool wal_failed() const noexcept { return _wal_failed.load(std::memory_order_acquire); }

  /// Writes a consistent copy of the whole store to `dir` (which must not exist) while it is in
  /// use: RocksDB's checkpoint, hard links where the filesystem allows, else copies. Opened, it
  /// is the store as a crash at that moment would have left it.
  status checkpoint(const std::string& dir);

 private:
  rocks_store() = default;
  rocksdb::DB* _db = nullptr;
  rocksdb::ColumnFamilyHandle* _default = nullptr;
  rocksdb::ColumnFamilyHandle* _log = nullptr;
  rocksdb::ColumnFamilyHandle* _streams = nullptr;
  rocksdb::ColumnFamilyHandle* _projections = nullptr;
  rocksdb::ColumnFamilyHandle* _meta = nullptr;
  std::atomic<bool> _wal_failed{false};
};

}  // namespace prov::events
