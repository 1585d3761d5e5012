#pragma once
/// The journal: an append-only log of events, addressed two ways.
///
/// - A *stream* is one aggregate's history ("request/<id>", "cluster/<id>", ...). Events in a
///   stream carry a dense 1-based `sequence`. Appends name the version they expect (the number
///   of events the stream holds now), so two writers can never both extend one stream.
/// - The *global log* orders every event of every stream by a dense 1-based `position`.
///   Projections and publishers tail it from a stored position.
///
/// The journal is payload-agnostic: it stores an event's type id, schema version and encoded
/// payload bytes (see `codec.hpp`). Implementations: RocksDB (embedded default), in-memory
/// (tests), and later Kafka (distributed mode); callers never know which.

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"

namespace prov::events {

/// An encoded event, as handed to `journal::append`.
struct event_record {
  std::uint16_t type_id = 0;  ///< stable id of the event type (codec.hpp)
  std::uint8_t version = 1;   ///< schema version of the payload
  std::string payload;        ///< binary encoding of the event's fields

  bool operator==(const event_record&) const = default;
};

/// Expected-version sentinel: append whatever the stream's current version is.
inline constexpr std::uint64_t any_version = std::numeric_limits<std::uint64_t>::max();

/// Events to add to one stream, conditional on its current version.
struct stream_append {
  std::string stream;
  std::uint64_t expected_version = 0;  ///< 0 = the stream must not exist yet; or any_version
  std::vector<event_record> events;
};

/// An event as stored: the record plus where and when it was committed.
struct stored_event {
  std::uint64_t position = 0;  ///< 1-based index in the global log
  std::string stream;
  std::uint64_t sequence = 0;  ///< 1-based index in its stream
  timestamp time{};            ///< commit time, from the journal's clock; never before the
                               ///< time of an event at a lower position (a clock set back
                               ///< repeats the last time until it catches up)
  std::uint16_t type_id = 0;
  std::uint8_t version = 1;
  std::string payload;

  bool operator==(const stored_event&) const = default;
};

/// What a successful append committed.
struct append_receipt {
  std::uint64_t first_position = 0;  ///< position of the batch's first event
  std::uint64_t last_position = 0;   ///< position of the batch's last event (the new head)
  timestamp time{};                  ///< commit time stamped on every event of the batch
  std::vector<std::uint64_t> versions;  ///< new version of each stream, in batch order
};

/// Called exactly once per append, possibly on another thread (the journal's writer), possibly
/// inline. Must not block: forward the result (e.g. send a message to an actor) and return.
using append_handler = std::function<void(result<append_receipt>)>;

/// Called after each commit with the new head position, on the journal's thread that publishes
/// commits (RocksDB: the syncer, or the writer without sync). Must not block.
using commit_listener = std::function<void(std::uint64_t head)>;

/// True on a journal's own threads (RocksDB: the writer and the syncer), where append handlers
/// and commit listeners run. Work that reads the journal or waits must not run there: it would
/// hold up every group commit behind it. For checks (`assert`) in code that must run elsewhere.
bool on_journal_thread() noexcept;

namespace detail {
/// Marks the calling thread as one of a journal's (for `on_journal_thread`).
void mark_journal_thread() noexcept;
}  // namespace detail

class journal {
 public:
  virtual ~journal() = default;

  /// Atomically appends events to one or more streams. Either every stream's expected version
  /// matches and all events become durable together, or nothing is written and the handler
  /// gets `errc::version_conflict` (message names the stream, expected and actual version).
  /// An empty batch or a stream with no events is `errc::invalid_argument`. The handler runs
  /// only after the events are durable (fsync'd, shared with concurrent appends: group commit).
  /// `errc::unavailable` says the journal takes no appends until it is reopened (it stopped,
  /// or a WAL write or sync failed; the message says whether this append's events may be in
  /// the log after the reopen); other errors may pass.
  virtual void append(std::vector<stream_append> batch, append_handler done) = 0;

  /// Events of one stream with sequence >= `from_sequence`, at most `max`, in order.
  /// An unknown stream yields an empty vector.
  virtual result<std::vector<stored_event>> read_stream(
      std::string_view stream, std::uint64_t from_sequence = 1,
      std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) const = 0;

  /// The current version (event count) of a stream; 0 if it does not exist.
  virtual result<std::uint64_t> stream_version(std::string_view stream) const = 0;

  /// Visits committed events of the global log with position >= `from_position`, in order,
  /// at most `max`. Returns how many were visited. Never shows uncommitted events.
  virtual result<std::size_t> read_all(std::uint64_t from_position, std::size_t max,
                                       const std::function<void(const stored_event&)>& visit) const = 0;

  /// Position of the last committed event (0 for an empty log).
  virtual std::uint64_t head() const = 0;

  /// A bound on where the streams of `category` (a stream id up to its first '/') were last
  /// appended to: if `head()` returned h before this call, no event of that category lies
  /// after the result and at or below h. Lets a reader that follows one category skip the
  /// rest of the log. The default, the head itself, never allows a skip.
  virtual std::uint64_t last_position_in(std::string_view category) const {
    (void)category;
    return head();
  }

  /// Registers a listener for commits. Listeners are called in registration order.
  virtual void on_commit(commit_listener listener) = 0;

  /// Blocks until every append accepted so far has been completed (handlers called).
  virtual void drain() = 0;
};

}  // namespace prov::events
