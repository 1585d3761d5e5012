#pragma once
/// Keeps the read models current: tails the journal from the stored position and applies
/// each event to the views' keys, many events per RocksDB write batch (the position is
/// written in the same batch, so a crash never leaves them out of step). The running thread
/// may leave request states unwritten for a while (`unwritten_requests`); the stored position
/// then stays before them, and a restart replays them. Projections are disposable: `rebuild`
/// clears them and replays the whole journal with identical results.

#include <cstdint>
#include <functional>
#include <memory>

#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/request.hpp"
#include "prov/events/rocks_store.hpp"

namespace prov::projections {

/// The insert hint for the `projections` column family (`rocks_store_options`): a hint per
/// index and, in the tenant indexes, per tenant (and state bucket), where the next entry of
/// each lands next to the last one; per 4-byte key prefix elsewhere ("r/01", "x/a/", "u/..").
std::shared_ptr<const rocksdb::SliceTransform> insert_hint();

struct projector_options {
  std::size_t max_batch_events = 8192;  ///< events per write batch
  /// How far (in journal events) the running thread may leave a request's state unwritten
  /// when its change moved no index entry, usage record or cluster; `unwritten_requests`
  /// serves it meanwhile. A restart replays at most this many events for it. 0: every
  /// change is written with its batch.
  std::size_t max_deferred_events = 65536;
};

class unwritten_requests;

/// Where a request stood before a change: its version (0: it is new) and state.
struct request_before {
  std::uint64_t version = 0;
  events::lifecycle_state state = events::lifecycle_state::queued;
  bool exists() const noexcept { return version != 0; }
};

/// Called on the projector's thread after a batch is written, for every request whose state
/// changed in it (where it stood before the batch, and its state after).
using request_listener = std::function<void(const request_before& before, const events::request_state& after)>;
using cluster_listener = std::function<void(const events::cluster_state& after)>;

class projector {
 public:
  projector(events::rocks_store& store, events::journal& journal, projector_options options = {});
  ~projector();  ///< stops the thread if running
  projector(const projector&) = delete;
  projector& operator=(const projector&) = delete;

  /// Applies everything up to the journal's head on the calling thread. Not concurrent with
  /// the background thread: call before `start` or after `stop`.
  status catch_up();

  /// Clears every projection key and the position, then catches up from position 1.
  status rebuild();

  /// Starts a thread that catches up whenever the journal commits (via `on_commit`).
  void start();
  /// Asks the thread to stop once it has applied everything the journal had committed at
  /// this call, so that every `when_applied` for a committed position is answered (a storage
  /// error while stopping ends it early: the next start applies the rest). Does not wait.
  void request_stop();
  /// `request_stop`, then waits for the thread to end (idempotent).
  void stop();

  /// The last journal position applied.
  std::uint64_t position() const noexcept;

  /// The request states applied and not written yet (for `views`).
  const unwritten_requests& unwritten() const noexcept;

  /// Changes each time a batch that changed a tenant or an approval rule is written (and
  /// before its position is published), and on `rebuild`: read it before reading those
  /// views, and a cache of them filled then is current while it is unchanged.
  std::uint64_t catalog_generation() const noexcept;

  /// Runs `done` once the projections reflect `position` (immediately, on the caller's thread,
  /// if they already do; otherwise on the projector's thread). `done` must not block.
  void when_applied(std::uint64_t position, std::function<void()> done);

  /// Listeners, registered before `start`.
  void on_request_change(request_listener listener);
  void on_cluster_change(cluster_listener listener);

  /// Events that could not be decoded or applied (logged and skipped).
  std::uint64_t skipped() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
};

}  // namespace prov::projections
