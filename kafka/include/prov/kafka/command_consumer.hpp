#pragma once
/// The command topic: consumes `provisioning.commands`, hands each valid command to
/// the engine and answers every message on `provisioning.command-results` (command.hpp).
///
/// Guarantees:
/// - Every message is answered, valid or not; a malformed, unknown or oversized message
///   (poison) is answered as rejected, counted, logged without its payload, and skipped.
///   Nothing stops consumption.
/// - Offsets are committed (manually) only after a command's events are durable in the
///   journal (the engine answers then) *and* its answer has a successful delivery report; the
///   commit point never passes an unfinished command (`offset_tracker`). After a crash or a
///   rebalance the uncommitted tail is consumed again: `create` carries an idempotency key, so
///   the replay answers with the same request (`"replayed":true`) and creates nothing; a
///   lifecycle command replayed on a request that already moved on is answered `conflict`.
/// - Commands of one partition (so of one tenant: key = tenant id) run one after another, in
///   offset order; partitions run concurrently.
///
/// The topic is trusted like the admin token: a command may act on any request of the tenant
/// it names (the message key and `tenant`, which must agree); a request of another tenant is
/// `not_found`, as in the HTTP API.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "prov/actors/engine.hpp"
#include "prov/core/error.hpp"
#include "prov/kafka/client_settings.hpp"
#include "prov/kafka/command.hpp"

namespace prov::kafka {

struct command_consumer_options {
  client_settings client;
  std::string group_id = "provisiond";  ///< `group.id` of the consumer group
  command_limits limits;
  std::size_t max_buffered = 1'000;     ///< messages consumed and not yet answered, over all partitions
  /// Creates of one partition with the engine at once: a create starts without waiting for
  /// the ones before it (each is a new request), up to this many; any other command waits
  /// until everything before it in its partition has finished, then runs alone. 1: every
  /// command after the one before it.
  std::size_t max_creates_in_flight = 64;
};

/// Counters for /metrics and tests.
struct command_consumer_stats {
  std::uint64_t received = 0;   ///< messages consumed
  std::uint64_t accepted = 0;   ///< answered accepted
  std::uint64_t rejected = 0;   ///< answered rejected (poison included)
  std::uint64_t poison = 0;     ///< not a JSON object, or too large
  std::uint64_t answer_failures = 0;  ///< answers whose delivery failed (produced again)
  std::uint64_t commits = 0;    ///< offset commits sent
  std::uint64_t most_with_engine = 0;  ///< the most commands of one partition with the engine at once
};

class command_consumer {
 public:
  /// Joins the consumer group and starts consuming. `engine` must outlive the consumer (stop
  /// it before the engine shuts down).
  static result<std::unique_ptr<command_consumer>> start(actors::engine& engine, command_consumer_options options);

  ~command_consumer();  ///< `stop()` with the default timeout
  command_consumer(const command_consumer&) = delete;
  command_consumer& operator=(const command_consumer&) = delete;

  /// Stops consuming, waits up to `drain_timeout` for commands already handed to the engine to
  /// be answered, commits what is finished and leaves the group. Idempotent.
  void stop(std::chrono::milliseconds drain_timeout = std::chrono::milliseconds{10'000});

  command_consumer_stats stats() const;

 private:
  struct impl;
  explicit command_consumer(std::unique_ptr<impl> i);
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::kafka
