#include "prov/events/rocks_journal.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "detail/journal_codec.hpp"
#include "detail/journal_validation.hpp"
#include "detail/rocks_status.hpp"
#include "prov/core/log.hpp"
#include "prov/core/string_hash.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/core/time_format.hpp"
#include "prov/events/catalog.hpp"

namespace prov::events {

namespace {

/// The writer forgets its cached stream versions beyond this many streams (they are re-read
/// from the stream index on the next miss), so memory does not grow with the number of streams.
/// A stream's appends come within seconds of each other (one request's pipeline) and a new
/// stream misses anyway, so a small cache catches nearly every repeat append.
constexpr std::size_t version_cache_limit = std::size_t{1} << 16U;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

rocksdb::Slice to_slice(std::string_view s) {
  return {s.data(), s.size()};
}

std::string_view to_view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

/// The last sequence in `runs` (at growing positions) whose position is <= `max_position`, if
/// any. A run is committed whole, so it is normally entirely visible; it is cut at the bound
/// anyway.
std::optional<std::uint64_t> last_sequence_in(const std::vector<detail::stream_run>& runs, std::uint64_t max_position) {
  for (auto run = runs.rbegin(); run != runs.rend(); ++run) {
    if (run->position <= max_position) {
      return run->first_sequence + std::min(run->count, max_position - run->position + 1) - 1;
    }
  }
  return std::nullopt;
}

/// The last sequence of `stream` whose position is <= `max_position` (0 if none), read from
/// the stream index through `it`. `key` is a scratch buffer.
result<std::uint64_t> last_sequence(rocksdb::Iterator& it, std::string& key, std::string_view stream,
                                    std::uint64_t max_position) {
  detail::make_stream_key(key, stream, max_u64);
  std::vector<detail::stream_run> runs;
  for (it.SeekForPrev(to_slice(key)); it.Valid(); it.Prev()) {
    const auto k = to_view(it.key());
    if (!detail::is_stream_key(k, stream)) {
      return std::uint64_t{0};
    }
    if (!detail::decode_stream_runs(k, to_view(it.value()), stream, runs)) {
      return make_error(errc::corrupt, "stream index of " + std::string(stream) + ": malformed entry");
    }
    if (const auto last = last_sequence_in(runs, max_position)) {
      return *last;
    }
  }
  if (!it.status().ok()) {
    return detail::to_error(it.status(), "journal: read stream index of " + std::string(stream));
  }
  return std::uint64_t{0};
}

/// The meta key of the position up to which the stream index holds every event.
constexpr std::string_view indexed_key = "journal/indexed";

/// A stream's runs appended since the last index checkpoint.
struct unindexed_runs {
  std::uint64_t first_sequence = 0;  ///< of the first run
  std::uint64_t next_sequence = 0;   ///< after the last run
  std::vector<detail::position_run> runs;

  /// Adds `count` events at `position`, from sequence `first` (the one after those held, or
  /// the stream's first since the checkpoint).
  void add(std::uint64_t first, std::uint64_t position, std::uint64_t count) {
    if (runs.empty()) {
      first_sequence = first;
      next_sequence = first;
    }
    if (!runs.empty() && runs.back().position + runs.back().count == position) {
      runs.back().count += count;
    } else {
      runs.push_back(detail::position_run{position, count});
    }
    next_sequence += count;
  }

  /// The runs with their sequences.
  void copy_to(std::vector<detail::stream_run>& out) const {
    out.clear();
    auto sequence = first_sequence;
    for (const auto& r : runs) {
      out.push_back(detail::stream_run{sequence, r.position, r.count});
      sequence += r.count;
    }
  }
};

/// Databases that have a journal: a second writer would hand out the same positions.
std::mutex attached_mutex;
std::set<const rocksdb::DB*> attached;

/// One queued append.
struct pending_append {
  std::vector<stream_append> batch;
  append_handler done;
  std::size_t events = 0;
};

/// A group the writer has written (not yet synced), with what each append will be answered.
struct written_group {
  std::vector<pending_append> appends;
  std::vector<result<append_receipt>> results;
  std::uint64_t last_position = 0;  ///< the group's last position, if `wrote`
  std::size_t committed_appends = 0;
  std::uint64_t events = 0;  ///< events of the committed appends
  bool wrote = false;  ///< a batch reached RocksDB (some append was staged and the write succeeded)

  void clear() {
    appends.clear();
    results.clear();
    last_position = 0;
    committed_appends = 0;
    events = 0;
    wrote = false;
  }
};

/// Where the log ends when it is opened.
struct log_end {
  std::uint64_t position = 0;  ///< the last event's (0: empty)
  timestamp time{};            ///< the last event's commit time
};

class rocks_journal final : public journal {
 public:
  rocks_journal(rocks_store& store, const clock& clk, rocks_journal_options options, log_end end)
      : _store(store),
        _clock(clk),
        _options(options),
        _head(end.position),
        _written_head(end.position),
        _last_time(end.time),
        _opened_at(end.position),
        _listeners(std::make_shared<const std::vector<commit_listener>>()) {
    _options.max_batch_events = std::max<std::size_t>(_options.max_batch_events, 1);
    // With sync on, the syncer thread makes each group durable (SyncWAL) while the writer
    // writes the next one; the write itself never waits for the disk.
    _write_options.sync = false;
  }

  ~rocks_journal() override {
    stop();
    std::lock_guard lock(attached_mutex);
    attached.erase(_store.db());
  }

  rocks_journal(const rocks_journal&) = delete;
  rocks_journal& operator=(const rocks_journal&) = delete;

  /// Recovers the runs the stream index does not hold yet, then starts the syncer (with sync
  /// on) and the writer.
  status start() {
    if (auto recovered = recover_unindexed(); !recovered) {
      return recovered;
    }
    try {
      if (_options.sync) {
        _syncer = std::thread([this] {
          name_this_thread("prov.wal-sync");
          detail::mark_journal_thread();
          run_syncer();
        });
      }
      _writer = std::thread([this] {
        name_this_thread("prov.journal");
        detail::mark_journal_thread();
        run();
      });
    } catch (const std::system_error& e) {
      stop();
      return make_error(errc::unavailable, std::string("journal: cannot start writer: ") + e.what());
    }
    return {};
  }

  /// Completes every queued append, then stops the writer; later appends get `unavailable`.
  void stop() {
    {
      std::lock_guard lock(_mutex);
      _stopping = true;
    }
    _wake.notify_all();
    if (_writer.joinable()) {
      _writer.join();
    }
    {
      std::lock_guard lock(_mutex);
      _writer_done = true;  // also when the writer never started
    }
    _sync_wake.notify_all();
    if (_syncer.joinable()) {
      _syncer.join();
    }
    if (_options.checkpoint_on_stop) {
      checkpoint_on_stop();
    }
  }

  void append(std::vector<stream_append> batch, append_handler done) override {
    if (auto valid = detail::validate_batch(batch); !valid) {
      answer(done, std::move(valid).err());
      return;
    }
    std::size_t events = 0;
    for (const auto& a : batch) {
      events += a.events.size();
    }
    {
      std::unique_lock lock(_mutex);
      if (!_stopping) {
        _queue.push_back(pending_append{std::move(batch), std::move(done), events});
        _queued_events += events;
        ++_accepted;
        const bool wake = writer_may_write();
        lock.unlock();
        if (wake) {
          _wake.notify_one();
        }
        return;
      }
    }
    answer(done, make_error(errc::unavailable, "journal: stopped"));
  }

  result<std::vector<stored_event>> read_stream(std::string_view stream, std::uint64_t from_sequence,
                                                std::uint64_t max) const override {
    if (auto valid = detail::validate_stream_id(stream); !valid) {
      return std::move(valid).err();
    }
    std::vector<stored_event> out;
    const auto head = _head.load(std::memory_order_acquire);
    from_sequence = std::max<std::uint64_t>(from_sequence, 1);
    if (max == 0) {
      return out;
    }
    // The runs since the last index checkpoint, taken before the index is read: a checkpoint
    // writes them to the index before it forgets them, so each run is in one or the other.
    std::vector<detail::stream_run> recent;
    unindexed_of(stream, recent);

    std::string end;
    detail::make_stream_end(end, stream);
    const auto upper = to_slice(end);
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(_store.db()->NewIterator(read, _store.streams_cf()));

    // The entry holding `from_sequence` starts at or before its key.
    std::string key;
    detail::make_stream_key(key, stream, from_sequence);
    it->SeekForPrev(to_slice(key));
    if (!it->Valid() || !detail::is_stream_key(to_view(it->key()), stream)) {
      it->Seek(to_slice(key));
    }

    // Each run is read from the log record holding its first wanted position (one seek), and
    // on from the next records if it continues past that one (stores written before format 3
    // hold one event per record).
    std::string log_key;
    std::string log_end;
    detail::make_log_key(log_end, head + 1);
    const auto log_upper = to_slice(log_end);
    rocksdb::ReadOptions log_read;
    log_read.iterate_upper_bound = &log_upper;
    std::unique_ptr<rocksdb::Iterator> log(_store.db()->NewIterator(log_read, _store.log_cf()));
    detail::record_reader record;
    stored_event skipped;
    auto next_sequence = from_sequence;
    // Reads what `run` holds from `next_sequence` on; false once the head is reached.
    const auto read_run = [&](const detail::stream_run& run) -> result<bool> {
      if (run.first_sequence + run.count <= next_sequence) {
        return true;  // before `from_sequence`, or in the index and taken from memory too
      }
      if (run.first_sequence > next_sequence) {
        return make_error(errc::corrupt, "stream index of " + std::string(stream) + ": expected sequence " +
                                             std::to_string(next_sequence) + ", found " +
                                             std::to_string(run.first_sequence));
      }
      auto position = run.position + (next_sequence - run.first_sequence);
      const auto run_end = run.position + run.count;  // exclusive
      if (position > head) {
        return false;  // committed to disk but not yet published: not visible
      }
      detail::make_log_key(log_key, position);
      log->SeekForPrev(to_slice(log_key));
      while (position < run_end && position <= head && out.size() < max) {
        if (!log->Valid()) {
          if (!log->status().ok()) {
            return detail::to_error(log->status(), "journal: read log position " + std::to_string(position));
          }
          return make_error(errc::corrupt, "stream " + std::string(stream) + ": position " +
                                               std::to_string(position) + " missing from the log");
        }
        const auto key = detail::decode_be64(to_view(log->key()));
        if (!key) {
          return make_error(errc::corrupt, "log: malformed key");
        }
        if (auto opened = record.open(to_view(log->value()), *key); !opened) {
          return std::move(opened).err();
        }
        if (*key > position || record.last_position() < position) {
          return make_error(errc::corrupt, "stream " + std::string(stream) + ": position " +
                                               std::to_string(position) + " missing from the log");
        }
        while (!record.done() && position < run_end && out.size() < max) {
          const bool wanted = record.next_position() >= position;
          auto& event = wanted ? out.emplace_back() : skipped;
          if (auto decoded = record.next(event, wanted); !decoded) {
            return std::move(decoded).err();
          }
          if (!wanted) {
            continue;
          }
          if (event.stream != stream || event.sequence != next_sequence) {
            return make_error(errc::corrupt, "log position " + std::to_string(event.position) + " holds " +
                                                 event.stream + "#" + std::to_string(event.sequence) +
                                                 ", index says " + std::string(stream) + "#" +
                                                 std::to_string(next_sequence));
          }
          ++position;
          ++next_sequence;
        }
        log->Next();
      }
      return position >= run_end;
    };
    bool more = true;  // the head is not reached yet
    const auto read_runs = [&](const std::vector<detail::stream_run>& runs) -> status {
      for (const auto& run : runs) {
        if (!more || out.size() >= max) {
          break;
        }
        auto read = read_run(run);
        if (!read) {
          return std::move(read).err();
        }
        more = *read;
      }
      return {};
    };
    std::vector<detail::stream_run> runs;
    for (; more && out.size() < max && it->Valid(); it->Next()) {
      if (!detail::decode_stream_runs(to_view(it->key()), to_view(it->value()), stream, runs)) {
        return make_error(errc::corrupt, "stream index of " + std::string(stream) + ": malformed entry");
      }
      if (auto read = read_runs(runs); !read) {
        return std::move(read).err();
      }
    }
    if (!it->status().ok()) {
      return detail::to_error(it->status(), "journal: read stream index of " + std::string(stream));
    }
    if (auto read = read_runs(recent); !read) {
      return std::move(read).err();
    }
    return out;
  }

  result<std::uint64_t> stream_version(std::string_view stream) const override {
    if (auto valid = detail::validate_stream_id(stream); !valid) {
      return std::move(valid).err();
    }
    const auto head = _head.load(std::memory_order_acquire);
    std::vector<detail::stream_run> recent;  // first, as in `read_stream`
    unindexed_of(stream, recent);
    if (const auto last = last_sequence_in(recent, head)) {
      return *last;
    }
    std::unique_ptr<rocksdb::Iterator> it(_store.db()->NewIterator(rocksdb::ReadOptions(), _store.streams_cf()));
    std::string key;
    return last_sequence(*it, key, stream, head);
  }

  result<std::size_t> read_all(std::uint64_t from_position, std::size_t max,
                               const std::function<void(const stored_event&)>& visit) const override {
    const auto head = _head.load(std::memory_order_acquire);
    from_position = std::max<std::uint64_t>(from_position, 1);
    if (max == 0 || from_position > head) {
      return std::size_t{0};
    }
    const auto last = (head - from_position < max) ? head : from_position + max - 1;

    std::string lower;
    std::string upper;
    detail::make_log_key(lower, from_position);
    detail::make_log_key(upper, last + 1);
    const auto upper_slice = to_slice(upper);
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(_store.db()->NewIterator(read, _store.log_cf()));

    // A record holds consecutive positions: the one holding `from_position` starts at it (the
    // common case: readers go on from where a commit ended) or before it.
    it->Seek(to_slice(lower));
    if (!it->Valid() || to_view(it->key()) != lower) {
      if (!it->status().ok()) {
        return detail::to_error(it->status(), "journal: read log");
      }
      it->SeekForPrev(to_slice(lower));
    }
    stored_event event;
    detail::record_reader record;
    auto expected = from_position;  // the next position to visit
    auto next_record = from_position;  // the key the next record must have (after the first)
    bool first = true;
    std::size_t visited = 0;
    for (; it->Valid() && expected <= last; it->Next()) {
      const auto position = detail::decode_be64(to_view(it->key()));
      if (!position) {
        return make_error(errc::corrupt, "log: malformed key");
      }
      if (first ? *position > from_position : *position != next_record) {
        return make_error(errc::corrupt, "log: expected position " + std::to_string(first ? from_position : next_record) +
                                             ", found " + std::to_string(*position));
      }
      if (auto opened = record.open(to_view(it->value()), *position); !opened) {
        return std::move(opened).err();
      }
      first = false;
      next_record = record.last_position() + 1;
      while (!record.done() && expected <= last) {
        // Events before `from_position`, in a record that starts earlier, are stepped over.
        const bool wanted = record.next_position() >= from_position;
        if (auto decoded = record.next(event, wanted); !decoded) {
          return std::move(decoded).err();
        }
        if (wanted) {
          visit(event);
          ++visited;
          ++expected;
        }
      }
    }
    if (!it->status().ok()) {
      return detail::to_error(it->status(), "journal: read log");
    }
    if (expected != last + 1) {
      return make_error(errc::corrupt, "log: position " + std::to_string(expected) + " missing (head " +
                                           std::to_string(head) + ")");
    }
    return visited;
  }

  std::uint64_t head() const override { return _head.load(std::memory_order_acquire); }

  std::uint64_t last_position_in(std::string_view category) const override {
    std::lock_guard lock(_categories_mutex);
    for (const auto& [name, last] : _categories) {
      if (name == category) {
        return last;
      }
    }
    return _opened_at;  // nothing since the journal was opened; before, anything
  }

  void on_commit(commit_listener listener) override {
    std::lock_guard lock(_listeners_mutex);
    auto next = std::make_shared<std::vector<commit_listener>>(*_listeners);
    next->push_back(std::move(listener));
    _listeners = std::move(next);
  }

  void drain() override {
    const auto self = std::this_thread::get_id();
    if (self == _writer.get_id() || self == _syncer.get_id()) {
      return;  // called from a handler or listener: waiting for ourselves would deadlock
    }
    std::unique_lock lock(_mutex);
    const auto target = _accepted;
    _drained.wait(lock, [&] { return _answered >= target; });
  }

  rocks_journal_stats stats() const {
    return {_groups.load(std::memory_order_relaxed), _appends_committed.load(std::memory_order_relaxed),
            _events_committed.load(std::memory_order_relaxed), _syncs.load(std::memory_order_relaxed),
            _index_checkpoints.load(std::memory_order_relaxed), _failed.load(std::memory_order_relaxed)};
  }

  /// Before the writer starts: the position the stream index holds every event up to (stored
  /// with each checkpoint; a store of format 3 or older indexed every append, so its head),
  /// and the runs after it, read back from the log, kept as if appended since a checkpoint.
  status recover_unindexed() {
    const auto head = _head.load(std::memory_order_acquire);
    std::string stored;
    const auto got = _store.db()->Get(rocksdb::ReadOptions(), _store.meta_cf(), to_slice(indexed_key), &stored);
    std::uint64_t indexed = head;
    if (got.ok()) {
      const auto* end = stored.data() + stored.size();
      const auto parsed = std::from_chars(stored.data(), end, indexed);
      if (parsed.ec != std::errc{} || parsed.ptr != end || indexed > head) {
        return make_error(errc::corrupt, "journal: meta " + std::string(indexed_key) + " is malformed: " + stored);
      }
    } else if (!got.IsNotFound()) {
      return detail::to_error(got, "journal: read " + std::string(indexed_key));
    }
    if (indexed == head) {
      return {};
    }
    status bad;
    auto read = read_all(indexed + 1, max_u64, [&](const stored_event& e) {
      auto& u = _unindexed.try_emplace(e.stream).first->second;
      if (!u.runs.empty() && e.sequence != u.next_sequence && bad) {
        bad = make_error(errc::corrupt, "log position " + std::to_string(e.position) + " holds " + e.stream + "#" +
                                            std::to_string(e.sequence) + ", expected #" +
                                            std::to_string(u.next_sequence));
      }
      u.add(e.sequence, e.position, 1);
    });
    if (!read) {
      return std::move(read).err();
    }
    if (!bad) {
      return bad;
    }
    log::info("journal_unindexed_recovered", {{"from_position", indexed + 1}, {"head", head}, {"streams", _unindexed.size()}});
    return {};
  }

 private:
  /// `out` = the runs of `stream` appended since the last index checkpoint (none: empty).
  void unindexed_of(std::string_view stream, std::vector<detail::stream_run>& out) const {
    std::lock_guard lock(_unindexed_mutex);
    if (const auto found = _unindexed.find(stream); found != _unindexed.end()) {
      found->second.copy_to(out);
    } else {
      out.clear();
    }
  }

  /// Calls an append handler; a throwing handler must not take the writer down.
  static void answer(append_handler& done, result<append_receipt> r) {
    if (!done) {
      return;
    }
    try {
      done(std::move(r));
    } catch (const std::exception& e) {
      log::error("journal: append handler threw", {{"what", e.what()}});
    } catch (...) {
      log::error("journal: append handler threw");
    }
  }

  /// With `_mutex` held: whether the writer should take the queue now. With no sync running
  /// it writes at once, so the next sync covers everything queued; while one runs, only once
  /// `early_write_events` wait (what it writes then rides the next sync without being written
  /// after this one ends), so a busy journal is not written one append at a time.
  bool writer_may_write() const {
    return !_queue.empty() &&
           (!_sync_running || _stopping || _queued_events >= _options.early_write_events);
  }

  /// The writer thread: takes what is queued (up to `max_batch_events`), checks and writes it
  /// as one group, until stopped and the queue is empty. Without sync it publishes each group
  /// itself; with sync it adds the group to the written list, which the syncer makes durable
  /// as a whole, and goes on without waiting for it.
  void run() {
    std::unique_lock lock(_mutex);
    for (;;) {
      _wake.wait(lock, [&] { return writer_may_write() || (_stopping && _queue.empty()); });
      if (_queue.empty()) {
        return;
      }
      std::size_t events = 0;
      _writing.clear();
      while (!_queue.empty() &&
             (_writing.appends.empty() || events + _queue.front().events <= _options.max_batch_events)) {
        events += _queue.front().events;
        _writing.appends.push_back(std::move(_queue.front()));
        _queue.pop_front();
      }
      _queued_events -= events;
      const bool failed = _failed;
      lock.unlock();
      write_group(_writing, failed);
      if (!_options.sync) {
        finish(std::span(&_writing, 1));
        lock.lock();
        _answered += _writing.appends.size();
        _drained.notify_all();
        continue;
      }
      lock.lock();
      _written_appends += _writing.appends.size();
      _written.push_back(std::move(_writing));
      if (!_spare.empty()) {
        _writing = std::move(_spare.back());  // a recycled group keeps its capacity
        _spare.pop_back();
      }
      _sync_wake.notify_one();
    }
  }

  /// The syncer thread (sync on): makes the written groups durable with one WAL sync, then
  /// publishes and answers them. Before each sync it waits until everything accepted so far is
  /// written (the writer writes at once while no sync runs), so an append that queued during
  /// a sync rides the next one. Runs until the writer is done and nothing is left.
  void run_syncer() {
    std::unique_lock lock(_mutex);
    for (;;) {
      _sync_wake.wait(lock, [&] { return !_written.empty() || _writer_done; });
      if (_written.empty()) {
        return;
      }
      const auto target = _accepted;
      _sync_wake.wait(lock, [&] { return _written_appends >= target || _writer_done; });
      std::swap(_written, _syncing);  // `_syncing` was left empty
      _sync_running = true;
      lock.unlock();
      sync(_syncing);
      finish(_syncing);
      std::uint64_t answered = 0;
      for (auto& g : _syncing) {
        answered += g.appends.size();
        g.clear();  // the handlers and events go outside the lock
      }
      lock.lock();
      for (auto& g : _syncing) {
        _spare.push_back(std::move(g));
      }
      _syncing.clear();
      _answered += answered;
      _sync_running = false;
      _drained.notify_all();
      if (!_queue.empty()) {
        _wake.notify_one();  // what queued during the sync is written now
      }
    }
  }

  /// The answer to the appends whose WAL sync failed: they were written, not made durable.
  static error unknown_outcome() {
    return make_error(errc::unavailable,
                      "journal: the write could not be made durable (a WAL sync failed), so it may or may not be "
                      "recorded once the journal is reopened; retry with the same idempotency key after the restart");
  }

  /// The answer to the appends whose write to the WAL failed.
  static error not_recorded() {
    return make_error(errc::unavailable,
                      "journal: the write failed (the disk refused it), so it is not recorded; the journal takes no "
                      "more writes until provisiond is restarted");
  }

  /// The answer to an append after a failed WAL sync or write.
  static error failed_earlier() {
    return make_error(errc::unavailable, "journal: an earlier WAL sync or write failed; restart to recover");
  }

  /// Makes `groups` durable with one WAL sync; on failure fails their appends and every later
  /// one (the journal stays failed: events it wrote after the last good sync may or may not
  /// survive a restart, so nothing more may be appended after them).
  void sync(std::vector<written_group>& groups) {
    if (std::none_of(groups.begin(), groups.end(), [](const written_group& g) { return g.wrote; })) {
      return;
    }
    bool failed = false;
    {
      std::lock_guard lock(_mutex);
      failed = _failed;
    }
    if (!failed) {
      const auto s = _store.db()->SyncWAL();
      _syncs.fetch_add(1, std::memory_order_relaxed);
      if (s.ok()) {
        return;
      }
      // The cause (a file's path, the OS error) is for the log and the owner; the appends
      // are told what it means for them.
      const auto cause = detail::to_error(s, "journal: sync");
      log::error("journal: WAL sync failed; failing every append until restart",
                 {{"error", cause.message}, {"groups", groups.size()}});
      fail_journal(cause);
    }
    // Written, not made durable: after a failed sync, or when the journal failed (a write after
    // theirs, or another sync) before their sync could run.
    const auto err = unknown_outcome();
    for (auto& g : groups) {
      for (auto& r : g.results) {
        if (r.ok()) {
          r = err;
        }
      }
      g.wrote = false;
    }
  }

  /// Records, for each category a committed append of `g` wrote to, the append's last
  /// position (a bound for each of its streams). Done before the group is handed on, so
  /// before the head can reach it.
  void note_categories(const written_group& g) {
    std::lock_guard lock(_categories_mutex);
    for (std::size_t i = 0; i < g.appends.size(); ++i) {
      if (!g.results[i]) {
        continue;
      }
      const auto last = g.results[i]->last_position;
      for (const auto& append : g.appends[i].batch) {
        const auto category = stream_category(append.stream);
        const auto known = std::find_if(_categories.begin(), _categories.end(),
                                        [&](const auto& c) { return c.first == category; });
        if (known == _categories.end()) {
          _categories.emplace_back(std::string{category}, last);
        } else {
          known->second = last;  // positions only grow
        }
      }
    }
  }

  /// Checks and writes `g` (without waiting for the disk); `failed` answers it unwritten.
  void write_group(written_group& g, bool failed) {
    if (_versions.size() > version_cache_limit) {
      _versions.clear();
    }
    g.results.clear();
    if (failed) {
      for (std::size_t i = 0; i < g.appends.size(); ++i) {
        g.results.emplace_back(failed_earlier());
      }
      return;
    }
    // The log's time never runs backwards: a wall clock set back (an NTP step, an operator)
    // stamps the group with the previous one's time until it catches up, so an event is never
    // dated before one the log holds ahead of it (and `asOfTime` prefixes stay in order).
    const auto now = log_time(_clock.now());
    const auto head = _written_head;
    auto next = head + 1;
    _batch.Clear();
    start_record(next);
    status recorded;
    for (auto& pending : g.appends) {
      g.results.push_back(stage(pending, now, next));
      if (g.results.back().ok()) {
        next = g.results.back()->last_position + 1;
        ++g.committed_appends;
        if (_value.size() >= detail::record_header_room + _options.max_record_bytes) {
          recorded = put_record(now, next);
          if (!recorded) {
            break;
          }
        }
      }
    }
    if (recorded) {
      recorded = put_record(now, next);
    }
    _index_it.reset();

    if (!recorded) {
      fail_group(g, recorded.err());
      return;
    }
    if (next == head + 1) {
      return;  // nothing staged: every append was rejected
    }
    const bool checkpoint = index_due(now);
    if (checkpoint) {
      if (auto indexed = put_index(next - 1); !indexed) {
        fail_group(g, indexed.err());
        return;
      }
    }
    const auto s = _store.db()->Write(_write_options, &_batch);
    _groups.fetch_add(1, std::memory_order_relaxed);
    if (s.ok()) {
      g.wrote = true;
      g.last_position = next - 1;
      g.events = next - head - 1;
      _written_head = next - 1;
      if (checkpoint) {
        forget_indexed(now);
      }
      note_categories(g);
      return;
    }
    // The log file took part of the record, or none: RocksDB drops a torn record when it
    // opens, but not what it would write after it, so nothing more may be written.
    const auto cause = detail::to_error(s, "journal: write");
    fail_group(g, cause);
    fail_journal(cause);
    g.results.assign(g.appends.size(), result<append_receipt>{not_recorded()});
  }

  /// From now on every append is refused until the journal is reopened, and the store writes
  /// nothing more through its WAL; the owner is told once.
  void fail_journal(const error& cause) {
    {
      std::lock_guard lock(_mutex);
      if (_failed) {
        return;
      }
      _failed = true;
    }
    _store.mark_wal_failed();
    if (_options.on_failure) {
      _options.on_failure(cause);
    }
  }

  /// Answers every append of `g` with `err` (nothing of it was written).
  void fail_group(written_group& g, const error& err) {
    // The versions cached and the runs kept while staging never reached the disk.
    _versions.clear();
    forget_unindexed_after(_written_head);
    log::error("journal: group commit failed",
               {{"error", err.message}, {"appends", g.appends.size()}, {"first_position", _written_head + 1}});
    g.results.assign(g.appends.size(), result<append_receipt>{err});
    g.committed_appends = 0;
  }

  /// Starts the log record that the next committed appends' runs go to, at `first_position`.
  void start_record(std::uint64_t first_position) {
    detail::open_record(_value);
    _record_first = first_position;
  }

  /// Stages the record being built, if it holds any run, as one log entry at its first
  /// position, and starts the next one at `next_position`. One entry for many appends: one
  /// memtable insert (and one entry to flush, and to step over when reading) per record.
  status put_record(timestamp now, std::uint64_t next_position) {
    if (next_position != _record_first) {
      const auto record = detail::seal_record(_value, next_position - _record_first, now);
      detail::make_log_key(_log_key, _record_first);
      if (auto s = _batch.Put(_store.log_cf(), to_slice(_log_key), to_slice(record)); !s.ok()) {
        return detail::to_error(s, "journal: stage the log record at " + std::to_string(_record_first));
      }
    }
    start_record(next_position);
    return {};
  }

  /// Publishes written (and, with sync on, synced) groups: moves the head past the last one
  /// that wrote, calls the commit listeners once, then answers every append in order.
  /// Listeners go first: they only wake their threads (the projector, the outbox, the webhook
  /// dispatcher), which then read the groups while their answers go out one message at a time.
  void finish(std::span<written_group> groups) {
    std::uint64_t last = 0;
    std::uint64_t appends = 0;
    std::uint64_t events = 0;
    for (const auto& g : groups) {
      if (g.wrote) {
        last = g.last_position;  // positions grow from group to group
        appends += g.committed_appends;
        events += g.events;
      }
    }
    if (last != 0) {
      _head.store(last, std::memory_order_release);
      _appends_committed.fetch_add(appends, std::memory_order_relaxed);
      _events_committed.fetch_add(events, std::memory_order_relaxed);
      std::shared_ptr<const std::vector<commit_listener>> listeners;
      {
        std::lock_guard lock(_listeners_mutex);
        listeners = _listeners;
      }
      for (const auto& listener : *listeners) {
        try {
          listener(last);
        } catch (const std::exception& e) {
          log::error("journal: commit listener threw", {{"what", e.what()}});
        } catch (...) {
          log::error("journal: commit listener threw");
        }
      }
    }
    for (auto& g : groups) {
      for (std::size_t i = 0; i < g.appends.size(); ++i) {
        answer(g.appends[i].done, std::move(g.results[i]));
      }
    }
  }

  /// The current version of `stream` as the writer sees it (including earlier appends of the
  /// group being staged).
  result<std::uint64_t> current_version(const std::string& stream) {
    if (const auto found = _versions.find(stream); found != _versions.end()) {
      return found->second;
    }
    if (const auto found = _unindexed.find(stream); found != _unindexed.end()) {
      // Appended to since the last index checkpoint: the index does not know the last runs.
      const auto version = found->second.next_sequence - 1;
      _versions.emplace(stream, version);
      return version;
    }
    // A stream the cache does not know is mostly a new one: whether its first index entry
    // (sequence 1, which every stream has) exists is a point read that the bloom filters
    // answer, where finding the last entry takes a seek through every level.
    detail::make_stream_key(_index_key, stream, 1);
    const auto first = _store.db()->Get(rocksdb::ReadOptions(), _store.streams_cf(), to_slice(_index_key), &_first_entry);
    _first_entry.Reset();
    if (first.IsNotFound()) {
      _versions.emplace(stream, 0);
      return std::uint64_t{0};
    }
    if (!first.ok()) {
      return detail::to_error(first, "journal: read stream index of " + stream);
    }
    if (!_index_it) {
      // One iterator per group: it sees every earlier group, and this group is not written yet.
      _index_it.reset(_store.db()->NewIterator(rocksdb::ReadOptions(), _store.streams_cf()));
    }
    auto version = last_sequence(*_index_it, _index_key, stream, max_u64);
    if (version) {
      _versions.emplace(stream, *version);
    }
    return version;
  }

  /// Checks one append's expected versions and, if they hold, adds its events to `_batch` at
  /// positions from `first_position` and records the new versions in the cache.
  result<append_receipt> stage(const pending_append& pending, timestamp now,
                               std::uint64_t first_position) {
    const auto& batch = pending.batch;
    _new_versions.clear();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& append = batch[i];
      // A stream named twice in one batch continues from its earlier entry.
      std::uint64_t current = 0;
      bool chained = false;
      for (std::size_t k = i; k-- > 0;) {
        if (batch[k].stream == append.stream) {
          current = _new_versions[k];
          chained = true;
          break;
        }
      }
      if (!chained) {
        auto version = current_version(append.stream);
        if (!version) {
          return std::move(version).err();
        }
        current = *version;
      }
      if (append.expected_version != any_version && append.expected_version != current) {
        return detail::version_conflict(append.stream, append.expected_version, current);
      }
      _new_versions.push_back(current + append.events.size());
    }

    append_receipt receipt;
    receipt.first_position = first_position;
    receipt.time = now;
    receipt.versions.reserve(batch.size());
    // Each stream's run of events (consecutive sequences at consecutive positions) goes to
    // the group's open log record (`put_record` stages it) and to the stream's runs since the
    // last index checkpoint (`put_index` writes them).
    auto position = first_position;
    {
      std::lock_guard lock(_unindexed_mutex);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto& append = batch[i];
        const auto first_sequence = _new_versions[i] - append.events.size() + 1;
        detail::add_record_run(_value, append.stream, first_sequence, append.events);
        _unindexed.try_emplace(append.stream).first->second.add(first_sequence, position, append.events.size());
        position += append.events.size();
        receipt.versions.push_back(_new_versions[i]);
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      _versions[batch[i].stream] = _new_versions[i];
    }
    receipt.last_position = position - 1;
    return receipt;
  }

  /// Whether the group written at `now` writes the stream index.
  bool index_due(timestamp now) const {
    return now - _index_written_at >= _options.index_checkpoint_interval ||
           _unindexed.size() >= _options.index_checkpoint_streams;
  }

  /// Stages the stream index checkpoint up to `last_position` (the group's last): one entry
  /// per stream with every run since the last checkpoint, and the position itself.
  status put_index(std::uint64_t last_position) {
    for (const auto& [stream, u] : _unindexed) {  // the writer is the only one that changes it
      detail::make_stream_key(_index_key, stream, u.first_sequence);
      detail::make_stream_value(_index_value, u.runs);
      if (auto s = _batch.Put(_store.streams_cf(), to_slice(_index_key), to_slice(_index_value)); !s.ok()) {
        return detail::to_error(s, "journal: stage the stream index of " + stream);
      }
    }
    const auto indexed = std::to_string(last_position);
    if (auto s = _batch.Put(_store.meta_cf(), to_slice(indexed_key), to_slice(indexed)); !s.ok()) {
      return detail::to_error(s, "journal: stage the indexed position");
    }
    return {};
  }

  /// Writes the stream index for the runs still in memory once the writer and the syncer are
  /// done (nothing else stages or writes then). Not after a failed sync: what was written
  /// since may not be durable; the next open reads it back from the log instead.
  void checkpoint_on_stop() {
    if (_failed || _unindexed.empty()) {
      return;
    }
    _batch.Clear();
    auto staged = put_index(_written_head);
    if (staged) {
      rocksdb::WriteOptions sync;
      sync.sync = true;
      staged = detail::to_status(_store.db()->Write(sync, &_batch), "journal: write the last index checkpoint");
    }
    _batch.Clear();
    if (!staged) {
      log::warn("journal: last index checkpoint failed", {{"error", staged.err().message}});
      return;
    }
    forget_indexed(_clock.now());
  }

  /// After a checkpoint's write: readers find the runs in the index from now on (they took
  /// them from memory first).
  void forget_indexed(timestamp now) {
    std::lock_guard lock(_unindexed_mutex);
    _unindexed.clear();
    _index_written_at = now;
    _index_checkpoints.fetch_add(1, std::memory_order_relaxed);
  }

  /// After a failed write: forgets the runs after `last_written` (the failed group's).
  void forget_unindexed_after(std::uint64_t last_written) {
    std::lock_guard lock(_unindexed_mutex);
    for (auto it = _unindexed.begin(); it != _unindexed.end();) {
      auto& u = it->second;
      while (!u.runs.empty()) {
        auto& last = u.runs.back();
        if (last.position > last_written) {
          u.next_sequence -= last.count;
          u.runs.pop_back();
          continue;
        }
        const auto beyond = last.position + last.count - 1 - std::min(last.position + last.count - 1, last_written);
        last.count -= beyond;  // a run the failed group went on (consecutive positions)
        u.next_sequence -= beyond;
        break;
      }
      it = u.runs.empty() ? _unindexed.erase(it) : std::next(it);
    }
  }

  rocks_store& _store;
  const clock& _clock;
  rocks_journal_options _options;
  /// The commit time of the next group with the wall clock at `wall`: never before the last
  /// one's. A clock found a second or more behind the log is logged once, and again when it
  /// has caught up: what an operator should know (retry due times and the reconciler's grace
  /// follow the wall clock).
  timestamp log_time(timestamp wall) {
    if (wall + std::chrono::seconds{1} <= _last_time && !_clock_behind) {
      _clock_behind = true;
      log::warn("journal_clock_behind",
                {{"behind_ms", std::chrono::duration_cast<std::chrono::milliseconds>(_last_time - wall).count()},
                 {"log_time", format_rfc3339(_last_time)},
                 {"hint", "the wall clock was set back; events keep the log's last time until it catches up"}});
    } else if (wall >= _last_time && _clock_behind) {
      _clock_behind = false;
      log::info("journal_clock_caught_up", {{"log_time", format_rfc3339(wall)}});
    }
    _last_time = std::max(wall, _last_time);
    return _last_time;
  }

  rocksdb::WriteOptions _write_options;
  std::atomic<std::uint64_t> _head;  ///< the last published (durable) position
  std::uint64_t _written_head;       ///< the last position written (writer only)
  timestamp _last_time;              ///< the commit time of the last group (writer only)
  bool _clock_behind = false;        ///< the wall clock was found behind `_last_time` (writer only)
  const std::uint64_t _opened_at;    ///< the head when opened: categories before it are unknown
  mutable std::mutex _categories_mutex;
  /// Each stream category written since the journal was opened, with the last position of an
  /// append to it (a handful of categories: a vector is the cheapest map).
  std::vector<std::pair<std::string, std::uint64_t>> _categories;

  // The queue and the hand-over, shared by appenders, the writer and the syncer.
  std::mutex _mutex;
  std::condition_variable _wake;       ///< the writer waits for work and a free hand-over
  std::condition_variable _sync_wake;  ///< the syncer waits for a written group
  std::condition_variable _drained;    ///< drain() waits for answers
  std::deque<pending_append> _queue;
  std::size_t _queued_events = 0;       ///< events of the appends in `_queue`
  std::uint64_t _accepted = 0;          ///< appends queued so far
  std::uint64_t _written_appends = 0;   ///< appends the writer has taken and written (or refused)
  std::uint64_t _answered = 0;          ///< queued appends whose handler has run
  bool _stopping = false;
  std::vector<written_group> _written;  ///< written, waiting for the next sync
  std::vector<written_group> _spare;    ///< answered groups, kept for their capacity
  bool _sync_running = false;           ///< the syncer has taken groups and not answered them yet
  bool _writer_done = false;            ///< the writer has stopped: the syncer ends once idle
  /// A WAL sync failed: every later append fails. Set under `_mutex` with the rest of the
  /// hand-over; atomic so that `stats()` (health checks) reads it without the lock.
  std::atomic<bool> _failed{false};

  // Listeners: replaced (copy on write) on registration, so the publishing thread (the syncer,
  // or the writer without sync) calls them unlocked.
  std::mutex _listeners_mutex;
  std::shared_ptr<const std::vector<commit_listener>> _listeners;

  // Writer-only state, reused across groups.
  written_group _writing;
  std::vector<std::uint64_t> _new_versions;
  rocksdb::WriteBatch _batch;
  std::string _log_key;
  std::string _index_key;
  std::string _index_value;
  rocksdb::PinnableSlice _first_entry;
  std::string _value;           ///< the log record being built (`detail::open_record`)
  std::uint64_t _record_first = 0;  ///< the position of its first event
  timestamp _index_written_at{};    ///< the last index checkpoint (none yet: the first group writes one)
  std::unordered_map<std::string, std::uint64_t> _versions;
  std::unique_ptr<rocksdb::Iterator> _index_it;

  std::atomic<std::uint64_t> _groups{0};
  std::atomic<std::uint64_t> _appends_committed{0};
  std::atomic<std::uint64_t> _events_committed{0};
  std::atomic<std::uint64_t> _syncs{0};
  std::atomic<std::uint64_t> _index_checkpoints{0};

  /// Each stream's runs since the last index checkpoint: the writer adds and forgets them,
  /// readers copy a stream's.
  mutable std::mutex _unindexed_mutex;
  std::unordered_map<std::string, unindexed_runs, string_hash, std::equal_to<>> _unindexed;

  std::vector<written_group> _syncing;  ///< syncer only
  std::thread _syncer;     ///< started before the writer, stopped after it
  std::thread _writer;
};

/// The position and commit time of the last event in the log family `log` (0 and the epoch if
/// empty).
result<log_end> read_log_end(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* log) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions(), log));
  it->SeekToLast();
  if (!it->status().ok()) {
    return detail::to_error(it->status(), "journal: read head");
  }
  if (!it->Valid()) {
    return log_end{};
  }
  const auto position = detail::decode_be64(to_view(it->key()));
  if (!position) {
    return make_error(errc::corrupt, "log: malformed last key");
  }
  detail::record_reader record;
  if (auto opened = record.open(to_view(it->value()), *position); !opened) {
    return std::move(opened).err();
  }
  stored_event last;
  while (!record.done()) {
    if (auto read = record.next(last, record.next_position() == record.last_position()); !read) {
      return std::move(read).err();
    }
  }
  return log_end{record.last_position(), last.time};
}

}  // namespace

result<std::uint64_t> read_log_head(const std::string& db_dir) {
  const rocksdb::DBOptions options;
  std::vector<std::string> names;
  if (auto s = rocksdb::DB::ListColumnFamilies(options, db_dir, &names); !s.ok()) {
    return detail::to_error(s, "journal: open " + db_dir);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& name : names) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (auto s = rocksdb::DB::OpenForReadOnly(options, db_dir, families, &handles, &raw); !s.ok()) {
    return detail::to_error(s, "journal: open " + db_dir);
  }
  const std::unique_ptr<rocksdb::DB> db{raw};
  result<log_end> end = make_error(errc::corrupt, "journal: " + db_dir + " has no log");
  for (auto* handle : handles) {
    if (handle->GetName() == detail::log_family_name) {
      end = read_log_end(*db, handle);
    }
  }
  for (auto* handle : handles) {
    db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  if (!end) {
    return std::move(end).err();
  }
  return end->position;
}

result<std::unique_ptr<journal>> make_rocks_journal(rocks_store& store, const clock& clk,
                                                    rocks_journal_options options) {
  auto end = read_log_end(*store.db(), store.log_cf());
  if (!end) {
    return std::move(end).err();
  }
  {
    std::lock_guard lock(attached_mutex);
    if (!attached.insert(store.db()).second) {
      return make_error(errc::conflict, "journal: the store already has a journal (one writer per database)");
    }
  }
  auto j = std::make_unique<rocks_journal>(store, clk, options, *end);
  if (auto started = j->start(); !started) {
    return std::move(started).err();
  }
  return std::unique_ptr<journal>(std::move(j));
}

std::optional<rocks_journal_stats> rocks_journal_stats_of(const journal& j) {
  if (const auto* rocks = dynamic_cast<const rocks_journal*>(&j)) {
    return rocks->stats();
  }
  return std::nullopt;
}

}  // namespace prov::events
