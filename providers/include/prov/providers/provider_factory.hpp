#pragma once
/// Builds the provider for a registered cluster.

#include <memory>

#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"
#include "prov/providers/inventory_store.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

/// What providers may need from the engine.
struct provider_context {
  inventory_store* simulation_inventory = nullptr;  ///< the simulated cloud's storage
  const clock* clk = nullptr;
  const secret_box* secrets = nullptr;  ///< opens clusters' sealed credentials
};

/// The provider for `cluster`. Types without a driver in this build get a provider whose every
/// call fails with a non-retryable `unsupported` error (the request fails and rolls back).
std::unique_ptr<provider> make_provider(const events::cluster_state& cluster, const provider_context& ctx);

/// Whether this build has a driver for the type.
bool has_driver(events::provider_type type) noexcept;

}  // namespace prov::providers
