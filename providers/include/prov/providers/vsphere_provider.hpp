#pragma once
/// The VMware vSphere provider: one VM per request through vCenter's Automation REST
/// API, `/api` (vSphere 7.0U2 and later) with a fallback to `/rest` (6.5 - 7.0).
///
/// What each step does (service type `vps` only):
///   allocate:  creates the VM from the spec (POST /api/vcenter/vm: cpu count, memory MiB, one
///              new disk of storage GiB), or clones `template` (a VM: POST
///              /api/vcenter/vm?action=clone; a content library item: vm-template deploy),
///              powered off, named deterministically from the request -> resource "vm" with
///              the vCenter id ("vm-123")
///   configure: cpu/memory brought to the spec (clones), a NIC on `network` unless one is
///              there -> endpoints vm, name, vcenter
///   activate:  power start, then polls until POWERED_ON
///   verify:    power state POWERED_ON and VMware Tools running when available (or required);
///              with verifyMode "tcp" a TCP connect to the guest's IP (from VMware Tools)
/// Ownership: one tag per request (named by the request id) in the tag category
/// `tagCategory` ("provisiond"), its description a JSON marker with the request id, tenant,
/// VM name and the creating call's idempotency key; the VM is attached to it. The tag is
/// written before the VM is created (marked "creating"), so a VM with our name that a crash
/// left untagged is recognised and adopted; a VM with our name that is not ours is a
/// non-retryable `name_taken`. Release powers off and deletes; sweep deletes every VM of the
/// request's tag, then the tag. Suspend suspends (or powers off) the VM; reactivate starts it.
///
/// Settings and credentials are documented in docs/providers/vsphere.md.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/clock.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

/// Non-secret settings of a vSphere cluster (the cluster's `settings` JSON).
struct vsphere_settings {
  /// Placement: each an id ("group-v3", "resgroup-8", "datastore-12", "network-13",
  /// "datacenter-2", "domain-c8") or a name looked up once (within `datacenter` if set).
  std::string datacenter;
  std::string folder;         ///< VM folder (required to create or clone)
  std::string resource_pool;  ///< resource pool, or
  std::string cluster;        ///< a cluster (its root resource pool); one of the two is required
  std::string datastore;      ///< required to create; clones default to the source's
  std::string network;        ///< the network of the NIC ("" = no NIC is added)
  std::string template_id;    ///< "vm-42" (VM or VM template to clone) or a library item id; "" = create
  std::string guest_os = "OTHER_LINUX_64";  ///< VM.GuestOS of created VMs
  std::string nic_type = "VMXNET3";
  std::string name_prefix = "prov-";
  std::string tag_category = "provisiond";
  std::string verify_mode = "api";  ///< "api" or "tcp"
  int verify_port = 22;             ///< TCP probe port (verifyMode "tcp")
  bool require_guest_tools = false;  ///< verify waits for VMware Tools to run
  std::string suspend_action = "suspend";  ///< "suspend" or "stop"
  std::string api = "auto";                ///< "auto", "api" (/api) or "rest" (/rest)
  std::chrono::milliseconds power_timeout{120'000};
  std::chrono::milliseconds verify_timeout{300'000};
  std::chrono::milliseconds poll_interval{1'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{60'000};
  bool insecure_skip_verify = false;  ///< no TLS certificate checks: test labs only, never production

  /// Parses the settings JSON ("" = defaults). Unknown keys are refused.
  static result<vsphere_settings> parse(std::string_view json);
};

/// Secret part of a vSphere registration: a vCenter user and password, and optionally the
/// vCenter's CA certificate(s) as PEM text.
struct vsphere_credentials {
  std::string username;
  std::string password;
  std::string ca_pem;

  /// Parses `{"username": "...", "password": "...", "caPem": "..."}`.
  static result<vsphere_credentials> parse(std::string_view json);
};

class vsphere_provider final : public provider {
 public:
  /// `endpoint` is the vCenter URL (https://vcenter.example), without /api or /rest.
  vsphere_provider(std::string cluster_id, std::string endpoint, vsphere_settings settings,
                   vsphere_credentials credentials, const clock* clk = nullptr);
  ~vsphere_provider() override;

  /// The provider for a registered cluster: settings parsed, credentials opened with `secrets`.
  static result<std::unique_ptr<vsphere_provider>> from_cluster(const events::cluster_state& cluster,
                                                                const secret_box* secrets, const clock* clk);

  /// The VM name of a request: `prefix` + the tenant (lowercase letters, digits, '-'; at most
  /// 24) + '-' + 12 hex of SHA-256(request id). A pure function, so a re-run finds the VM.
  static std::string vm_name(std::string_view prefix, std::string_view tenant, std::string_view request_id);

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call& call) override;
  sweep_outcome sweep(const std::string& request_id) override;
  action_outcome suspend(const service_call& call) override;
  action_outcome reactivate(const service_call& call) override;
  metrics_sample metrics(const service_call& call) override;
  result<std::vector<inventory_item>> inventory() override;
  connectivity_report test_connectivity() override;

  const vsphere_settings& settings() const noexcept { return _settings; }

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
  vsphere_settings _settings;
};

}  // namespace prov::providers
