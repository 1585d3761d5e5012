#pragma once
/// The OpenStack provider: a VPS per request, made through the cloud's REST APIs with
/// Keystone v3 authentication (password or application credential) and the service catalog.
///
/// What each step does (service type `vps` only):
///   allocate:  a Neutron security group, a Cinder boot volume made from the image (or, with
///              `bootFromVolume: "nova-bdm"`, a volume Nova makes from the image), a Nova server
///              booted from it with that group -> resources "security_group", "volume",
///              "server"; the login credentials (`username`, `password`) when cloud-init
///              credentials are on
///   configure: ingress rules TCP 22/80/443 (IPv4) in the group; a floating IP on the external
///              network associated with the server's port -> resource "floating_ip";
///              endpoints ssh, http, https, floatingIp, fixedIp, server
///   activate:  polls the server until ACTIVE; ERROR fails non-retryably with its fault
///   verify:    TCP connect to the floating IP's port 22 and an HTTP probe (`verifyReachable`),
///              else by the API: server ACTIVE and ours, its port bound and in our group, the
///              floating IP on that port (ports stay DOWN on clouds without a data plane)
/// Every object is marked with the request id, the creating call's idempotency key and step:
/// Nova server metadata and tags, Cinder volume metadata, Neutron descriptions and tags. A step
/// run again (a crash, a retry) finds and adopts what an earlier try made instead of making a
/// second one; `sweep` and `inventory` find by the same marks. Rollback releases the floating
/// IP, the server (waiting until it is gone), the volume, the security group; 404 on delete is
/// success. Suspend = `os-stop` (or `suspend`), reactivate = `os-start` (or `resume`).
///
/// Settings and credentials are documented in docs/providers/openstack.md.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "prov/core/clock.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers {

/// How the boot volume is made.
enum class openstack_boot_volume : std::uint8_t {
  cinder,    ///< POST a Cinder volume from the image, then boot Nova from that volume
  nova_bdm,  ///< Nova block_device_mapping_v2 source image -> destination volume
};

/// Non-secret settings of an OpenStack cluster (the cluster's `settings` JSON).
struct openstack_settings {
  std::string region;                  ///< catalog region ("" = the first endpoint of each type)
  std::string interface = "public";    ///< catalog interface: public, internal or admin
  std::string image;                   ///< Glance image name or id (required)
  std::string flavor;                  ///< flavor name or id ("" = smallest fitting cpu/memory)
  std::string network;                 ///< private network name or id (required)
  std::string external_network;        ///< network of floating IPs ("" = the only external one)
  std::int64_t volume_size_gb = 0;     ///< boot volume size (0 = the request's storageGb)
  bool verify_reachable = true;        ///< verify over the network (else by the API)
  bool http_probe = true;              ///< with verifyReachable: also an HTTP GET
  int ssh_port = 22;                   ///< the TCP port verify connects to
  int http_port = 80;                  ///< the port of the HTTP probe
  openstack_boot_volume boot_volume = openstack_boot_volume::cinder;
  std::string name_prefix = "prov-";   ///< names: <prefix><request id>[-boot]
  std::string key_name;                ///< a Nova keypair for the server ("" = none)
  bool cloud_init_credentials = true;  ///< create `login_user` with a password via user_data
  std::string login_user = "cloud-user";
  std::string suspend_action = "stop";  ///< "stop" (os-stop/os-start) or "suspend" (suspend/resume)
  std::string compute_microversion = "2.79";
  std::chrono::milliseconds poll_interval{1'000};
  std::chrono::milliseconds volume_timeout{180'000};    ///< volume available
  std::chrono::milliseconds port_timeout{120'000};      ///< the server's port appears
  std::chrono::milliseconds activate_timeout{240'000};  ///< server ACTIVE
  std::chrono::milliseconds delete_timeout{120'000};    ///< server/volume gone
  std::chrono::milliseconds power_timeout{120'000};     ///< SHUTOFF/ACTIVE after stop/start
  std::chrono::milliseconds verify_timeout{120'000};    ///< port 22 answers
  std::chrono::milliseconds probe_timeout{5'000};       ///< one TCP connect / HTTP probe
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{60'000};
  bool verify_tls = true;

  /// Parses the settings JSON: `image` and `network` are required, every other key has the
  /// default above. Unknown keys are refused.
  static result<openstack_settings> parse(std::string_view json);
};

/// Secret part of a cluster's registration (sealed at rest): a Keystone v3 password or an
/// application credential, and optionally the CA certificate(s) of the cloud's endpoints.
struct openstack_credentials {
  std::string username;
  std::string user_id;
  std::string password;
  std::string user_domain = "Default";
  std::string project;
  std::string project_id;
  std::string project_domain = "Default";
  std::string application_credential_id;
  std::string application_credential_secret;
  std::string ca_pem;

  bool uses_application_credential() const noexcept { return !application_credential_id.empty(); }

  /// Parses `{"username","password","userDomain","project","projectDomain"}` (or `userId`,
  /// `projectId`) or `{"applicationCredentialId","applicationCredentialSecret"}`, each with
  /// an optional `caPem`. Errors never echo a value.
  static result<openstack_credentials> parse(std::string_view json);
};

class openstack_provider final : public provider {
 public:
  /// `endpoint` is the Keystone URL (`https://keystone:5000/v3`; `/v3` is added if missing).
  openstack_provider(std::string cluster_id, std::string endpoint, openstack_settings settings,
                     openstack_credentials credentials, const clock* clk = nullptr);
  ~openstack_provider() override;

  /// The provider for a registered cluster: settings parsed, credentials opened with
  /// `secrets`. Errors say what is wrong with the registration (never the secret itself).
  static result<std::unique_ptr<openstack_provider>> from_cluster(const events::cluster_state& cluster,
                                                                  const secret_box* secrets, const clock* clk);

  step_outcome run_step(const step_call& call) override;
  release_outcome release(const release_call& call) override;
  sweep_outcome sweep(const std::string& request_id) override;
  action_outcome suspend(const service_call& call) override;
  action_outcome reactivate(const service_call& call) override;
  metrics_sample metrics(const service_call& call) override;
  result<std::vector<inventory_item>> inventory() override;
  connectivity_report test_connectivity() override;

  const openstack_settings& settings() const noexcept { return _settings; }

 private:
  struct impl;
  std::unique_ptr<impl> _impl;
  openstack_settings _settings;
};

}  // namespace prov::providers
