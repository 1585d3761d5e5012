#pragma once
/// The Proxmox VE provider: one QEMU VM per request through the PVE REST API
/// (`/api2/json`), authenticated with an API token (or a user's ticket).
///
/// What each step does (service type `vps` only):
///   allocate:  clones `template` (POST /nodes/{node}/qemu/{template}/clone) or creates a VM
///              (POST /nodes/{node}/qemu) with a VMID from GET /cluster/nextid (taken
///              meanwhile: a new id, a few times), named deterministically from the request,
///              its description carrying our marker (request id, tenant, idempotency key);
///              waits for the task (UPID) -> resource "vm" with id "<node>/<vmid>"
///   configure: PUT .../config: cores, memory, net0 on `bridge`, our tags; grows the disk to
///              the spec (PUT .../resize) -> endpoints vm, node, vmid, name
///   activate:  POST .../status/start, waits for the task and for status "running"
///   verify:    GET .../status/current is running (not paused); with `agentPing` the QEMU
///              guest agent answers (and reports the guest's IP)
/// Ownership: the description marker, written at creation (the clone/create call itself), so
/// a re-run finds the VM by name and adopts it only if the marker names this request; a VM
/// with our name that is not ours is a non-retryable `name_taken`. The tag `provisiond`
/// marks our VMs in listings. Release stops and destroys the VM (gone = success; a VMID
/// reused by someone else is left alone); suspend shuts the guest down (or pauses it);
/// reactivate starts (or resumes) it. Metrics are the VM's live counters.
///
/// Settings and credentials are documented in docs/providers/proxmox.md.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/clock.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

/// Non-secret settings of a Proxmox VE cluster (the cluster's `settings` JSON).
struct proxmox_settings {
  std::string node;            ///< the node VMs are made on (required)
  std::int64_t template_id = 0;  ///< VMID of the template to clone (0 = create a VM)
  bool full_clone = true;      ///< full (independent) clones; false = linked clones of a template
  std::string storage;         ///< storage of new disks (required to create; full clones' target)
  std::string bridge = "vmbr0";
  std::string pool;            ///< resource pool of new VMs ("" = none)
  std::string ostype = "l26";
  std::string scsihw = "virtio-scsi-single";
  std::string disk = "scsi0";  ///< the disk created, or grown to the spec on clones
  std::string net_model = "virtio";
  std::string name_prefix = "prov-";
  std::string suspend_mode = "shutdown";  ///< "shutdown" (forced after the timeout) or "pause"
  std::chrono::seconds shutdown_timeout{60};
  bool agent_ping = false;  ///< verify pings the QEMU guest agent (and reads the guest's IP)
  int nextid_attempts = 5;  ///< VMIDs tried when the one from /cluster/nextid is taken meanwhile
  std::chrono::milliseconds task_timeout{600'000};
  std::chrono::milliseconds power_timeout{120'000};
  std::chrono::milliseconds verify_timeout{120'000};
  std::chrono::milliseconds poll_interval{1'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{60'000};
  bool insecure_skip_verify = false;  ///< no TLS certificate checks: test labs only, never production

  /// Parses the settings JSON. Unknown keys are refused; `node` is required.
  static result<proxmox_settings> parse(std::string_view json);
};

/// Secret part of a Proxmox registration: an API token ({"tokenId": "user@realm!name",
/// "secret": "<uuid>"}) or a user's password ({"username": "user@realm", "password": ...},
/// tickets renewed on expiry), and optionally the CA certificate(s) as PEM text ("caPem").
struct proxmox_credentials {
  std::string token_id;
  std::string secret;
  std::string username;
  std::string password;
  std::string ca_pem;

  static result<proxmox_credentials> parse(std::string_view json);
};

class proxmox_provider final : public provider {
 public:
  /// `endpoint` is the API URL (https://pve.example:8006), with or without `/api2/json`.
  proxmox_provider(std::string cluster_id, std::string endpoint, proxmox_settings settings,
                   proxmox_credentials credentials, const clock* clk = nullptr);
  ~proxmox_provider() override;

  static result<std::unique_ptr<proxmox_provider>> from_cluster(const events::cluster_state& cluster,
                                                                const secret_box* secrets, const clock* clk);

  /// The VM name of a request: a DNS label of `prefix`, the tenant (at most 24 of
  /// [a-z0-9-]) and 12 hex of SHA-256(request id). A pure function, so a re-run finds the VM.
  static std::string vm_name(std::string_view prefix, std::string_view tenant, std::string_view request_id);

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call& call) override;
  sweep_outcome sweep(const std::string& request_id) override;
  action_outcome suspend(const service_call& call) override;
  action_outcome reactivate(const service_call& call) override;
  metrics_sample metrics(const service_call& call) override;
  result<std::vector<inventory_item>> inventory() override;
  connectivity_report test_connectivity() override;

  const proxmox_settings& settings() const noexcept { return _settings; }

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
  proxmox_settings _settings;
};

}  // namespace prov::providers
