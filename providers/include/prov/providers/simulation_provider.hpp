#pragma once
/// The simulation provider: a fully functional fake cloud for end-to-end tests and
/// demos. Per-step failure rates, a delay range per call, provider-style ids and endpoints,
/// and an inventory that survives restarts. Its decisions (fail or not, how long) are a pure
/// function of the call's idempotency key and the cluster's seed, so runs are reproducible
/// and a call repeated after a crash behaves exactly as its first try.
///
/// What each step creates, by service type:
///   vps:       allocate -> security_group, volume, server (a failed allocate leaves the first
///              two behind, reported so rollback removes them); configure -> floating_ip
///              (endpoints ssh/http/https); activate, verify -> nothing
///   namespace: allocate -> namespace; configure -> resource_quota, limit_range, role_binding,
///              network_policy (endpoints api, console, namespace)
///   managed:   allocate -> service_instance (endpoint url)
/// Activate delivers credentials (a generated password and, for vps, an SSH key pair id).
/// Suspend/reactivate flip a flag on the request's resources; metrics are plausible numbers
/// that change over time (a smooth function of the clock and the request id).

#include <memory>
#include <mutex>

#include "prov/events/cluster.hpp"
#include "prov/providers/inventory_store.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

class simulation_provider final : public provider {
 public:
  simulation_provider(std::string cluster_id, events::simulation_settings settings, inventory_store& store,
                      const clock& clk);

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call& call) override;
  sweep_outcome sweep(const std::string& request_id) override;
  action_outcome suspend(const service_call& call) override;
  action_outcome reactivate(const service_call& call) override;
  metrics_sample metrics(const service_call& call) override;
  result<std::vector<inventory_item>> inventory() override;
  connectivity_report test_connectivity() override;
  bool blocking() const noexcept override { return false; }

  /// Changes failure rates and delays (a PATCH of the cluster); thread-safe.
  void update(const events::simulation_settings& settings);

 private:
  events::simulation_settings settings() const;
  std::chrono::milliseconds delay_for(const std::string& key) const;
  bool decide_failure(const std::string& key, double rate) const;
  action_outcome set_suspended(const service_call& call, bool suspended);

  std::string _cluster;
  mutable std::mutex _mutex;
  events::simulation_settings _settings;
  inventory_store& _store;
  const clock& _clock;
};

}  // namespace prov::providers
