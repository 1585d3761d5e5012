#pragma once
/// What the engine's actors share: the journal, the clock, provider dependencies, policy.
/// Owned by whoever spawns the actors (the engine, or a test) and outliving them.

#include <chrono>

#include "prov/actors/messages.hpp"
#include "prov/core/clock.hpp"
#include "prov/events/journal.hpp"
#include "prov/providers/provider_factory.hpp"

namespace prov::actors {

struct pipeline_options {
  /// Delay before retrying a failed release during rollback (doubles per failure, capped).
  std::chrono::milliseconds release_retry_base{1000};
  std::chrono::milliseconds release_retry_cap{60'000};
  /// Delay before retrying a journal append that failed with an I/O error.
  std::chrono::milliseconds append_retry{1000};
};

struct engine_context {
  events::journal* journal = nullptr;
  const clock* clk = nullptr;
  providers::provider_context providers;
  pipeline_options pipeline;
  cluster_registry_actor registry;  ///< set once spawned
};

}  // namespace prov::actors
