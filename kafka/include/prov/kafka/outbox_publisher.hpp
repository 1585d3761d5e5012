#pragma once
/// The outbox: tails the journal from a stored position and publishes every request
/// state transition as a CloudEvents 1.0 lifecycle event (`events::to_lifecycle`) to the topic
/// named by its type, key = request id, so one request's events share a partition and keep
/// their order.
///
/// Guarantees:
/// - At least once: the position (RocksDB `meta` CF, key `outbox/position`, 8-byte big-endian:
///   the last journal position all of whose messages have a successful delivery report) moves
///   only after delivery reports. After a crash publishing restarts after it: only the
///   unacknowledged tail is published again (consumers drop duplicates by CloudEvents `id`).
/// - A broker outage delays events and loses none: the producer is idempotent (acks=all, at
///   most 5 requests in flight, retries without duplicates or reordering) and its messages
///   never time out locally; they wait until a broker takes them.
/// - Within one publisher's lifetime no event is published twice, except after a permanent
///   delivery failure (a fatal producer error): then the producer is rebuilt and publishing
///   resumes from the stored position (logged, counted in `failed`).
/// - Secrets never leave: the lifecycle bodies carry no credentials (see lifecycle.hpp).
///
/// One thread reads, folds, produces and serves delivery reports; the journal's commit listener
/// only records the head and wakes it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/error.hpp"
#include "prov/events/journal.hpp"
#include "prov/kafka/client_settings.hpp"

namespace prov::events {
class rocks_store;
}  // namespace prov::events

namespace prov::kafka {

/// The `meta` CF key of the outbox position.
inline constexpr std::string_view outbox_position_key = "outbox/position";

struct outbox_options {
  client_settings client;
  std::string topic_prefix;                 ///< prepended to each lifecycle type ("" = none)
  std::size_t max_in_flight = 10'000;       ///< messages produced and not yet acknowledged
  std::size_t read_batch = 512;             ///< journal events read per pass
  std::size_t state_cache = 4096;           ///< request states kept (LRU); others are re-folded
  bool cloudevents_headers = true;          ///< also ce_id, ce_type, ... headers (binding mode stays structured)
  std::chrono::milliseconds idle_check{1'000};  ///< wake this often even without commits
};

/// Counters for /metrics and tests.
struct outbox_stats {
  std::uint64_t published = 0;  ///< messages with a successful delivery report
  std::uint64_t failed = 0;     ///< messages with a failed delivery report (republished)
  std::uint64_t position = 0;   ///< stored outbox position
  std::uint64_t in_flight = 0;  ///< messages waiting for a delivery report
  std::uint64_t skipped = 0;    ///< request events that could not be decoded or folded (logged)
  std::uint64_t rebuilds = 0;   ///< producers rebuilt after a fatal error
};

class outbox_publisher {
 public:
  /// Starts publishing from the stored position. `journal` and `store` must outlive the
  /// publisher (stop it before the engine shuts down).
  static result<std::unique_ptr<outbox_publisher>> start(events::journal& journal, events::rocks_store& store,
                                                         outbox_options options);

  ~outbox_publisher();  ///< `stop()` with the default timeout
  outbox_publisher(const outbox_publisher&) = delete;
  outbox_publisher& operator=(const outbox_publisher&) = delete;

  /// Stops reading the journal, waits up to `flush_timeout` for outstanding delivery reports,
  /// stores the position they allow and closes the producer. Idempotent.
  void stop(std::chrono::milliseconds flush_timeout = std::chrono::milliseconds{10'000});

  outbox_stats stats() const;

  /// The stored outbox position (0 if none yet).
  static result<std::uint64_t> stored_position(events::rocks_store& store);

 private:
  struct impl;
  explicit outbox_publisher(std::unique_ptr<impl> i);
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::kafka
