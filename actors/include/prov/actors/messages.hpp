#pragma once
/// The vocabulary between the engine's actors: atoms, message types and the typed actor
/// interfaces. Every protocol is a type the compiler checks.
///
/// Message types here travel only between actors of one process (distributed mode shares work
/// through the Kafka log, not through CAF remoting), so they are declared as local-only
/// message types instead of being given serializers.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/journal.hpp"
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
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using count_atom = caf::atom_constant<caf::atom("count")>;

/// The outcome of a journal append, as a message.
struct append_outcome {
  bool ok = false;
  error err;
  events::append_receipt receipt;
};

/// What `inventory` answers.
struct inventory_reply {
  bool ok = false;
  error err;
  std::vector<providers::inventory_item> items;
};

/// One cluster's actor: the only way to its provider. Calls that take time (simulated
/// delays) are answered later, on the actor clock.
using cluster_actor = caf::typed_actor<
    caf::replies_to<run_step_atom, providers::step_call>::with<providers::step_outcome>,
    caf::replies_to<release_atom, providers::release_call>::with<providers::release_outcome>,
    caf::replies_to<sweep_atom, std::string>::with<providers::sweep_outcome>,
    caf::replies_to<inventory_atom>::with<inventory_reply>,
    caf::replies_to<test_atom>::with<providers::connectivity_report>,
    caf::reacts_to<update_atom, events::cluster_state>,
    caf::reacts_to<deliver_atom, std::uint64_t>>;

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

/// Owns the runtime cluster set: one cluster actor per registered cluster.
using cluster_registry_actor = caf::typed_actor<
    caf::replies_to<select_atom, selection_query>::with<cluster_choice>,
    caf::replies_to<lookup_atom, std::string>::with<cluster_choice>,
    caf::reacts_to<update_atom, events::cluster_state>>;

/// One live request.
using request_actor = caf::typed_actor<
    caf::reacts_to<resume_atom>,
    caf::reacts_to<appended_atom, append_outcome>,
    caf::reacts_to<retry_atom>>;

/// Spawns request actors on demand, at most one per request, and forgets them when they stop.
using request_supervisor_actor = caf::typed_actor<
    caf::reacts_to<start_atom, std::string>,
    caf::replies_to<count_atom>::with<std::size_t>>;

}  // namespace prov::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::step_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::step_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::release_call)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::release_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::sweep_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::providers::connectivity_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::events::cluster_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::append_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::inventory_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::selection_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(prov::actors::cluster_choice)
