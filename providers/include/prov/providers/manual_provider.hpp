#pragma once
/// The manual provider for vendor-managed services: allocation waits for a person.
/// Its allocate step answers `awaiting_input`; the request shows "Awaiting Manual Input" until
/// an admin posts the access details (endpoints, credentials), which complete that step. The
/// other steps have nothing to do and succeed. Nothing exists at a provider the engine can
/// reach, so release, sweep and the inventory are empty, and suspend/reactivate are recorded
/// only (the vendor is told out of band).

#include "prov/providers/provider.hpp"

namespace prov::providers {

class manual_provider final : public provider {
 public:
  explicit manual_provider(std::string cluster_id) : _cluster(std::move(cluster_id)) {}

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call&) override { return release_outcome{true, {}, {}}; }
  sweep_outcome sweep(const std::string&) override { return sweep_outcome{true, {}, {}, {}}; }
  action_outcome suspend(const service_call&) override { return action_outcome{true, {}, {}}; }
  action_outcome reactivate(const service_call&) override { return action_outcome{true, {}, {}}; }
  metrics_sample metrics(const service_call&) override;
  result<std::vector<inventory_item>> inventory() override { return std::vector<inventory_item>{}; }
  connectivity_report test_connectivity() override {
    return connectivity_report{true, {}, "manual cluster " + _cluster + ": nothing to reach"};
  }
  bool blocking() const noexcept override { return false; }

 private:
  std::string _cluster;
};

}  // namespace prov::providers
