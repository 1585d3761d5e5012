#pragma once
/// Spawning the engine's actors. Order: registry, admission, watchdog, supervisor (then set
/// `ctx.supervisor`). Tests spawn them in an actor system running CAF's test
/// coordinator (virtual time); the engine in a normal one.

#include <caf/actor_system.hpp>

#include "prov/actors/context.hpp"

namespace prov::actors {

/// One cluster's actor, owning the provider built for `cluster`.
cluster_actor spawn_cluster_actor(caf::actor_system& sys, const engine_context& ctx, events::cluster_state cluster);

/// The cluster registry (starts empty; feed it `update_atom` with each cluster).
cluster_registry_actor spawn_cluster_registry(caf::actor_system& sys, const engine_context& ctx);

/// One request's actor. Send it `resume_atom` to load the request and drive it.
request_actor spawn_request_actor(caf::actor_system& sys, const engine_context& ctx, std::string request_id);

/// The admission controller (tenant fairness, R-3.1).
admission_actor spawn_admission(caf::actor_system& sys, const engine_context& ctx);

/// The stuck-request watchdog. `ctx.supervisor` must be set before its first scan.
watchdog_actor spawn_watchdog(caf::actor_system& sys, const engine_context& ctx);

/// The orphan reconciler. `ctx.registry` must be set.
reconciler_actor spawn_reconciler(caf::actor_system& sys, const engine_context& ctx);

/// The dependency graph. `ctx.supervisor` must be set before requests settle.
dependency_graph_actor spawn_dependency_graph(caf::actor_system& sys, const engine_context& ctx);

/// The request supervisor. `ctx.registry`, `ctx.admission` and `ctx.watchdog` must be set.
request_supervisor_actor spawn_request_supervisor(caf::actor_system& sys, const engine_context& ctx);

}  // namespace prov::actors
