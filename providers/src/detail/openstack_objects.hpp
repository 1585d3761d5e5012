#pragma once
/// Internals of the OpenStack provider, open to its tests: the ownership marks it puts on
/// everything it makes, the names, and the request bodies it sends. Pure functions, no I/O.
///
/// API references for the bodies:
///   security groups   https://docs.openstack.org/api-ref/network/v2/#create-security-group
///   rules             https://docs.openstack.org/api-ref/network/v2/#create-security-group-rule
///   tags              https://docs.openstack.org/api-ref/network/v2/#replace-all-tags
///   floating IPs      https://docs.openstack.org/api-ref/network/v2/#create-floating-ip
///   volumes           https://docs.openstack.org/api-ref/block-storage/v3/#create-a-volume
///   servers           https://docs.openstack.org/api-ref/compute/#create-server
///   server actions    https://docs.openstack.org/api-ref/compute/#stop-server-os-stop-action

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prov/events/request.hpp"
#include "prov/providers/openstack_provider.hpp"

namespace prov::providers::openstack {

using json = nlohmann::json;

/// Nova server and Cinder volume metadata keys (Nova allows [a-zA-Z0-9-_:. ] in keys).
inline constexpr std::string_view meta_managed = "provisiond";
inline constexpr std::string_view meta_request = "provisiond-request";
inline constexpr std::string_view meta_tenant = "provisiond-tenant";
inline constexpr std::string_view meta_key = "provisiond-key";
inline constexpr std::string_view meta_step = "provisiond-step";
/// Tag on every Nova server and Neutron object we make.
inline constexpr std::string_view managed_tag = "provisiond";
/// Neutron descriptions of our objects start with this.
inline constexpr std::string_view description_prefix = "provisiond ";

/// Who made an object and in which call: rendered into its metadata, tags or description.
struct owner {
  std::string request_id;
  std::string tenant;
  std::string idempotency_key;
  events::step_kind step = events::step_kind::allocate;
};

/// The per-request tag: "provisiond-req-<request id>" when the id is a valid tag (letters,
/// digits, '-', '_', '.', at most 40 characters: Nova and Neutron take 60 and refuse '/' and
/// ','), else "provisiond-req-<32 hex of SHA-256(id)>".
std::string request_tag(std::string_view request_id);

/// Names: "<prefix><request id>" for the server and the group, "...-boot" for the volume.
/// Characters other than [A-Za-z0-9-_.] become '-' (names end up as guest host names).
std::string server_name(std::string_view prefix, std::string_view request_id);
std::string security_group_name(std::string_view prefix, std::string_view request_id);
std::string volume_name(std::string_view prefix, std::string_view request_id);

/// Nova/Cinder metadata of an owner (values cut to 255 characters).
json metadata_for(const owner& o);
/// The owner recorded in metadata, if it is ours.
std::optional<owner> owner_from_metadata(const json& metadata);
/// Neutron description: `provisiond {"request":..,"key":..,"step":..,"tenant":..}` within
/// 255 characters (the tenant, then the key, are left out if it would be longer).
std::string description_for(const owner& o);
std::optional<owner> owner_from_description(std::string_view description);

/// The owner of an API object: Nova/Cinder `metadata`, else Neutron `description`.
std::optional<owner> owner_of(const json& object);
/// Whether an API object belongs to this request.
bool owned_by(const json& object, std::string_view request_id);

/// `{"security_group": {...}}` for a new group of this owner.
json security_group_body(std::string_view name, const owner& o);
/// One ingress IPv4 TCP rule for `port` from anywhere.
json ingress_rule_body(std::string_view group_id, int port);
/// The TCP ports opened in configure.
const std::vector<int>& ingress_ports();
/// `{"tags": [...]}` for Neutron's replace-all-tags and Nova's server tags.
json tags_body(std::string_view request_id);

/// `{"volume": {...}}`: a bootable volume made from `image_id`.
json volume_body(std::string_view name, std::int64_t size_gb, std::string_view image_id, const owner& o);

/// What a server is made of.
struct server_plan {
  std::string name;
  std::string flavor_id;
  std::string image_id;
  std::string network_id;
  std::string security_group_id;
  std::string volume_id;          ///< the Cinder volume (boot_volume = cinder)
  std::int64_t volume_size_gb = 0;  ///< the volume Nova makes (boot_volume = nova_bdm)
  openstack_boot_volume boot_volume = openstack_boot_volume::cinder;
  std::string key_name;
  std::string user_data;  ///< plain text ("" = none); sent base64-encoded
};
/// `{"server": {...}}` with metadata, tags and a block_device_mapping_v2 boot volume.
json server_body(const server_plan& plan, const owner& o);

/// `{"floatingip": {...}}` on `network_id`, associated with `port_id`.
json floating_ip_body(std::string_view network_id, std::string_view port_id, const owner& o);

/// The login password of a request's server: derived from the cluster's secret and the
/// request id (HMAC-SHA256, 20 characters of [A-Za-z0-9]), so a step re-run after a crash
/// delivers the same password without storing it anywhere.
std::string login_password(std::string_view cluster_secret, std::string_view request_id);
/// cloud-init user data that creates `user` with sudo and that password, SSH passwords on.
std::string cloud_config(std::string_view user, std::string_view password);

/// The step of a step name, if it is one.
std::optional<events::step_kind> step_from_name(std::string_view name);

}  // namespace prov::providers::openstack
