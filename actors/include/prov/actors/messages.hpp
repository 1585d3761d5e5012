#pragma once
/// The vocabulary between the engine's actors: atoms, message types and the typed actor
/// interfaces. Every protocol is a type the compiler checks.
///
/// Message types here travel only between actors of one process (distributed mode shares work
/// through the Kafka log, not through CAF remoting), so they are declared as local-only
/// message types instead of being given serializers.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/journal.hpp"
#include "prov/projections/views.hpp"
#include "prov/providers/provider.hpp"

namespace prov::actors {

using run_step_atom = caf::atom_constant<caf::atom("runstep")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using inventory_atom = caf::atom_constant<caf::atom("inventory")>;
using test_atom = caf::atom_constant<caf::atom("conntest")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using select_atom = caf::atom_constant<caf::atom("select")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using appended_atom = caf::atom_constant<caf::atom("appended")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using admit_atom = caf::atom_constant<caf::atom("admit")>;
using admitted_atom = caf::atom_constant<caf::atom("admitted")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using scan_atom = caf::atom_constant<caf::atom("scan")>;
using stuck_atom = caf::atom_constant<caf::atom("stuck")>;
using timer_atom = caf::atom_constant<caf::atom("timer")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using suspend_atom = caf::atom_constant<caf::atom("suspend")>;
using reactivate_atom = caf::atom_constant<caf::atom("reactivat")>;
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;
using clusters_atom = caf::atom_constant<caf::atom("clusters")>;
using reconcile_atom = caf::atom_constant<caf::atom("reconcile")>;

/// The outcome of a journal append, as a message.
struct append_outcome {
  bool ok = false;
  error err;
  events::append_receipt receipt;

  static append_outcome of(result<events::append_receipt> r) {
    append_outcome out;
    out.ok = r.ok();
    if (out.ok) {
      out.receipt = std::move(*r);
    } else {
      out.err = r.err();
    }
    return out;
  }
};

/// What `inventory` answers.
struct inventory_reply {
  bool ok = false;
  error err;
  std::vector<providers::inventory_item> items;
};

/// Runtime health of one cluster's calls: the bulkhead and the circuit breaker.
struct cluster_runtime {
  std::string cluster;
  std::string breaker = "closed";  ///< closed, open, half_open
  std::uint32_t consecutive_failures = 0;
  std::uint32_t window_calls = 0;
  std::uint32_t window_failures = 0;
  std::int64_t open_for_ms = 0;  ///< how long the breaker has been open (0 when closed)
  std::size_t in_flight = 0;
  std::size_t queued = 0;
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;     ///< retryable failures and timeouts
  std::uint64_t rejected = 0;     ///< failed fast: breaker open or bulkhead full
  std::uint64_t timeouts = 0;
  std::uint64_t breaker_opened = 0;  ///< how many times it opened
};

/// One cluster's actor: the only way to its provider. It bounds concurrent calls (bulkhead),
/// times each call out, and fails fast while its circuit breaker is open. Blocking providers
/// run on the actor's worker threads; simulated delays are delivered on the actor clock.
using cluster_actor = caf::typed_actor<
    caf::replies_to<run_step_atom, providers::step_call>::with<providers::step_outcome>,
    caf::replies_to<release_atom, providers::release_call>::with<providers::release_outcome>,
    caf::replies_to<sweep_atom, std::string>::with<providers::sweep_outcome>,
    caf::replies_to<suspend_atom, providers::service_call>::with<providers::action_outcome>,
    caf::replies_to<reactivate_atom, providers::service_call>::with<providers::action_outcome>,
    caf::replies_to<metrics_atom, providers::service_call>::with<providers::metrics_sample>,
    caf::replies_to<inventory_atom>::with<inventory_reply>,
    caf::replies_to<test_atom>::with<providers::connectivity_report>,
    caf::replies_to<status_atom>::with<cluster_runtime>,
    caf::reacts_to<update_atom, events::cluster_state>,
    caf::reacts_to<deliver_atom, std::uint64_t>,
    caf::reacts_to<timeout_atom, std::uint64_t>>;

/// What a request needs from a cluster (R-4.3 selection input).
struct selection_query {
  std::string request_id;
  events::provider_type provider = events::provider_type::simulation;
  events::service_type type = events::service_type::vps;
  std::string region;             ///< "" = any region
  std::string requested_cluster;  ///< "" = engine chooses
  events::resource_spec spec;
};

/// A chosen (or looked-up) cluster, or why there is none.
struct cluster_choice {
  bool ok = false;
  std::string cluster_id;
  cluster_actor handle;
  std::string code;     ///< when !ok: "no_cluster_available", "not_found"
  std::string message;  ///< when !ok: why, including each candidate skipped and why
};

using usage_atom = caf::atom_constant<caf::atom("usage")>;
using add_atom = caf::atom_constant<caf::atom("add")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using settled_atom = caf::atom_constant<caf::atom("settled")>;
using claimed_atom = caf::atom_constant<caf::atom("claimed")>;

/// Capacity in use per cluster (what requests not rolled back hold), from the projections.
using capacity_map = std::map<std::string, projections::usage_totals>;

/// Owns the runtime cluster set: one cluster actor per registered cluster, and the capacity
/// each has left. Selection reserves capacity for the request (one actor decides, so two
/// requests can never both take the last slot); `leave` gives it back when the request is
/// rolled back.
using cluster_registry_actor = caf::typed_actor<
    caf::replies_to<select_atom, selection_query>::with<cluster_choice>,
    caf::replies_to<lookup_atom, std::string>::with<cluster_choice>,
    caf::reacts_to<update_atom, events::cluster_state>,
    caf::reacts_to<usage_atom, capacity_map>,
    caf::reacts_to<leave_atom, std::string /*request*/, std::string /*cluster*/, events::resource_spec,
                   events::service_type>,
    /// The request completed: its capacity stays used, but it will never select again, so its
    /// reservation record is dropped (a later release names the cluster and spec itself).
    caf::reacts_to<settled_atom, std::string /*request*/>,
    caf::replies_to<usage_atom, std::string /*cluster*/>::with<projections::usage_totals>,
    /// Every registered cluster with its actor, by id.
    caf::replies_to<clusters_atom>::with<std::vector<cluster_choice>>>;

/// One live request.
using request_actor = caf::typed_actor<
    caf::reacts_to<resume_atom>,
    /// A new actor starts from this state (its stream as just committed) instead of reading
    /// the stream; if the stream moved on meanwhile, its first append conflicts and it re-reads.
    caf::reacts_to<resume_atom, events::request_state>,
    caf::reacts_to<appended_atom, append_outcome>,
    caf::reacts_to<timer_atom, std::uint64_t>,   ///< a timer armed with this generation fired
    caf::reacts_to<admitted_atom>,               ///< a slot is free: go
    caf::reacts_to<stuck_atom>,                  ///< the watchdog saw no progress for too long
    caf::replies_to<drain_atom>::with<bool>>;    ///< finish what is in flight, then stop

/// Counts of the admission controller, for metrics.
struct admission_status {
  std::size_t active = 0;
  std::size_t waiting = 0;
  std::size_t tenants_waiting = 0;
};

/// Admission into the active steps. `admit` answers true (go now) or false (wait:
/// an `admitted_atom` follows when a slot frees). `leave` gives the slot back. The controller
/// monitors each request actor, so a slot is never lost to an actor that died.
using admission_actor = caf::typed_actor<
    caf::replies_to<admit_atom, std::string /*tenant*/, std::string /*request*/, bool /*already_active*/,
                    request_actor>::with<bool>,
    caf::reacts_to<leave_atom, std::string /*request*/>,
    caf::reacts_to<drain_atom>,
    caf::replies_to<status_atom>::with<admission_status>>;

/// Stuck detection: request actors note their progress on the context's
/// `progress_board`; a periodic scan of it reports requests without progress for too long to
/// the supervisor.
using watchdog_actor = caf::typed_actor<
    caf::reacts_to<scan_atom>,
    caf::replies_to<status_atom>::with<std::uint64_t /*stuck reports so far*/>>;

/// What the orphan reconciler did: totals since it started (status), or in one pass (a pass
/// asked for).
struct reconcile_status {
  std::uint64_t passes = 0;             ///< passes finished
  std::uint64_t orphans_found = 0;      ///< `orphan_found` events appended
  std::uint64_t released = 0;           ///< orphans deleted at their provider
  std::uint64_t release_failures = 0;   ///< deletes that failed (retried by the next pass)
  std::uint64_t deferred = 0;           ///< resources of requests not at rest long enough
  std::uint64_t foreign = 0;            ///< resources of requests this journal does not know
  std::uint64_t inventory_failures = 0; ///< clusters whose inventory could not be read

  /// What happened between `before` and this (one pass: `passes` is 1).
  reconcile_status since(const reconcile_status& before) const {
    return {passes - before.passes,         orphans_found - before.orphans_found,
            released - before.released,     release_failures - before.release_failures,
            deferred - before.deferred,     foreign - before.foreign,
            inventory_failures - before.inventory_failures};
  }
};

/// The orphan reconciler: every `reconcile_policy::every`, it compares each cluster's
/// inventory with what the journal says its requests hold, records each orphan of a request at
/// rest (`request.orphan_found`) and deletes it at the provider.
using reconciler_actor = caf::typed_actor<
    caf::reacts_to<scan_atom>,                          ///< start a pass (the timer)
    caf::reacts_to<resume_atom>,                        ///< go on with the pass (it yields)
    /// A pass over one (looked-up) cluster now, after the running one if any; answers with
    /// its counts.
    caf::replies_to<reconcile_atom, cluster_choice>::with<reconcile_status>,
    caf::reacts_to<appended_atom, append_outcome>,      ///< the current request's append
    caf::replies_to<status_atom>::with<reconcile_status>>;

/// A request entering the dependency graph: its node and the nodes it depends on. Nodes are
/// request ids, or "key:<tenant>/<idempotency key>" for a request not submitted yet.
struct dependency_node {
  std::string request_id;
  std::string key_node;  ///< "key:<tenant>/<key>" if the request has an idempotency key, else ""
  std::vector<std::string> prerequisites;
};

/// The answer: accepted, or the cycle the request would close ("a -> b -> a").
struct dependency_verdict {
  bool ok = true;
  std::string cycle;
};

/// A callback handed to an actor in a message, for a caller that must hear back whatever
/// happens: the first call runs `run` (on the actor's thread); if the message is dropped
/// instead (the actor stopped with it in its mailbox, or was gone when it was sent), `dropped`
/// runs where its last copy dies. Copies share one state, so exactly one of the two runs.
template <class... Args>
class once_or_dropped {
 public:
  once_or_dropped() = default;
  once_or_dropped(std::function<void(Args...)> run, std::function<void()> dropped)
      : _state{std::make_shared<state>(std::move(run), std::move(dropped))} {}

  void operator()(Args... args) const {
    if (_state && !std::exchange(_state->ran, true)) {
      _state->run(std::forward<Args>(args)...);
    }
  }

 private:
  struct state {
    state(std::function<void(Args...)> r, std::function<void()> d) : run{std::move(r)}, dropped{std::move(d)} {}
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
      if (!ran && dropped) {
        dropped();
      }
    }
    std::function<void(Args...)> run;
    std::function<void()> dropped;
    bool ran = false;  ///< only the receiving actor's thread calls
  };
  std::shared_ptr<state> _state;
};

/// Where the graph hands the verdict on a node it was told to add, for a caller that does not
/// wait for the answer (engine::submit).
using verdict_sink = once_or_dropped<const dependency_verdict&>;

/// The dependency graph of requests that wait for others. `add` checks the graph with
/// the new request (walking only what waits for it) and keeps it only if no cycle results;
/// `claimed` tells that a request's claim of its idempotency key committed (what waited for the key waits for
/// it from then on); `forget` takes a request out (its submission did not commit); `settled`
/// tells that a request completed or failed: its dependents are resumed (they decide from the
/// journal) and it leaves the graph.
using dependency_graph_actor = caf::typed_actor<
    caf::replies_to<add_atom, dependency_node, bool /*check for cycles*/>::with<dependency_verdict>,
    caf::reacts_to<add_atom, dependency_node, verdict_sink>,  ///< checked, the verdict to the sink
    caf::reacts_to<claimed_atom, std::string /*key node*/, std::string /*request*/>,
    caf::reacts_to<forget_atom, std::string>,
    caf::reacts_to<settled_atom, std::string>>;

/// Spawns request actors on demand, at most one per request, and forgets them when they stop.
using request_supervisor_actor = caf::typed_actor<
    caf::reacts_to<start_atom, std::string>,
    /// Starts a request just submitted, from its state as committed (no read of its stream).
    caf::reacts_to<start_atom, std::string, events::request_state>,
    caf::reacts_to<stuck_atom, std::string>,
    caf::replies_to<count_atom>::with<std::size_t>,
    caf::replies_to<drain_atom>::with<std::size_t /*requests drained*/>>;

}  // namespace prov::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::step_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::step_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::release_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::release_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::sweep_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::connectivity_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::service_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::action_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::metrics_sample)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::cluster_runtime)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::admission_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::lifecycle_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::timestamp)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::capacity_map)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::dependency_node)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::dependency_verdict)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::verdict_sink)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::projections::usage_totals)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::resource_spec)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::service_type)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::cluster_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::request_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::append_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::inventory_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::selection_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::cluster_choice)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<prov::actors::cluster_choice>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::reconcile_status)
