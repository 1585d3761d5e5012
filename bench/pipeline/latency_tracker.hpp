#pragma once
/// Pairs each request's submission with the moment the projector saw it reach a terminal
/// state. The two halves arrive on different threads and in either order: the request's actor
/// starts before the submit is answered, so with zero provider delays a request can complete
/// before its submitter learns its id. Whichever half arrives first waits in a sharded map
/// keyed by request id; the second one takes it out and records the latency.
///
/// Thread-safe. Every call takes one shard's mutex for a map lookup: short enough for the
/// projector's listener, which must not block.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace prov::bench {

class latency_tracker {
 public:
  using clock_type = std::chrono::steady_clock;
  using time_point = clock_type::time_point;

  /// How a request came to rest.
  enum class outcome : std::uint8_t { completed, rolled_back };

  /// A submit was answered with `id`; it was due at `due` (open loop: its place in the
  /// schedule; closed loop: when it was sent), sent at `sent` and answered at `replied`.
  void on_submitted(const std::string& id, time_point due, time_point sent, time_point replied);

  /// The projector saw request `id` reach `kind` at `at`.
  void on_terminal(const std::string& id, outcome kind, time_point at);

  std::uint64_t submitted() const noexcept { return _submitted.load(); }
  std::uint64_t completed() const noexcept { return _completed.load(); }
  std::uint64_t rolled_back() const noexcept { return _rolled_back.load(); }
  /// Requests whose two halves have both arrived.
  std::uint64_t finished() const noexcept { return completed() + rolled_back(); }

  /// Ids whose submit was answered but which have not reached a terminal state (at most `max`).
  std::vector<std::string> unfinished(std::size_t max) const;
  /// Terminal states seen for ids no submit reply has named (yet).
  std::size_t orphan_terminals() const;

  /// What the run measured; call once every request is finished.
  struct samples {
    std::vector<std::int64_t> completed_ns;  ///< submit-to-completed, completed requests only
    /// due-to-completed, completed requests only: includes any wait for the submitter to
    /// send the request once it was due (open loop; the same as `completed_ns` when closed)
    std::vector<std::int64_t> completed_from_due_ns;
    std::vector<std::int64_t> submit_ns;     ///< submit-to-reply, every answered submit
    time_point last_terminal{};              ///< the latest terminal state of a tracked request
  };
  samples collect() const;

 private:
  struct entry {
    time_point due{};         ///< set once the submit reply arrived
    time_point sent{};        ///< set once the submit reply arrived
    time_point terminal_at{}; ///< set once the terminal state was seen
    bool replied = false;
    outcome kind = outcome::completed;
  };

  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, entry> waiting;  ///< one half seen, the other not yet
    std::vector<std::int64_t> completed_ns;
    std::vector<std::int64_t> completed_from_due_ns;
    std::vector<std::int64_t> submit_ns;
    time_point last_terminal{};
  };

  static constexpr std::size_t shard_count = 64;

  shard& shard_of(const std::string& id) noexcept;
  /// Records a request whose both halves are known; the shard's mutex is held.
  void finish(shard& s, time_point due, time_point sent, time_point terminal_at, outcome kind);

  std::array<shard, shard_count> _shards;
  std::atomic<std::uint64_t> _submitted{0};
  std::atomic<std::uint64_t> _completed{0};
  std::atomic<std::uint64_t> _rolled_back{0};
};

}  // namespace prov::bench
