#include "prov/projections/projector.hpp"
#include "prov/projections/views.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include "detail/keys.hpp"
#include "detail/usage_moves.hpp"
#include "detail/rocks_status.hpp"
#include "prov/core/log.hpp"
#include "prov/core/string_hash.hpp"
#include "prov/core/thread_name.hpp"
#include "prov/events/apply.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/codec.hpp"
#include "prov/events/tenant.hpp"

namespace prov::projections {

namespace {

/// How long the thread waits before retrying after a failed batch (storage error).
constexpr std::chrono::seconds retry_delay{1};

constexpr std::string_view request_category = "request";
constexpr std::string_view cluster_category = "cluster";
constexpr std::string_view tenant_category = "tenant";
constexpr std::string_view rule_category = "rule";
constexpr std::string_view webhook_category = "webhook";

rocksdb::Slice slice_of(std::string_view s) { return {s.data(), s.size()}; }

/// What a batch keeps of an aggregate's state before it: the whole state, except for a
/// request, of which what the store would hold of it is enough (its image: version, state,
/// usage bucket, cluster). A request's state is not copied to keep it unchanged beside the
/// one being folded (its largest aggregate, touched by every batch it is in flight).
template <class State>
struct before_of {
  using type = State;
};
template <>
struct before_of<events::request_state> {
  using type = stored_image;
};

/// An aggregate touched by a batch: its state (or image) before the batch and as folded so far.
template <class State>
struct cached_state {
  typename before_of<State>::type before;
  State after;
  bool changed = false;
  std::uint64_t first_change = 0;  ///< position of the first event that changed it
  bool left_unwritten = false;     ///< requests: the change stays unwritten (`unwritten_requests`)
};

/// The states one batch touched, and the order it first touched them in (so listeners and
/// writes follow the journal's order, deterministically).
///
/// A cleared cache keeps its entries' nodes (up to `spare_kept`), and the next batch's
/// entries reuse them: their ids and states are assigned over the buffers the node already
/// has, instead of each first touch allocating a node and two states' strings and vectors.
template <class State>
struct batch_cache {
  using map_type = std::unordered_map<std::string, cached_state<State>, string_hash, std::equal_to<>>;
  static constexpr std::size_t spare_kept = 1024;
  map_type states;
  std::vector<typename map_type::value_type*> touched;
  std::vector<typename map_type::node_type> spare;

  void clear() {
    touched.clear();
    while (!states.empty() && spare.size() < spare_kept) {
      spare.push_back(states.extract(states.begin()));
    }
    states.clear();
  }

  /// A new entry for `id` (not in the cache): `before` and `after` hold whatever an earlier
  /// batch left in the node, for the caller to overwrite; `changed` is false.
  cached_state<State>& add(std::string_view id) {
    typename map_type::iterator it;
    if (spare.empty()) {
      it = states.try_emplace(std::string{id}).first;
    } else {
      auto node = std::move(spare.back());
      spare.pop_back();
      node.key().assign(id);
      node.mapped().changed = false;
      node.mapped().first_change = 0;
      node.mapped().left_unwritten = false;
      it = states.insert(std::move(node)).position;
    }
    touched.push_back(&*it);
    return it->second;
  }

  const State* find_after(std::string_view id) const {
    const auto found = states.find(id);
    return found == states.end() ? nullptr : &found->second.after;
  }
};

/// The states of the last written batches that the next ones will likely touch again, so
/// that folding them reads no stored value: requests not at rest (bounded by the engine's
/// backpressure) and usage records (one per tenant and per cluster). Only ever holds written
/// states; bounded, past the bound a state is read from the store as before.
struct written_states {
  static constexpr std::size_t max_entries = 1 << 17;

  /// `taken` while a batch that took the state (`take`) is in flight: the slot is kept for
  /// the state it publishes. States move in and out by swapping, so their buffers go back
  /// and forth between the slots and the batches' cache entries instead of being reallocated.
  template <class State>
  struct slot {
    State state;
    bool taken = false;
  };
  template <class State>
  using map_of = std::unordered_map<std::string, slot<State>, string_hash, std::equal_to<>>;
  map_of<events::request_state> live_requests;
  map_of<tenant_usage> tenant_usages;
  map_of<cluster_usage> cluster_usages;

  /// Whether states of this kind are kept (clusters, tenants, rules and webhooks are not).
  template <class State>
  static constexpr bool kept = std::is_same_v<State, events::request_state> ||
                               std::is_same_v<State, tenant_usage> || std::is_same_v<State, cluster_usage>;

  template <class State>
  auto& map() {
    if constexpr (std::is_same_v<State, events::request_state>) {
      return live_requests;
    } else if constexpr (std::is_same_v<State, tenant_usage>) {
      return tenant_usages;
    } else {
      static_assert(std::is_same_v<State, cluster_usage>);
      return cluster_usages;
    }
  }

  /// Swaps the kept state of `id` into `out` (false, and `out` untouched: not kept, or taken
  /// by a batch not yet published). The batch that takes it publishes its successor with
  /// `keep`; a batch that is dropped (a failed write) leaves it to be read from the store,
  /// which holds the same.
  template <class State>
  bool take(std::string_view id, State& out) {
    if constexpr (!kept<State>) {
      return false;
    } else {
      auto& m = map<State>();
      const auto found = m.find(id);
      if (found == m.end() || found->second.taken) {
        return false;
      }
      std::swap(out, found->second.state);
      found->second.taken = true;
      return true;
    }
  }

  /// Keeps `state` as the newest of `id`, swapped in: `state` is left with what the slot
  /// held (a stale state's buffers, for its cache entry to reuse).
  template <class State>
  void keep(const std::string& id, State& state) {
    auto& m = map<State>();
    if (const auto found = m.find(id); found != m.end()) {
      std::swap(found->second.state, state);
      found->second.taken = false;
    } else if (m.size() < max_entries) {
      m.emplace(id, slot<State>{std::move(state), false});
    }
  }

  /// Keeps the states of a batch's usage records (taken by the batch, changed or not).
  template <class Usage>
  void keep_all(batch_cache<Usage>& cache) {
    for (auto* entry : cache.touched) {
      keep(entry->first, entry->second.changed ? entry->second.after : entry->second.before);
    }
  }

  void forget_request(std::string_view id) {
    if (const auto found = live_requests.find(id); found != live_requests.end()) {
      live_requests.erase(found);
    }
  }

  void clear() {
    live_requests.clear();
    tenant_usages.clear();
    cluster_usages.clear();
  }
};

/// A webhook delivery record folded in a batch: record `number` of webhook `webhook`, the
/// attempt event's payload (binary, schema version 1).
struct webhook_delivery_record {
  std::string webhook;
  std::uint64_t number = 0;
  std::string payload;
};

/// A write of a batch: its key and value are ranges of the batch's arena.
struct pending_write {
  std::size_t key_at;
  std::size_t key_size;
  std::size_t value_at;
  std::size_t value_size;
  bool erase;
};

/// One batch: the events it folded (positions `first`..`last`), the states they touched, and
/// the RocksDB batch that writes them. Two of these alternate so that one batch can be folded
/// while the previous one is written.
struct batch {
  std::uint64_t first = 0;  ///< position of the first event to fold
  std::uint64_t last = 0;   ///< position of the last event folded (first - 1 if none)
  std::optional<error> failure;  ///< a storage error that ended the fold early
  batch_cache<events::request_state> requests;
  batch_cache<events::cluster_state> clusters;
  batch_cache<events::tenant_state> tenants;
  batch_cache<events::rule_state> rules;
  batch_cache<events::webhook_state> webhooks;
  std::vector<webhook_delivery_record> webhook_deliveries;
  batch_cache<tenant_usage> tenant_usages;
  batch_cache<cluster_usage> cluster_usages;
  std::string arena;  ///< keys and values of `writes`
  std::vector<pending_write> writes;
  rocksdb::WriteBatch write_batch;

  /// Whether request states may be left unwritten (`unwritten_requests`): only by the
  /// running thread, and only for a batch written and published before the next is built.
  bool may_defer = false;
  /// Request states this batch leaves unwritten (in its cache; a new one with its image), ...
  std::vector<unwritten_requests::put_item> unwritten_puts;
  /// ... those of them that were written before it (with the first position they lack) ...
  std::vector<std::pair<std::string_view, std::uint64_t>> newly_unwritten;
  /// ... and the unwritten states it writes: changed in it, or overdue (`overdue`).
  std::vector<std::string_view> unwritten_erases;
  std::unordered_set<std::string_view> erased;
  std::vector<std::string_view> overdue;
  /// Every unwritten state is overdue (the thread is ending).
  bool write_all_unwritten = false;

  void reset(std::uint64_t from) {
    first = from;
    last = from - 1;
    failure.reset();
    requests.clear();
    clusters.clear();
    tenants.clear();
    rules.clear();
    webhooks.clear();
    webhook_deliveries.clear();
    tenant_usages.clear();
    cluster_usages.clear();
    may_defer = false;
    unwritten_puts.clear();
    newly_unwritten.clear();
    unwritten_erases.clear();
    erased.clear();
    overdue.clear();
    write_all_unwritten = false;
  }

  std::uint64_t consumed() const noexcept { return last + 1 - first; }

  template <class State>
  batch_cache<State>& cache() {
    if constexpr (std::is_same_v<State, events::request_state>) {
      return requests;
    } else if constexpr (std::is_same_v<State, events::cluster_state>) {
      return clusters;
    } else if constexpr (std::is_same_v<State, events::tenant_state>) {
      return tenants;
    } else if constexpr (std::is_same_v<State, events::rule_state>) {
      return rules;
    } else if constexpr (std::is_same_v<State, events::webhook_state>) {
      return webhooks;
    } else if constexpr (std::is_same_v<State, tenant_usage>) {
      return tenant_usages;
    } else {
      static_assert(std::is_same_v<State, cluster_usage>);
      return cluster_usages;
    }
  }

  template <class State>
  const batch_cache<State>& cache() const {
    return const_cast<batch*>(this)->cache<State>();
  }
};

/// What the journal's commit listener shares with the projector's thread. Owned jointly by
/// the listener (which cannot be unregistered) and the projector, so a journal that outlives
/// the projector only signals an orphan.
struct commit_signal {
  std::mutex mutex;
  std::condition_variable cv;
  std::uint64_t head = 0;  ///< highest head any commit reported
  bool stop = false;
  /// Once `stop`: the journal's head when the stop was asked for. The thread applies up to it
  /// first, so that everyone waiting on a committed position (a submit's answer) is answered.
  std::uint64_t stop_at = 0;
};

/// One job at a time on a helper thread, started on first use and kept for the owner's life:
/// with a new thread per job, memtable inserts measured several times slower (RocksDB keeps
/// per-thread state for them).
class helper_thread {
 public:
  explicit helper_thread(const char* name) : _name(name) {}
  ~helper_thread() {
    {
      std::lock_guard lock(_mutex);
      _stopping = true;
    }
    _cv.notify_all();
    if (_thread.joinable()) {
      _thread.join();
    }
  }
  helper_thread(const helper_thread&) = delete;
  helper_thread& operator=(const helper_thread&) = delete;

  /// Runs `job` on the thread; false if no thread could be started (nothing runs then). At
  /// most one job at a time: `wait` for it before the next.
  bool run(std::function<void()> job) {
    if (!_thread.joinable()) {
      try {
        _thread = std::thread([this] { loop(); });
      } catch (const std::exception&) {
        return false;
      }
    }
    {
      std::lock_guard lock(_mutex);
      _job = std::move(job);
      _done = false;
    }
    _cv.notify_all();
    return true;
  }

  /// Waits until the job handed to `run` has finished.
  void wait() {
    std::unique_lock lock(_mutex);
    _cv.wait(lock, [this] { return _done; });
  }

 private:
  void loop() {
    name_this_thread(_name);
    std::unique_lock lock(_mutex);
    while (true) {
      _cv.wait(lock, [this] { return _stopping || _job; });
      if (!_job) {
        return;  // stopping with nothing to do
      }
      auto job = std::exchange(_job, nullptr);
      lock.unlock();
      job();
      lock.lock();
      _done = true;
      _cv.notify_all();
    }
  }

  std::mutex _mutex;
  std::condition_variable _cv;
  std::function<void()> _job;
  bool _done = true;
  bool _stopping = false;
  const char* _name;
  std::thread _thread;
};

/// Writes one batch at a time on a helper thread while the projector folds the next.
class batch_writer {
 public:
  explicit batch_writer(std::function<rocksdb::Status(batch&)> write) : _write(std::move(write)) {}

  /// Hands `b` to the thread; false if no thread could be started. At most one batch is in
  /// flight: call `wait` before the next `submit`.
  bool submit(batch& b) {
    return _helper.run([this, &b] { _outcome = _write(b); });
  }

  /// The outcome of the submitted batch's write, once it is done.
  rocksdb::Status wait() {
    _helper.wait();
    return std::move(_outcome);
  }

 private:
  std::function<rocksdb::Status(batch&)> _write;
  rocksdb::Status _outcome;
  helper_thread _helper{"prov.proj-write"};  ///< declared last: its thread stops first
};

/// Reads the journal ahead of the fold while the projector catches up on a long backlog (a
/// rebuild, or a start after a crash): the next batch's events are read and decoded on a
/// helper thread while this one is folded. Two buffers alternate, their events reused from
/// batch to batch. The thread is started on first use only: a projector that keeps up with
/// the journal reads its short tails itself.
class read_ahead {
 public:
  /// A read's events: `events[0, count)` from position `first`.
  struct chunk {
    std::uint64_t first = 0;
    std::size_t count = 0;
    std::vector<events::stored_event> events;
    status outcome;
  };

  explicit read_ahead(const events::journal& j) : _journal(j) {}

  /// Up to `max` events from `from`: the read started ahead if it began there, else read now.
  chunk& get(std::uint64_t from, std::size_t max) {
    if (auto* ahead = wait(); ahead != nullptr && ahead->first == from && ahead->outcome.ok()) {
      _current = ahead;
      return *ahead;
    }
    _current = &_chunks[0];
    read(*_current, from, max);
    return *_current;
  }

  /// Starts reading up to `max` events from `from` into the buffer `get` did not return;
  /// false if no thread could be started (the next `get` then reads itself).
  bool start(std::uint64_t from, std::size_t max) {
    auto* job = _current == &_chunks[0] ? &_chunks[1] : &_chunks[0];
    if (!_helper.run([this, job, from, max] { read(*job, from, max); })) {
      return false;
    }
    _ahead = job;
    return true;
  }

 private:
  void read(chunk& c, std::uint64_t from, std::size_t max) {
    c.first = from;
    c.count = 0;
    auto visited = _journal.read_all(from, max, [&c](const events::stored_event& e) {
      if (c.count == c.events.size()) {
        c.events.push_back(e);
      } else {
        c.events[c.count] = e;  // reuses the strings' memory
      }
      ++c.count;
    });
    c.outcome = visited ? status{} : status{std::move(visited).err()};
  }

  /// The read started ahead, once it is done (null if none).
  chunk* wait() {
    if (_ahead == nullptr) {
      return nullptr;
    }
    _helper.wait();
    return std::exchange(_ahead, nullptr);
  }

  const events::journal& _journal;
  std::array<chunk, 2> _chunks;
  chunk* _current = nullptr;  ///< what `get` returned last
  chunk* _ahead = nullptr;    ///< being read (or read) by the helper, not yet taken
  helper_thread _helper{"prov.proj-read"};  ///< declared last: its thread stops first
};

/// Runs a callback; an exception is logged, never allowed to end the projector's thread.
template <class F>
void guarded(std::string_view what, F&& f) {
  try {
    f();
  } catch (const std::exception& ex) {
    log::error("projector: callback threw", {{"callback", what}, {"error", ex.what()}});
  } catch (...) {
    log::error("projector: callback threw", {{"callback", what}});
  }
}

}  // namespace

struct projector::impl {
  impl(events::rocks_store& s, events::journal& j, projector_options o)
      : store(s), journal(j), options(o), signal(std::make_shared<commit_signal>()) {
    options.max_batch_events = std::max<std::size_t>(options.max_batch_events, 1);
    position.store(load_position());
    head_at_open = journal.head();
    // Registered before anyone reads the head, so no commit after that read goes unnoticed.
    // Only records the head and wakes the thread: it runs on the journal's writer.
    journal.on_commit([signal = signal](std::uint64_t head) {
      {
        std::lock_guard lock(signal->mutex);
        signal->head = std::max(signal->head, head);
      }
      signal->cv.notify_one();
    });
  }

  events::rocks_store& store;
  events::journal& journal;
  projector_options options;
  std::shared_ptr<commit_signal> signal;

  std::atomic<std::uint64_t> position{0};
  std::atomic<std::uint64_t> skipped{0};
  std::atomic<std::uint64_t> catalog_generation{0};

  std::vector<request_listener> request_listeners;
  std::vector<cluster_listener> cluster_listeners;

  /// Guards `waiters` and every store to `position`, so a waiter is either registered before
  /// the batch that reaches it resolves waiters, or sees that batch's position and runs at once.
  std::mutex waiters_mutex;
  std::multimap<std::uint64_t, std::function<void()>> waiters;

  std::thread thread;
  std::atomic<bool> running{false};

  /// The two alternating batches, kept to reuse their memory.
  std::array<batch, 2> batches;
  /// The batch folded before the current one while it may still be unwritten: states missing
  /// from the current batch are looked up there before the store.
  const batch* previous = nullptr;
  /// States of published batches that later ones are likely to touch again.
  written_states written;
  /// Request states applied and not written (read by `views`), and where each one's oldest
  /// unwritten change is in the journal: the stored position stays before the oldest.
  unwritten_requests unwritten;
  struct {
    std::unordered_map<std::string, std::uint64_t, string_hash, std::equal_to<>> since;
    std::map<std::uint64_t, std::string> by_since;
  } deferred;
  /// True while the thread runs: only its batches leave states unwritten.
  bool deferring = false;
  std::string key;  ///< scratch for building keys
  /// True while `rebuild` replays into the cleared column family: no stream's first event
  /// needs a read of a stored state then (see `new_stream`).
  bool replaying_from_empty = false;
  /// The journal's head when this projector was made. A stream whose first event lies after
  /// it was never written to the store (only this projector writes it, after folding that
  /// event), so its first event needs no read of a stored state; before it, a replay after a
  /// crash may meet the first event of a stream stored since.
  std::uint64_t head_at_open = 0;
  /// Reads the next batch's events while one is folded.
  read_ahead reader{journal};
  /// Writes full batches while the next is folded. Declared last: its thread stops first.
  batch_writer writer{[this](batch& b) { return write(b); }};

  // -------------------------------------------------------------------------------------------
  // Folding

  std::uint64_t load_position() {
    rocksdb::PinnableSlice v;
    const auto s = store.db()->Get(rocksdb::ReadOptions{}, store.projections_cf(), slice_of(detail::position_key), &v);
    if (s.IsNotFound()) {
      return 0;
    }
    if (!s.ok() || v.size() != 8) {
      // Starting from 0 re-reads the journal; states that already hold an event skip it.
      log::error("projector: cannot read the stored position, starting from 0",
                 {{"error", s.ok() ? std::string{"malformed value"} : s.ToString()}});
      return 0;
    }
    return detail::read_be64({v.data(), v.size()});
  }

  /// Whether the stored projections are in this build's key layout (`detail::layout_key`). A
  /// store that has projected nothing yet is marked as such.
  result<bool> layout_current() {
    rocksdb::PinnableSlice v;
    const auto s = store.db()->Get(rocksdb::ReadOptions{}, store.projections_cf(), slice_of(detail::layout_key), &v);
    if (s.ok()) {
      return std::string_view{v.data(), v.size()} == detail::layout_version;
    }
    if (!s.IsNotFound()) {
      return detail::to_error(s, "projector: read the layout version");
    }
    if (position.load() != 0) {
      return false;  // projected before the layout was recorded: layout 1
    }
    if (auto marked = mark_layout(); !marked) {
      return std::move(marked).err();
    }
    return true;
  }

  status mark_layout() {
    return detail::to_status(store.db()->Put(rocksdb::WriteOptions{}, store.projections_cf(), slice_of(detail::layout_key),
                                             slice_of(detail::layout_version)),
                             "projector: write the layout version");
  }

  void skip(const events::stored_event& e, const error& why) {
    skipped.fetch_add(1, std::memory_order_relaxed);
    // Never the payload: only where the event is and why it did not fit.
    log::error("projector: event skipped", {{"stream", e.stream},
                                            {"sequence", e.sequence},
                                            {"position", e.position},
                                            {"type_id", e.type_id},
                                            {"code", std::string{to_string(why.code)}},
                                            {"error", why.message}});
  }

  /// The cached state of `id` in batch `b`, on first touch taken from the previous batch or
  /// loaded from "<prefix><id>" (absent: a new aggregate). `known_new`: nothing can be stored
  /// of it (see `new_stream`).
  template <class State>
  cached_state<State>* touch(batch& b, std::string_view prefix, std::string_view id, bool known_new) {
    auto& cache = b.cache<State>();
    if (const auto found = cache.states.find(id); found != cache.states.end()) {
      return &found->second;
    }
    // The batch being written holds the newest state and keeps it (it publishes it); a state
    // kept from a published batch moves here, and this batch's publish puts it back.
    const State* earlier = previous != nullptr ? previous->cache<State>().find_after(id) : nullptr;
    auto& entry = cache.add(id);
    constexpr bool image_only = !std::is_same_v<typename before_of<State>::type, State>;
    // Whole states keep the state before in `before` and fold a copy; a request folds its
    // state in place and keeps only the image of it.
    State* loaded = nullptr;
    if constexpr (image_only) {
      loaded = &entry.after;
    } else {
      loaded = &entry.before;
    }
    if (earlier != nullptr) {
      *loaded = *earlier;
    } else if (!written.take(id, *loaded)) {
      if (const auto* state = unwritten_state<State>(id)) {
        *loaded = *state;
      } else if (known_new) {
        *loaded = empty_state<State>();
      } else if (auto read = read_state<State>(prefix, id, *loaded); !read) {
        b.failure = std::move(read).err();
        drop_last(cache);
        return nullptr;
      }
    }
    if constexpr (image_only) {
      entry.before = image_of(entry.after);
    } else {
      entry.after = entry.before;
    }
    return &entry;
  }

  /// The unwritten state of request `id` (null: none, or not a request).
  template <class State>
  const State* unwritten_state(std::string_view id) const {
    if constexpr (std::is_same_v<State, events::request_state>) {
      const auto* e = unwritten.peek(id);
      return e != nullptr ? &e->state : nullptr;
    } else {
      return nullptr;
    }
  }

  /// Reads the stored state "<prefix><id>" into `out` (absent: an empty state).
  template <class State>
  status read_state(std::string_view prefix, std::string_view id, State& out) {
    rocksdb::PinnableSlice v;
    const auto s = store.db()->Get(rocksdb::ReadOptions{}, store.projections_cf(), detail::make_key(key, prefix, id), &v);
    if (s.IsNotFound()) {
      out = empty_state<State>();
      return {};
    }
    if (!s.ok()) {
      return detail::to_error(s, "projector: read " + key);
    }
    auto decoded = events::decode_binary<State>({v.data(), v.size()});
    if (!decoded) {
      return make_error(errc::corrupt, "projector: stored state " + key + " is malformed (rebuild the projections)");
    }
    out = std::move(*decoded);
    return {};
  }

  /// A state as before its first event, assigned over an entry's old buffers.
  template <class State>
  static const State& empty_state() {
    static const State empty{};
    return empty;
  }

  /// Forgets the entry just added to `cache`, whose state could not be read.
  template <class State>
  static void drop_last(batch_cache<State>& cache) {
    const auto found = cache.states.find(std::string_view{cache.touched.back()->first});
    cache.touched.pop_back();
    cache.states.erase(found);
  }

  /// Whether `e` starts a stream nothing can be stored of: during a rebuild (nothing is stored
  /// since the clear but what it wrote, and a stream's first event comes before its others),
  /// or after the head this projector was made at.
  bool new_stream(const events::stored_event& e) const {
    return e.sequence == 1 && (replaying_from_empty || e.position > head_at_open);
  }

  /// Folds one event into its aggregate's cached state.
  template <class State, auto Narrow>
  void fold(batch& b, std::string_view prefix, const events::stored_event& e) {
    auto* entry = touch<State>(b, prefix, events::stream_key(e.stream), new_stream(e));
    if (entry == nullptr) {
      return;
    }
    auto& state = entry->after;
    if (e.sequence <= state.version) {
      return;  // already applied
    }
    auto any = events::decode(e);
    if (!any) {
      skip(e, any.err());
      return;
    }
    auto event = Narrow(std::move(*any));
    if (!event) {
      skip(e, make_error(errc::corrupt, "event " + std::string{events::type_name(e.type_id)} +
                                            " belongs to another aggregate"));
      return;
    }
    // A gap left by a skipped event is bridged, so one bad event does not freeze the view.
    const auto version = state.version;
    if (state.exists() && e.sequence > version + 1) {
      state.version = e.sequence - 1;
    }
    if (auto applied = events::apply_to(state, std::move(*event), events::event_meta{e.sequence, e.time}); !applied) {
      state.version = version;
      skip(e, applied.err());
      return;
    }
    if (!entry->changed) {
      entry->first_change = e.position;
    }
    entry->changed = true;
  }

  /// Folds a webhook event; an applied delivery attempt also becomes a delivery record.
  void fold_webhook(batch& b, const events::stored_event& e) {
    const auto id = events::stream_key(e.stream);
    auto* entry = touch<events::webhook_state>(b, detail::webhook_prefix, id, e.sequence == 1);
    if (entry == nullptr) {
      return;
    }
    const auto records = entry->after.attempts;
    fold<events::webhook_state, events::as_webhook_event>(b, detail::webhook_prefix, e);
    if (entry->after.attempts > records) {
      b.webhook_deliveries.push_back(webhook_delivery_record{std::string{id}, entry->after.attempts, e.payload});
    }
  }

  void visit(batch& b, const events::stored_event& e) {
    if (b.failure) {
      return;  // the rest waits for the next batch
    }
    const auto category = events::stream_category(e.stream);
    if (category == request_category) {
      fold<events::request_state, events::as_request_event>(b, detail::request_prefix, e);
    } else if (category == cluster_category) {
      fold<events::cluster_state, events::as_cluster_event>(b, detail::cluster_prefix, e);
    } else if (category == tenant_category) {
      fold<events::tenant_state, events::as_tenant_event>(b, detail::tenant_prefix, e);
    } else if (category == rule_category) {
      fold<events::rule_state, events::as_rule_event>(b, detail::rule_prefix, e);
    } else if (category == webhook_category) {
      fold_webhook(b, e);
    }
    // Other categories (idempotency claims) have no read model.
    if (!b.failure) {
      b.last = e.position;
    }
  }

  /// Reads up to a batch of events from `from` and folds them into `b`. With more than a
  /// batch to go before `target`, the next batch is read ahead while this one is folded.
  status fold_batch(batch& b, std::uint64_t from, std::uint64_t target) {
    b.reset(from);
    const auto max = options.max_batch_events;
    auto& read = reader.get(from, max);
    if (!read.outcome) {
      return read.outcome;
    }
    const auto next = from + read.count;
    if (read.count == max && next <= target) {
      reader.start(next, static_cast<std::size_t>(std::min<std::uint64_t>(max, target - next + 1)));
    }
    for (std::size_t i = 0; i < read.count; ++i) {
      visit(b, read.events[i]);
    }
    return {};
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  static void add_put(batch& b, std::string_view k, std::string_view v) {
    const auto key_at = b.arena.size();
    b.arena.append(k);
    const auto value_at = b.arena.size();
    b.arena.append(v);
    b.writes.push_back({key_at, k.size(), value_at, v.size(), false});
  }

  static void add_delete(batch& b, std::string_view k) {
    const auto key_at = b.arena.size();
    b.arena.append(k);
    b.writes.push_back({key_at, k.size(), b.arena.size(), 0, true});
  }

  /// Puts "<prefix><id>" -> the binary encoding of `state`, encoded straight into the arena.
  static void add_state(batch& b, std::string_view prefix, std::string_view id, const auto& state) {
    const auto key_at = b.arena.size();
    b.arena.append(prefix).append(id);
    const auto value_at = b.arena.size();
    events::encode_binary(state, b.arena);
    b.writes.push_back({key_at, value_at - key_at, value_at, b.arena.size() - value_at, false});
  }

  /// "x/s/<state><inv><id>", or by tenant "x/u/<tenant>\0<state><inv><id>", into `key`: the
  /// entry of request `r` (its tenant and creation time) in `state`.
  const std::string& state_index_key(const events::request_state& r, events::lifecycle_state state, std::string_view id,
                                     bool by_tenant) {
    key.clear();
    detail::append_index_prefix(key, by_tenant ? std::optional<std::string_view>{r.tenant} : std::nullopt, state);
    detail::append_index_suffix(key, r, id);
    return key;
  }

  /// Which changed requests of `b` stay unwritten (`leave_unwritten`), and which unwritten
  /// ones `b` writes: those it changes otherwise, and the overdue ones (`max_deferred_events`
  /// old, or all of them when the thread ends). Decided before the usage is derived: only
  /// written changes move usage.
  void decide_unwritten(batch& b) {
    for (auto* entry : b.requests.touched) {
      auto& c = entry->second;
      if (!c.changed) {
        continue;
      }
      const std::string_view id = entry->first;
      c.left_unwritten = leave_unwritten(b, id, c);
      if (!c.left_unwritten && is_unwritten(id)) {
        b.unwritten_erases.push_back(id);
        b.erased.insert(id);
      }
    }
    for (const auto& [since, id] : deferred.by_since) {
      if (!b.write_all_unwritten && b.last - since < options.max_deferred_events) {
        break;
      }
      if (b.erased.contains(id) || !is_unwritten(id)) {
        continue;
      }
      b.overdue.push_back(id);
      b.unwritten_erases.push_back(id);
      b.erased.insert(id);
    }
  }

  /// Whether request `id` is unwritten for `b`: the batch being written (`previous`) may be
  /// writing it already.
  bool is_unwritten(std::string_view id) const {
    return deferred.since.contains(id) && (previous == nullptr || !previous->erased.contains(id));
  }

  static stored_image image_of(const events::request_state& stored) {
    return stored_image{stored.version, stored.state, bucket_of(stored), stored.cluster};
  }

  /// The requests `b` writes (the changes it does not leave unwritten, and the overdue
  /// states), each from what the store holds of it (its stored image if it is unwritten,
  /// else the state before the change): their views, their index entries, and their moves
  /// between the usage records of their tenant and cluster (R-4.1 quota usage, R-4.3
  /// capacity). Unwritten changes move nothing yet, so the stored index entries and usage
  /// records always agree with the stored views (a replay from the stored position moves each
  /// change once).
  void write_requests(batch& b) {
    for (auto* entry : b.requests.touched) {
      const auto& c = entry->second;
      if (!c.changed || c.left_unwritten) {
        continue;
      }
      const std::string_view id = entry->first;
      if (is_unwritten(id)) {
        write_request(b, id, unwritten.peek(id)->stored, c.after);
      } else {
        write_request(b, id, c.before, c.after);
      }
    }
    for (const auto id : b.overdue) {
      const auto* e = unwritten.peek(id);
      write_request(b, id, e->stored, e->state);
    }
  }

  /// Writes request `id` as `after`, the store holding `stored` of it (see `write_requests`).
  void write_request(batch& b, std::string_view id, const stored_image& stored, const events::request_state& after) {
    const auto usage_record = [&](auto* entry) -> decltype(&entry->after) {
      if (entry == nullptr) {
        return nullptr;  // not readable: `b.failure` says why
      }
      entry->changed = true;
      return &entry->after;
    };
    detail::move_request_usage(
        stored, after, [&] { return usage_record(touch<tenant_usage>(b, detail::tenant_usage_prefix, after.tenant, false)); },
        [&](const std::string& cluster) {
          return usage_record(touch<cluster_usage>(b, detail::cluster_usage_prefix, cluster, false));
        });
    add_state(b, detail::request_prefix, id, after);
    const bool exists = stored.version != 0;
    // The active states (queued and the steps) share one index entry: moving between them
    // changes none.
    if (!exists || detail::index_bucket(stored.state) != detail::index_bucket(after.state)) {
      if (exists) {
        add_delete(b, state_index_key(after, stored.state, id, false));
        add_delete(b, state_index_key(after, stored.state, id, true));
      }
      add_put(b, state_index_key(after, after.state, id, false), {});
      add_put(b, state_index_key(after, after.state, id, true), {});
    }
  }

  /// Whether the change of request `id` in `b` is left unwritten: the request is not at rest
  /// (its change to rest is always written), and its oldest unwritten change is less than
  /// `max_deferred_events` old. A new one records what the store holds of it.
  bool leave_unwritten(batch& b, std::string_view id, const cached_state<events::request_state>& c) {
    if (!b.may_defer || events::is_at_rest(c.after.state)) {
      return false;
    }
    const auto found = deferred.since.find(id);
    const auto since = found != deferred.since.end() ? found->second : c.first_change;
    if (b.last - since >= options.max_deferred_events) {
      return false;
    }
    std::optional<stored_image> image;
    if (found == deferred.since.end()) {
      b.newly_unwritten.emplace_back(id, since);
      image = c.before;
    }
    b.unwritten_puts.push_back({id, &c.after, std::move(image)});
    return true;
  }

  /// The position stored with `b`: its last, or just before the oldest change that stays
  /// unwritten after it (a restart replays from there; changes already stored are skipped).
  std::uint64_t stored_position(const batch& b) const {
    auto stored = b.last;
    for (const auto& [since, id] : deferred.by_since) {
      if (!b.erased.contains(id)) {
        stored = std::min(stored, since - 1);
        break;
      }
    }
    for (const auto& [id, since] : b.newly_unwritten) {
      stored = std::min(stored, since - 1);
    }
    return stored;
  }

  template <class State>
  static bool any_changed(const batch_cache<State>& cache) {
    return std::any_of(cache.touched.begin(), cache.touched.end(), [](const auto* entry) { return entry->second.changed; });
  }

  /// After `b` is written: its unwritten states become readable, the ones it wrote are
  /// read from the store again.
  void publish_unwritten(batch& b) {
    if (b.unwritten_puts.empty() && b.unwritten_erases.empty()) {
      return;
    }
    unwritten.update(b.unwritten_puts, b.unwritten_erases);
    for (const auto id : b.unwritten_erases) {
      // `id` may be the key of `by_since` itself: erased last.
      if (const auto found = deferred.since.find(id); found != deferred.since.end()) {
        const auto since = found->second;
        deferred.since.erase(found);
        deferred.by_since.erase(since);
      }
    }
    for (const auto& [id, since] : b.newly_unwritten) {
      deferred.since.emplace(std::string{id}, since);
      deferred.by_since.emplace(since, std::string{id});
    }
  }

  template <class State>
  void collect_changed(batch& b, std::string_view prefix) {
    for (auto* entry : b.cache<State>().touched) {
      if (entry->second.changed) {
        add_state(b, prefix, entry->first, entry->second.after);
      }
    }
  }

  void collect_clusters(batch& b) {
    for (auto* entry : b.clusters.touched) {
      if (entry->second.changed) {
        add_state(b, detail::cluster_prefix, entry->first, entry->second.after);
      }
    }
  }

  /// Webhook states, and their delivery records: the newest `webhook_deliveries_kept` of a
  /// webhook are kept ("wd/<id>\0<n>"), older ones deleted, all of them once it is deleted.
  /// Decided from each webhook's state before and after the batch, so no key is both written
  /// and deleted in one batch.
  void collect_webhooks(batch& b) {
    constexpr auto kept = detail::webhook_deliveries_kept;
    for (auto* entry : b.webhooks.touched) {
      const auto& c = entry->second;
      if (!c.changed) {
        continue;
      }
      add_state(b, detail::webhook_prefix, entry->first, c.after);
      if (c.before.deleted) {
        continue;  // its records are gone already
      }
      const auto before = c.before.attempts;
      const auto first_kept = before > kept ? before - kept + 1 : 1;
      const auto last_gone = c.after.deleted ? before : std::min(before, c.after.attempts > kept ? c.after.attempts - kept : 0);
      for (auto n = first_kept; n <= last_gone; ++n) {
        add_delete(b, detail::webhook_delivery_key(entry->first, n));
      }
    }
    for (const auto& d : b.webhook_deliveries) {
      const auto* after = b.webhooks.find_after(d.webhook);
      if (after == nullptr || after->deleted || d.number + kept <= after->attempts) {
        continue;  // deleted, or already out of the window at the end of this batch
      }
      add_put(b, detail::webhook_delivery_key(d.webhook, d.number), d.payload);
    }
  }

  void collect_tenants(batch& b) {
    for (auto* entry : b.tenants.touched) {
      const auto& c = entry->second;
      if (!c.changed) {
        continue;
      }
      add_state(b, detail::tenant_prefix, entry->first, c.after);
      if (c.before.token_sha256 != c.after.token_sha256) {
        if (!c.before.token_sha256.empty()) {
          add_delete(b, detail::make_key(key, detail::token_prefix, c.before.token_sha256));
        }
        if (!c.after.token_sha256.empty()) {
          add_put(b, detail::make_key(key, detail::token_prefix, c.after.token_sha256), entry->first);
        }
      }
    }
  }

  /// Fills `b.write_batch` with the batch's changes and its position. The writes are sorted
  /// by key: the memtable inserts them much faster in order (its skip list reuses the previous
  /// insert's search path). No key is written twice in a batch, so the order does not change
  /// the result.
  status build(batch& b) {
    b.arena.clear();
    b.writes.clear();
    const bool fold_failed = b.failure.has_value();
    decide_unwritten(b);
    write_requests(b);
    if (!fold_failed && b.failure) {
      return *b.failure;  // a usage record could not be read: nothing of this batch is written
    }
    collect_clusters(b);
    collect_tenants(b);
    collect_changed<events::rule_state>(b, detail::rule_prefix);
    collect_webhooks(b);
    collect_changed<tenant_usage>(b, detail::tenant_usage_prefix);
    collect_changed<cluster_usage>(b, detail::cluster_usage_prefix);
    return finish_write_batch(b, stored_position(b));
  }

  /// Adds the position to store with `b`'s writes, and fills `b.write_batch` with them, sorted
  /// by key (see `build`).
  status finish_write_batch(batch& b, std::uint64_t stored) {
    key.clear();
    detail::append_be64(key, stored);
    add_put(b, detail::position_key, key);
    const char* arena = b.arena.data();
    std::sort(b.writes.begin(), b.writes.end(), [arena](const pending_write& x, const pending_write& y) {
      return std::string_view{arena + x.key_at, x.key_size} < std::string_view{arena + y.key_at, y.key_size};
    });

    b.write_batch.Clear();
    auto* cf = store.projections_cf();
    for (const auto& w : b.writes) {
      const rocksdb::Slice k{arena + w.key_at, w.key_size};
      const rocksdb::Slice v{arena + w.value_at, w.value_size};
      const auto s = w.erase ? b.write_batch.Delete(cf, k) : b.write_batch.Put(cf, k, v);
      if (!s.ok()) {
        return detail::to_error(s, "projector: build a write batch");
      }
    }
    return {};
  }

  /// Writes a built batch: states, indexes and position together, atomically.
  rocksdb::Status write(batch& b) {
    rocksdb::WriteOptions options;
    // The read models are rebuildable from the journal, so they skip the WAL: the journal's
    // group commits no longer queue behind them for the log file, and their fsyncs no longer
    // carry them (+25-30 % requests/s). Each batch carries its position and a memtable only
    // ever holds whole batches, so a crash leaves a consistent prefix on disk, and `catch_up`
    // (run by `engine::open` before anything is served) replays the journal from there. A
    // rebuild flushes at its end; a clean shutdown flushes every memtable.
    options.disableWAL = true;
    return store.db()->Write(options, &b.write_batch);
  }

  /// After a batch is written: the new position, the listeners, then the waiters it reaches.
  /// The batch's request states move to `written` (no later batch may read them from `b`).
  void publish(batch& b) {
    publish_unwritten(b);  // before the states move to `written`, and before the position
    if (any_changed(b.tenants) || any_changed(b.rules)) {
      catalog_generation.fetch_add(1, std::memory_order_release);
    }
    const auto reached = b.last;
    written.keep_all(b.tenant_usages);
    written.keep_all(b.cluster_usages);
    {
      std::lock_guard lock(waiters_mutex);
      position.store(reached);
    }
    for (auto* entry : b.requests.touched) {
      if (!entry->second.changed) {
        // Taken from `written` (if it was kept there), and still what the store holds.
        if (entry->second.after.exists() && !events::is_at_rest(entry->second.after.state)) {
          written.keep(entry->first, entry->second.after);
        }
        continue;
      }
      const request_before before{entry->second.before.version, entry->second.before.state};
      for (const auto& listener : request_listeners) {
        guarded("request listener", [&] { listener(before, entry->second.after); });
      }
      if (events::is_at_rest(entry->second.after.state)) {
        written.forget_request(entry->first);
      } else {
        written.keep(entry->first, entry->second.after);
      }
    }
    if (!cluster_listeners.empty()) {
      for (const auto* entry : b.clusters.touched) {
        if (entry->second.changed) {
          for (const auto& listener : cluster_listeners) {
            guarded("cluster listener", [&] { listener(entry->second.after); });
          }
        }
      }
    }
    std::vector<std::function<void()>> ready;
    {
      std::lock_guard lock(waiters_mutex);
      const auto end = waiters.upper_bound(reached);
      for (auto it = waiters.begin(); it != end; ++it) {
        ready.push_back(std::move(it->second));
      }
      waiters.erase(waiters.begin(), end);
    }
    for (auto& done : ready) {
      guarded("when_applied callback", done);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Driving

  /// Applies batches until the position reaches `target`, the journal has nothing more, or
  /// `stop` says so (checked between batches).
  ///
  /// Two batches overlap: while a full batch is written on a helper thread, the next one is
  /// folded here (looking up states the written one holds in its cache, not in the store);
  /// it is built only after, and published only once the previous write succeeded. A batch
  /// that is not full (the journal's tail) is written here directly, so the steady state
  /// creates no threads. Listeners and waiters always run on this thread.
  template <class Stop>
  status advance_to(std::uint64_t target, const Stop& stop) {
    batch* pending = nullptr;  // the batch `writer` is writing
    std::size_t next = 0;
    std::uint64_t from = position.load() + 1;
    status outcome;
    previous = nullptr;

    // Waits for the write in flight and publishes its batch.
    const auto finish_pending = [&]() -> status {
      if (pending == nullptr) {
        return {};
      }
      const auto s = writer.wait();
      auto* done = std::exchange(pending, nullptr);
      if (!s.ok()) {
        previous = nullptr;  // its states were not written
        return detail::to_error(s, "projector: write batch");
      }
      publish(*done);
      return {};
    };

    while (from <= target && !stop()) {
      batch& b = batches[next];
      next ^= 1;
      if (auto folded = fold_batch(b, from, target); !folded) {
        outcome = std::move(folded).err();
        break;
      }
      const bool pipelined = b.consumed() == options.max_batch_events && !b.failure && b.last < target;
      b.may_defer = deferring && previous == nullptr && !pipelined;
      if (b.consumed() > 0) {
        if (auto built = build(b); !built) {
          outcome = std::move(built).err();
          break;
        }
      }
      if (auto finished = finish_pending(); !finished) {
        outcome = std::move(finished).err();
        break;  // `b` was folded on unwritten states: dropped
      }
      if (b.consumed() == 0) {
        if (!b.failure) {
          outcome = make_error(errc::io_error, "projector: the journal returned no event at position " +
                                                   std::to_string(from) + " (head " + std::to_string(target) + ")");
        }
      } else if (pipelined) {
        // More follows: write in the background and fold the next batch meanwhile.
        if (writer.submit(b)) {
          pending = &b;
        }  // else no thread: written here below
      }
      if (b.consumed() > 0 && pending != &b) {
        if (const auto s = write(b); !s.ok()) {
          outcome = detail::to_error(s, "projector: write batch");
          previous = nullptr;
          break;
        }
        publish(b);
      }
      // A batch being written is where the next one finds the states it touched; a published
      // one has handed them to `written`.
      previous = pending == &b ? &b : nullptr;
      from = b.last + 1;
      if (b.failure) {
        outcome = *b.failure;
        break;
      }
      if (!outcome.ok()) {
        break;
      }
    }
    if (auto finished = finish_pending(); !finished && outcome.ok()) {
      outcome = std::move(finished).err();
    }
    previous = nullptr;
    return outcome;
  }

  status catch_up() {
    return advance_to(journal.head(), [] { return false; });
  }

  status clear() {
    written.clear();
    forget_unwritten();
    catalog_generation.fetch_add(1, std::memory_order_release);
    auto* db = store.db();
    auto* cf = store.projections_cf();
    std::string last;
    {
      std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(rocksdb::ReadOptions{}, cf)};
      it->SeekToLast();
      if (!it->status().ok()) {
        return detail::to_error(it->status(), "projector: find the last projection key");
      }
      if (!it->Valid()) {
        return {};  // already empty
      }
      last = it->key().ToString();
    }
    rocksdb::WriteBatch wb;
    // Everything before the last key by range, then the last key itself.
    if (auto s = wb.DeleteRange(cf, rocksdb::Slice{}, last); !s.ok()) {
      return detail::to_error(s, "projector: clear projections");
    }
    if (auto s = wb.Delete(cf, last); !s.ok()) {
      return detail::to_error(s, "projector: clear projections");
    }
    if (auto s = db->Write(rocksdb::WriteOptions{}, &wb); !s.ok()) {
      return detail::to_error(s, "projector: clear projections");
    }
    // Moves the old entries and the range tombstone out of the memtable: the replay then
    // inserts into an empty one (much faster) and reads skip a tombstone RocksDB 7 would
    // otherwise re-fragment on every read.
    return detail::to_status(db->Flush(rocksdb::FlushOptions{}, cf), "projector: flush cleared projections");
  }

  void forget_unwritten() {
    unwritten.clear();
    deferred.since.clear();
    deferred.by_since.clear();
  }

  /// Writes every unwritten state and its usage moves, with the position they held back
  /// (when the thread ends): a batch of no events whose unwritten states are all overdue.
  status write_unwritten() {
    if (deferred.since.empty()) {
      return {};
    }
    previous = nullptr;
    batch& b = batches[0];
    b.reset(position.load() + 1);
    b.write_all_unwritten = true;
    if (auto built = build(b); !built) {
      return built;
    }
    if (const auto s = write(b); !s.ok()) {
      return detail::to_error(s, "projector: write the unwritten request states");
    }
    publish(b);
    forget_unwritten();
    return {};
  }

  /// Whether the thread may end: a stop was asked for and everything committed before it
  /// is applied. Called with `signal->mutex` held.
  bool may_stop() const { return signal->stop && position.load() >= signal->stop_at; }

  void run() {
    while (true) {
      std::uint64_t target = 0;
      {
        std::unique_lock lock(signal->mutex);
        // The head is checked under the lock the listener records it under: a commit is
        // either seen here or its notification comes after this wait begins.
        signal->cv.wait(lock, [&] { return signal->stop || signal->head > position.load(); });
        if (may_stop()) {
          return;
        }
        target = signal->stop ? signal->stop_at : signal->head;
      }
      const auto stop_requested = [this] {
        std::lock_guard lock(signal->mutex);
        return may_stop();
      };
      if (auto advanced = advance_to(target, stop_requested); !advanced) {
        bool stopping = false;
        {
          std::lock_guard lock(signal->mutex);
          stopping = signal->stop;
        }
        if (stopping) {
          // No retries once stopping: what is left stays in the journal, and the next start
          // applies it before it serves anything.
          log::error("projector: catching up failed while stopping; the next start catches up",
                     {{"code", std::string{to_string(advanced.err().code)}}, {"error", advanced.err().message}});
          return;
        }
        log::error("projector: catching up failed, retrying",
                   {{"code", std::string{to_string(advanced.err().code)}}, {"error", advanced.err().message}});
        std::unique_lock lock(signal->mutex);
        signal->cv.wait_for(lock, retry_delay, [&] { return signal->stop; });
      }
    }
  }
};

projector::projector(events::rocks_store& store, events::journal& journal, projector_options options)
    : _impl(std::make_unique<impl>(store, journal, options)) {}

projector::~projector() { stop(); }

status projector::catch_up() {
  if (_impl->running.load()) {
    return make_error(errc::conflict, "projector: catch_up while the projector's thread runs");
  }
  auto current = _impl->layout_current();
  if (!current) {
    return std::move(current).err();
  }
  if (!*current) {
    log::info("projector: the projections are in an older key layout; rebuilding them from the journal",
              {{"layout", std::string{detail::layout_version}}});
    return rebuild();
  }
  return _impl->catch_up();
}

status projector::rebuild() {
  if (_impl->running.load()) {
    return make_error(errc::conflict, "projector: rebuild while the projector's thread runs");
  }
  if (auto cleared = _impl->clear(); !cleared) {
    return cleared;
  }
  // Before any batch: a rebuild that a crash interrupts continues in the same layout.
  if (auto marked = _impl->mark_layout(); !marked) {
    return marked;
  }
  {
    std::lock_guard lock(_impl->waiters_mutex);
    _impl->position.store(0);
  }
  _impl->skipped.store(0);
  auto* db = _impl->store.db();
  auto* cf = _impl->store.projections_cf();
  // A bulk load: the read models are compacted once, after the replay, rather than over and
  // over while it writes (on two cores compactions took a third of the rebuild's CPU). Without
  // auto compactions RocksDB does not stall writes on the number of level-0 files either.
  const bool bulk = db->SetOptions(cf, {{"disable_auto_compactions", "true"}}).ok();
  _impl->replaying_from_empty = true;
  auto replayed = _impl->catch_up();
  _impl->replaying_from_empty = false;
  if (replayed) {
    // The replay's batches skipped the WAL: make them durable before anything else is written.
    replayed = detail::to_status(db->Flush(rocksdb::FlushOptions{}, cf), "projector: flush the rebuilt projections");
  }
  if (bulk) {
    if (auto s = db->SetOptions(cf, {{"disable_auto_compactions", "false"}}); !s.ok()) {
      log::error("projector: cannot re-enable compactions after a rebuild", {{"error", s.ToString()}});
    }
  }
  return replayed;
}

void projector::start() {
  if (_impl->running.exchange(true)) {
    return;
  }
  {
    std::lock_guard lock(_impl->signal->mutex);
    _impl->signal->stop = false;
    // Covers commits made before the listener was registered or while nobody listened.
    _impl->signal->head = std::max(_impl->signal->head, _impl->journal.head());
  }
  _impl->thread = std::thread([impl = _impl.get()] {
    name_this_thread("prov.projector");
    impl->deferring = impl->options.max_deferred_events > 0;
    impl->run();
    impl->deferring = false;
    // Left unwritten, they would be replayed by the next start: written now, it starts
    // from the head.
    if (auto written = impl->write_unwritten(); !written) {
      log::error("projector: cannot write the unwritten request states; the next start replays them",
                 {{"code", std::string{to_string(written.err().code)}}, {"error", written.err().message}});
    }
  });
}

void projector::request_stop() {
  {
    std::lock_guard lock(_impl->signal->mutex);
    if (!_impl->signal->stop) {
      _impl->signal->stop = true;
      _impl->signal->stop_at = _impl->journal.head();
    }
  }
  _impl->signal->cv.notify_all();
}

void projector::stop() {
  request_stop();
  if (_impl->thread.joinable()) {
    _impl->thread.join();
  }
  _impl->running.store(false);
}

std::uint64_t projector::position() const noexcept { return _impl->position.load(); }

const unwritten_requests& projector::unwritten() const noexcept { return _impl->unwritten; }

std::uint64_t projector::catalog_generation() const noexcept {
  return _impl->catalog_generation.load(std::memory_order_acquire);
}

void projector::when_applied(std::uint64_t position, std::function<void()> done) {
  if (!done) {
    return;
  }
  {
    std::lock_guard lock(_impl->waiters_mutex);
    if (position > _impl->position.load()) {
      _impl->waiters.emplace(position, std::move(done));
      return;
    }
  }
  done();
}

void projector::on_request_change(request_listener listener) {
  _impl->request_listeners.push_back(std::move(listener));
}

void projector::on_cluster_change(cluster_listener listener) {
  _impl->cluster_listeners.push_back(std::move(listener));
}

std::uint64_t projector::skipped() const noexcept { return _impl->skipped.load(); }

}  // namespace prov::projections
