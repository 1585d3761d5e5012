#pragma once
/// What the engine's actors share: the journal, the clock, provider dependencies, policy.
/// Owned by whoever spawns the actors (the engine, or a test) and outliving them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "prov/actors/messages.hpp"
#include "prov/actors/progress_board.hpp"
#include "prov/core/clock.hpp"
#include "prov/events/journal.hpp"
#include "prov/providers/provider_factory.hpp"

namespace prov::actors {

using std::chrono::milliseconds;

/// Retries of a failed step: exponential backoff `base * 2^(n-1)` for retry n,
/// capped, at most `max_retries` per step. With `jitter`, each delay is scaled by a factor in
/// [0.5, 1] derived from the call's key (recorded in the log like every due time).
struct retry_policy {
  std::uint32_t max_retries = 3;
  milliseconds base{5'000};
  milliseconds cap{300'000};
  bool jitter = false;

  /// The delay before retry number `n` (1-based) of the call with `key`.
  milliseconds delay(std::uint32_t n, const std::string& key) const;
};

/// Admission into the active steps: per tenant and in total; FIFO per tenant,
/// round-robin across tenants when slots free up.
struct admission_policy {
  std::size_t tenant_max_active = 5;
  std::size_t max_active = 1000;
};

/// Circuit breaker per cluster: open after `consecutive_failures` in a row, or when at
/// least `min_calls` of the last `window` calls ended and `failure_ratio` of them failed; after
/// `cooldown` one probe call is let through (half-open); its success closes the breaker.
struct breaker_policy {
  std::uint32_t consecutive_failures = 5;
  double failure_ratio = 0.5;
  std::uint32_t window = 20;
  std::uint32_t min_calls = 10;
  milliseconds cooldown{30'000};
};

/// Bulkhead and timeouts per cluster.
struct cluster_call_policy {
  std::size_t max_concurrent = 16;     ///< provider calls running at once
  std::size_t max_queued = 10'000;     ///< calls waiting for a slot; beyond: fail fast
  milliseconds call_timeout{300'000};  ///< per call; 0 = none
  breaker_policy breaker;
};

/// Stuck detection.
struct watchdog_policy {
  milliseconds stuck_after{30 * 60'000};  ///< no progress for longer than this: stuck
  milliseconds scan_every{60'000};
};

/// The orphan reconciler: a pass every `every` (0 = never) looks at each cluster's inventory.
/// A resource tagged with a request that does not hold it is an orphan once the request has
/// been at rest (completed, suspended, rolled back) for `settled_for`: no call of it can still
/// be meant to record it.
struct reconcile_policy {
  milliseconds every{10 * 60'000};
  milliseconds settled_for{5 * 60'000};
};

struct pipeline_options {
  retry_policy retry;
  admission_policy admission;
  cluster_call_policy calls;
  watchdog_policy watchdog;
  reconcile_policy reconcile;
  /// Delay before retrying a failed release during rollback (doubles per failure, capped).
  milliseconds release_retry_base{1000};
  milliseconds release_retry_cap{60'000};
  /// Delay before retrying a journal append that failed with an I/O error.
  milliseconds append_retry{1000};
};

/// Distances between regions for cluster selection: when no cluster in the request's
/// region can take it, the nearest region with room is used. Regions not in the table are
/// never "near". Symmetric lookups: a->b or b->a.
using region_distances = std::map<std::string, std::map<std::string, int>>;

struct engine_context {
  events::journal* journal = nullptr;
  const clock* clk = nullptr;
  providers::provider_context providers;
  pipeline_options pipeline;
  region_distances distances;
  cluster_registry_actor registry;        ///< set once spawned
  admission_actor admission;              ///< set once spawned
  watchdog_actor watchdog;                ///< set once spawned
  /// Where each live request last made progress: noted by request actors, scanned by the
  /// watchdog.
  std::shared_ptr<progress_board> progress = std::make_shared<progress_board>();
  dependency_graph_actor dependencies;    ///< set once spawned
  /// The read models, if any: the orphan reconciler skips a request whose view holds all it
  /// has at the provider (without one, it folds every such request from the journal).
  const projections::views* views = nullptr;
  request_supervisor_actor supervisor;    ///< set once spawned
};

}  // namespace prov::actors
