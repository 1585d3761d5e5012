#pragma once
/// The SSRF guard of webhooks: which URLs a tenant may register and which addresses a
/// delivery may connect to. Tenants choose the URL, so without a guard a webhook would let
/// them make the engine POST to the cloud's metadata service (169.254.169.254) or to services
/// only reachable from inside.
///
/// Checked twice: at registration on the URL's form and, for an IP literal host, its address;
/// at every delivery on every address the host name resolves to (so a name that resolves to
/// 169.254.169.254 is refused too). Plain-HTTP deliveries are then sent to the address that was
/// checked (the name is only the `Host` header), so a second lookup cannot swap it (DNS
/// rebinding); HTTPS deliveries verify the certificate against the name.
///
/// Address classes and the policy (defaults: only public addresses):
/// - public: always allowed
/// - loopback (127.0.0.0/8, ::1): `allow_loopback`
/// - private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10): `allow_private`
/// - link-local and metadata (169.254.0.0/16, fe80::/10, 100.100.100.200, fd00:ec2::254) and
///   unspecified ("this network" 0.0.0.0/8, ::): only with `allow_link_local`
/// - multicast, broadcast and reserved (224.0.0.0/3, ff00::/8): never
/// IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) IPv6
/// addresses are judged by the IPv4 address they carry.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/error.hpp"

namespace prov::actors {

struct webhook_address_policy {
  bool allow_loopback = false;
  bool allow_private = false;
  bool allow_link_local = false;  ///< also metadata and unspecified addresses: only for special set-ups
};

enum class address_class { public_address, loopback, private_address, link_local, metadata, unspecified, reserved };

/// The name of a class, for messages ("link-local", ...).
std::string_view to_string(address_class c) noexcept;

/// The class of an IP address literal (IPv4 dotted quad or IPv6, no brackets); nullopt if
/// `ip` is not one.
std::optional<address_class> classify_address(std::string_view ip);

/// Whether `policy` lets deliveries reach an address of class `c`.
bool allowed(address_class c, const webhook_address_policy& policy) noexcept;

/// A webhook URL taken apart.
struct webhook_target {
  bool tls = false;
  std::string host;       ///< without IPv6 brackets
  std::string port;       ///< always set (80/443 by default)
  std::string target;     ///< path and query, at least "/"
  std::string authority;  ///< host[:port] as written (the `Host` header)
  bool host_is_ip = false;
};

/// Longest URL a webhook may have.
inline constexpr std::size_t max_webhook_url = 2048;

/// Parses and checks a webhook URL's form: http or https, at most `max_webhook_url`
/// characters, a host, no user info, no fragment, no control characters or spaces, a port from
/// 1 to 65535; a host that looks numeric must be a dotted-quad IPv4 address (no "0x7f.1" or
/// "2130706433" shorthands). `errc::invalid_argument` naming the problem otherwise.
result<webhook_target> parse_webhook_url(std::string_view url);

/// The registration check: the URL's form, then, for an IP literal host, its address (and
/// `localhost`, `*.localhost` and a few well-known metadata host names). Other names are
/// checked after resolution, at each delivery (`check_resolved`). `errc::invalid_argument` naming the rule otherwise.
status check_webhook_url(std::string_view url, const webhook_address_policy& policy);

/// The delivery check after name resolution: every address must be allowed (one refused
/// address refuses the delivery). `errc::forbidden` naming the address otherwise.
status check_resolved(std::string_view host, const std::vector<std::string>& addresses,
                      const webhook_address_policy& policy);

}  // namespace prov::actors
