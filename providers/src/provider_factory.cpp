#include "prov/providers/provider_factory.hpp"

#include "prov/events/codec.hpp"
#include "prov/providers/kubernetes_provider.hpp"
#include "prov/providers/proxmox_provider.hpp"
#include "prov/providers/manual_provider.hpp"
#include "prov/providers/openstack_provider.hpp"
#include "prov/providers/simulation_provider.hpp"
#include "prov/providers/vsphere_provider.hpp"

namespace prov::providers {

namespace {

class unsupported_provider final : public provider {
 public:
  explicit unsupported_provider(events::provider_type type)
      : _error{"unsupported", "no driver for provider type " + std::string{events::enum_name(type)} + " in this build",
               false} {}
  /// A provider whose cluster registration cannot work (bad settings, missing credentials).
  explicit unsupported_provider(provider_error why) : _error(std::move(why)) {}

  step_outcome run_step(const step_call&) override {
    step_outcome out;
    out.error = _error;
    return out;
  }
  release_outcome release(const release_call&) override { return release_outcome{true, {}, {}}; }
  sweep_outcome sweep(const std::string&) override { return sweep_outcome{true, {}, {}, {}}; }
  action_outcome suspend(const service_call&) override { return action_outcome{false, _error, {}}; }
  action_outcome reactivate(const service_call&) override { return action_outcome{false, _error, {}}; }
  metrics_sample metrics(const service_call&) override {
    metrics_sample m;
    m.error = _error;
    return m;
  }
  result<std::vector<inventory_item>> inventory() override { return std::vector<inventory_item>{}; }
  connectivity_report test_connectivity() override { return connectivity_report{false, {}, _error.message}; }
  bool blocking() const noexcept override { return false; }

 private:
  provider_error _error;
};

}  // namespace

bool has_driver(events::provider_type type) noexcept {
  return type == events::provider_type::simulation || type == events::provider_type::manual ||
         type == events::provider_type::kubernetes ||
         type == events::provider_type::openshift || type == events::provider_type::openstack ||
         type == events::provider_type::vmware || type == events::provider_type::proxmox;
}

// A driver that cannot use its cluster's registration fails every call, permanently.
template <class Driver>
std::unique_ptr<provider> or_misconfigured(const events::cluster_state& cluster, result<std::unique_ptr<Driver>> made) {
  if (!made) {
    return std::make_unique<unsupported_provider>(
        provider_error{"misconfigured", "cluster " + cluster.id + ": " + made.err().message, false});
  }
  return std::move(*made);
}

std::unique_ptr<provider> make_provider(const events::cluster_state& cluster, const provider_context& ctx) {
  using events::provider_type;
  switch (cluster.type) {
    case provider_type::simulation:
      if (ctx.simulation_inventory != nullptr && ctx.clk != nullptr) {
        return std::make_unique<simulation_provider>(cluster.id, cluster.simulation, *ctx.simulation_inventory, *ctx.clk);
      }
      break;
    case provider_type::manual:
      return std::make_unique<manual_provider>(cluster.id);
    case provider_type::kubernetes:
    case provider_type::openshift:
      return or_misconfigured(cluster, kubernetes_provider::from_cluster(cluster, ctx.secrets, ctx.clk));
    case provider_type::openstack:
      return or_misconfigured(cluster, openstack_provider::from_cluster(cluster, ctx.secrets, ctx.clk));
    case provider_type::vmware:
      return or_misconfigured(cluster, vsphere_provider::from_cluster(cluster, ctx.secrets, ctx.clk));
    case provider_type::proxmox:
      return or_misconfigured(cluster, proxmox_provider::from_cluster(cluster, ctx.secrets, ctx.clk));
  }
  return std::make_unique<unsupported_provider>(cluster.type);
}

}  // namespace prov::providers
