#pragma once
/// Internals of the Proxmox VE provider, open to its tests: the API client (token or ticket
/// authentication, form-encoded parameters, `{"data": ...}` answers, one re-authentication on
/// 401), the error mapping, the ownership marker in a VM's description, tags and sizes.
///
/// Reference: the PVE API viewer, https://pve.proxmox.com/pve-docs/api-viewer/ (parameters,
/// formats, returns), and https://pve.proxmox.com/wiki/Proxmox_VE_API (authentication: API
/// tokens as `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`; tickets from
/// POST /access/ticket as the `PVEAuthCookie` cookie plus the `CSRFPreventionToken` header on
/// writes; errors: the HTTP status with {"data": null, "message": "...", "errors": {...}}).

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/api_support.hpp"
#include "prov/core/error.hpp"
#include "prov/providers/http/client.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers::pve {

using json = nlohmann::json;
using params = std::vector<std::pair<std::string, std::string>>;

/// An answer of the API, or why there is none.
struct reply {
  std::optional<provider_error> failure;  ///< transport failure (no HTTP status)
  unsigned status = 0;
  json data;            ///< the answer's "data"
  std::string message;  ///< an error's "message" (trailing newline removed)
  json errors;          ///< parameter errors {"<param>": "<why>"} of a 400

  bool ok() const noexcept { return !failure && status >= 200 && status < 300; }
  /// Whether an error answer's message contains `text`.
  bool says(std::string_view text) const noexcept {
    return !failure && !ok() && message.find(text) != std::string::npos;
  }
};

/// An error answer or transport failure as a provider error (see docs/providers/proxmox.md).
provider_error error_of(const reply& r, std::string_view what);
using detail::transport_error;  // detail/api_support.hpp

/// Whether the answer says the VM does not exist (404, or PVE's 500 "Configuration file
/// 'nodes/<node>/qemu-server/<vmid>.conf' does not exist").
bool vm_gone(const reply& r);

/// application/x-www-form-urlencoded.
std::string form_encode(const params& p);

/// A VMID as PVE sends it (a number, or a string from /cluster/nextid); 0 if neither.
std::int64_t vmid_of(const json& j);

/// What our VM descriptions say (plain lines, readable in the GUI's Notes).
struct marker {
  std::string request_id;
  std::string tenant;
  std::string idempotency_key;  ///< of the call that created the VM
  std::string created_at;       ///< RFC 3339

  bool operator==(const marker&) const = default;
};

std::string render_marker(const marker& m);
/// The marker in a description, or nullopt when it is not ours.
std::optional<marker> parse_marker(std::string_view description);

inline constexpr std::string_view managed_tag = "provisiond";
inline constexpr std::string_view suspended_tag = "provisiond-suspended";

/// A `pve-tag-list` ("a;b", also ',' or ' ' separated) as tags, and back (';' separated).
std::vector<std::string> split_tags(std::string_view list);
std::string join_tags(const std::vector<std::string>& tags);

/// The size of a drive ("local-lvm:vm-100-disk-0,size=32G") in GiB, or nullopt.
std::optional<double> drive_size_gib(std::string_view drive);

/// A property string ("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1") as ordered pairs;
/// a bare first element ("virtio") has an empty value.
std::vector<std::pair<std::string, std::string>> parse_property_string(std::string_view text);
std::string render_property_string(const std::vector<std::pair<std::string, std::string>>& props);

/// The node a task runs on, from its UPID ("UPID:<node>:<pid>:...").
std::string upid_node(std::string_view upid);

/// The PVE API: authenticates each call (API token, or a ticket obtained and renewed with the
/// user's password), sends parameters as a form (query string for GET and DELETE), unwraps
/// `data`. A 401 renews the ticket (or repeats the token once) and repeats the call once.
/// Thread-safe.
class api_client {
 public:
  struct options {
    std::string endpoint;  ///< https://pve.example:8006 (`/api2/json` appended)
    std::string token_id;
    std::string secret;
    std::string username;
    std::string password;
    http::client_options http;
  };

  explicit api_client(options o);

  reply call(const std::string& method, const std::string& path, const params& p = {});
  const std::string& endpoint() const noexcept { return _endpoint; }
  /// Ticket logins so far (tests: renewed once on expiry).
  std::size_t logins() const;

 private:
  std::optional<provider_error> login_locked();
  reply send(const std::string& method, const std::string& path, const params& p, const std::string& ticket,
             const std::string& csrf);

  options _options;
  std::string _endpoint;  ///< without /api2/json
  http::client _http;
  mutable std::mutex _mutex;
  std::string _ticket;
  std::string _csrf;
  std::size_t _logins = 0;
};

}  // namespace prov::providers::pve
