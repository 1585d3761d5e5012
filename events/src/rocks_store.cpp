#include "prov/events/rocks_store.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>

#include "detail/journal_codec.hpp"
#include "detail/rocks_status.hpp"

namespace prov::events {

namespace {

/// The on-disk format this build writes (meta key `format`, `detail/journal_codec.hpp`).
/// Format 2 lets one stream index entry stand for a run of events; format 3 writes a log
/// record of runs (one per append at first, now one per group commit's appends up to a size)
/// instead of one per event; format 4 writes the stream index at checkpoints, an entry per
/// stream for several runs. This build also reads formats 1 to 3 (their records and entries
/// are read as they are; their index holds every event), and marks such a store as format 4
/// when it opens it (older builds then refuse it rather than misread the new entries).
constexpr std::string_view format_key = "format";
constexpr std::string_view format_version = "4";
constexpr std::array<std::string_view, 3> formats_upgradable{"1", "2", "3"};

bool upgradable(std::string_view format) {
  return std::find(formats_upgradable.begin(), formats_upgradable.end(), format) != formats_upgradable.end();
}

constexpr std::string_view log_cf_name = detail::log_family_name;
constexpr std::string_view streams_cf_name = "streams";
constexpr std::string_view projections_cf_name = "projections";
constexpr std::string_view meta_cf_name = "meta";

constexpr std::size_t mib = 1024 * 1024;

bool lz4_supported() {
  const auto supported = rocksdb::GetSupportedCompressions();
  return std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end();
}

rocksdb::DBOptions make_db_options(const rocks_store_options& options) {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  // Two cores: one flush and one compaction at a time.
  db.max_background_jobs = 2;
  // Smooth out writeback instead of large bursts at file close.
  db.bytes_per_sync = 1 * mib;
  db.wal_bytes_per_sync = 1 * mib;
  // Caps the memtables of all column families together (each may use write_buffer_mb).
  db.db_write_buffer_size = std::max<std::size_t>(options.write_buffer_mb, 1) * mib * 4;
  db.keep_log_file_num = 4;
  // A write group's leader inserts every batch of the group itself. In parallel, the
  // followers' threads would be woken for a few keys each, and RocksDB ignores the memtable
  // insert hints (below) for the whole group: with them, 7 % more requests/s in alternating
  // runs (the journal's group commits share their group with the odd small write, such as
  // the webhook dispatcher's position).
  db.allow_concurrent_memtable_write = false;
  if (options.env != nullptr) {
    db.env = options.env;
  }
  return db;
}

/// Options shared by every column family; `point_lookups` adds a bloom filter.
///
/// `insert_hint_prefix`: the memtable keeps, per key prefix of this many bytes, where its last
/// insert went, and starts the next insert with that prefix there instead of at the top of
/// its skip list. Our keys grow in time order within their prefix (positions, UUIDv7 request
/// ids, inverted creation times), so most inserts land next to the previous one: about 6 %
/// less CPU per request in alternating runs (docs/PERFORMANCE.md). RocksDB uses the hints
/// when one thread inserts a group's batches, not in parallel inserts (off, above).
rocksdb::ColumnFamilyOptions make_cf_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                             rocksdb::CompressionType compression, bool point_lookups,
                                             std::size_t write_buffer,
                                             std::shared_ptr<const rocksdb::SliceTransform> insert_hint = nullptr) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  if (point_lookups) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = write_buffer;
  // Flushes write level 0 uncompressed; every level below it is compressed. Level 0 only
  // lives until its first compaction, which reads it and compresses the result anyway:
  // compressing it too cost a flush half its CPU (LZ4 was about 4.5 % of all instructions
  // per request, callgrind), and its compaction a decompression.
  cf.compression = compression;
  cf.compression_per_level = {rocksdb::kNoCompression, compression};
  cf.level_compaction_dynamic_level_bytes = true;
  cf.memtable_insert_with_hint_prefix_extractor = std::move(insert_hint);
  return cf;
}

std::shared_ptr<const rocksdb::SliceTransform> fixed_hint(std::size_t prefix) {
  return std::shared_ptr<const rocksdb::SliceTransform>{rocksdb::NewFixedPrefixTransform(prefix)};
}

/// The insert hint's prefix of a stream index key: its stream, up to and including the
/// separator (`<stream>\0`, detail/journal_codec.hpp). Each stream keeps where its last entry
/// went, and its next append (the entry right after it) lands there: the search moves up a
/// level or two instead of from where some other stream's append last went.
class stream_hint_transform final : public rocksdb::SliceTransform {
 public:
  static const char* kClassName() { return "prov.StreamIndexPrefix"; }
  const char* Name() const override { return kClassName(); }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const auto end = std::find(key.data(), key.data() + key.size(), detail::stream_key_separator);
    return {key.data(), static_cast<std::size_t>(end - key.data()) + 1};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::find(key.data(), key.data() + key.size(), detail::stream_key_separator) != key.data() + key.size();
  }
};

}  // namespace

result<std::unique_ptr<rocks_store>> rocks_store::open(const rocks_store_options& options) {
  if (options.path.empty()) {
    return make_error(errc::invalid_argument, "rocks_store: empty path");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return make_error(errc::io_error, "rocks_store: cannot create " + options.path + ": " + ec.message());
  }

  const auto db_options = make_db_options(options);
  if (options.background_low_priority) {
    // Applied by each pool thread before its next job. NotSupported (an Env that cannot) only
    // leaves the priority as it was.
    // `db_options.env` is the test's Env or RocksDB's default one (DBOptions' own default).
    db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::HIGH, rocksdb::CpuPriority::kLow)
        .PermitUncheckedError();
    db_options.env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow)
        .PermitUncheckedError();
  }

  // Refuse column families this build does not know (a newer format) with a clear message
  // instead of RocksDB's "column families not opened".
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (const auto& name : existing) {
      if (name != rocksdb::kDefaultColumnFamilyName && name != log_cf_name && name != streams_cf_name &&
          name != projections_cf_name && name != meta_cf_name) {
        return make_error(errc::corrupt, "rocks_store: " + options.path + " has unknown column family '" +
                                             name + "' (written by a newer version?)");
      }
    }
  }

  const auto cache = rocksdb::NewLRUCache(std::max<std::size_t>(options.block_cache_mb, 1) * mib);
  const auto compression = lz4_supported() ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
  const auto write_buffer = std::max<std::size_t>(options.write_buffer_mb, 1) * mib;
  const auto small_buffer = std::min<std::size_t>(write_buffer, 4 * mib);

  auto streams_options = make_cf_options(cache, compression, true, write_buffer, std::make_shared<stream_hint_transform>());
  // The journal's writer asks the stream index whether a stream has a first entry (below);
  // the memtable's own filter answers that without a search of its skip list.
  streams_options.memtable_prefix_bloom_size_ratio = 0.02;
  streams_options.memtable_whole_key_filtering = true;
  const std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
      {rocksdb::kDefaultColumnFamilyName, make_cf_options(cache, compression, true, small_buffer)},
      // The log is read by position ranges and by exact keys that exist: no filter. Its keys
      // only grow: one insert hint for all of them.
      {std::string(log_cf_name), make_cf_options(cache, compression, false, write_buffer, fixed_hint(0))},
      // The stream index is read with prefix iterators, and the journal's writer asks whether
      // a stream it has not seen has a first entry (usually not: a new request): a filter for
      // that. A hint per stream: its next entry lands right after its last.
      {std::string(streams_cf_name), streams_options},
      // Hints as the projections choose (`rocks_store_options`; layout in projections/views.hpp).
      {std::string(projections_cf_name), make_cf_options(cache, compression, true, write_buffer,
                       options.projections_insert_hint ? options.projections_insert_hint : fixed_hint(4))},
      {std::string(meta_cf_name), make_cf_options(cache, compression, true, small_buffer)},
  };

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  const auto s = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &db);
  if (!s.ok()) {
    // RocksDB locks `<path>/LOCK` while a store is open: another process has it ("While lock
    // file"), or this one ("lock hold by current process").
    const auto text = s.ToString();
    if (s.IsIOError() && (text.find("lock file") != std::string::npos || text.find("lock hold") != std::string::npos)) {
      return make_error(errc::conflict, "rocks_store: " + options.path +
                                            " is in use: another process (or this one) has it open (RocksDB: " + text + ")");
    }
    return detail::to_error(s, "rocks_store: open " + options.path);
  }

  // From here on the destructor releases whatever was opened.
  std::unique_ptr<rocks_store> store(new rocks_store());
  store->_db = db;
  store->_default = handles.at(0);
  store->_log = handles.at(1);
  store->_streams = handles.at(2);
  store->_projections = handles.at(3);
  store->_meta = handles.at(4);

  std::string format;
  const auto got = db->Get(rocksdb::ReadOptions(), store->_meta, format_key, &format);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  if (got.ok() && upgradable(format)) {
    if (const auto put = db->Put(sync, store->_meta, format_key, format_version); !put.ok()) {
      return detail::to_error(put, "rocks_store: upgrade the format version");
    }
  } else if (got.IsNotFound()) {
    // A new database, unless the log already holds data (then the meta was lost).
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), store->_log));
    it->SeekToFirst();
    if (!it->status().ok()) {
      return detail::to_error(it->status(), "rocks_store: read log");
    }
    if (it->Valid()) {
      return make_error(errc::corrupt, "rocks_store: " + options.path +
                                           " holds a log but no format version in meta");
    }
    const auto put = db->Put(sync, store->_meta, format_key, format_version);
    if (!put.ok()) {
      return detail::to_error(put, "rocks_store: write format version");
    }
  } else if (!got.ok()) {
    return detail::to_error(got, "rocks_store: read format version");
  } else if (format != format_version) {
    return make_error(errc::corrupt, "rocks_store: " + options.path + " has on-disk format '" + format +
                                         "', this build reads formats '" + std::string(formats_upgradable.front()) +
                                         "' to '" + std::string(format_version) + "'");
  }
  return store;
}

rocks_store::~rocks_store() {
  if (_db == nullptr) {
    return;
  }
  if (wal_failed()) {
    // Closing flushes the memtables (the projections' batches skip the WAL), which syncs the
    // failed log file again: leave them to the next start, which replays the journal.
    _db->SetDBOptions({{"avoid_flush_during_shutdown", "true"}}).PermitUncheckedError();
  }
  for (auto* handle : {_default, _log, _streams, _projections, _meta}) {
    if (handle != nullptr) {
      _db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
  }
  // Close() reports an error only if something was left unreleased (e.g. a snapshot); the
  // WAL already holds every acknowledged write, so there is nothing else to do about it.
  _db->Close().PermitUncheckedError();
  delete _db;
}

status rocks_store::checkpoint(const std::string& dir) {
  if (wal_failed()) {
    // A checkpoint flushes the memtables first, which syncs the failed log file.
    return make_error(errc::unavailable, "rocks_store: the write-ahead log failed; no backup until a restart");
  }
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = detail::to_status(rocksdb::Checkpoint::Create(_db, &raw), "rocks_store: checkpoint"); !s) {
    return s;
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint{raw};
  return detail::to_status(checkpoint->CreateCheckpoint(dir), "rocks_store: checkpoint to " + dir);
}

status rocks_store::put_meta(std::string_view key, std::string_view value) {
  if (wal_failed()) {
    return make_error(errc::unavailable, "rocks_store: the write-ahead log failed; nothing is written until a restart");
  }
  return detail::to_status(
      _db->Put(rocksdb::WriteOptions{}, _meta, rocksdb::Slice{key.data(), key.size()}, rocksdb::Slice{value.data(), value.size()}),
      "rocks_store: write meta");
}

status rocks_store::flush() {
  if (wal_failed()) {
    return make_error(errc::unavailable, "rocks_store: the write-ahead log failed; not flushed (the next start recovers)");
  }
  if (auto s = detail::to_status(_db->FlushWAL(true), "rocks_store: sync WAL"); !s) {
    return s;
  }
  rocksdb::FlushOptions options;
  options.wait = true;
  const std::vector<rocksdb::ColumnFamilyHandle*> all{_default, _log, _streams, _projections, _meta};
  return detail::to_status(_db->Flush(options, all), "rocks_store: flush memtables");
}

}  // namespace prov::events
