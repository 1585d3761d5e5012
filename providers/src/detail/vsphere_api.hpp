#pragma once
/// Internals of the vSphere provider, open to its tests: the Automation REST API client (one
/// session per provider, the `/api` and `/rest` dialects, re-authentication once on 401), the
/// error mapping, the ownership marker kept in a tag's description, and a TCP probe.
///
/// Calls are written once, in `/api` terms (vSphere 7.0U2+); `render` turns them into the
/// `/rest` form of vSphere 6.5 - 7.0 (`/rest/com/vmware/cis/...` for CIS services, `id:` path
/// ids and `~action=` for tagging, `filter.<name>.<n>` list filters, `/power/<action>` paths,
/// bodies wrapped in `{"spec": ...}` / `{"create_spec": ...}`, answers in `{"value": ...}`).
/// References: vSphere Automation API (https://developer.vmware.com/apis/vsphere-automation/latest/,
/// now https://developer.broadcom.com/xapis/vsphere-automation-api/latest/) and, for `/rest`,
/// https://developer.broadcom.com/xapis/vsphere-automation-api/v6.5-v7.0u1/.

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

namespace prov::providers::vsphere {

using json = nlohmann::json;

enum class dialect { api, rest };

/// One API call in `/api` terms.
struct operation {
  std::string method = "GET";
  std::string path;                                         ///< e.g. "/api/vcenter/vm/vm-1/power"
  std::vector<std::pair<std::string, std::string>> query;  ///< e.g. {"names", "x"}, {"action", "start"}
  std::optional<json> body;
  std::string rest_wrap;  ///< `/rest` wraps the body as {"<rest_wrap>": body} ("" = as is)
};

/// An operation as an HTTP request of one dialect.
struct rendered {
  std::string method;
  std::string target;  ///< path and query
  std::string body;    ///< "" = no body
};

/// Renders `op` for `d`; `errc::unsupported` when the dialect lacks the operation (VM clone
/// needs `/api`).
result<rendered> render(const operation& op, dialect d);

/// An answer of the API, or why there is none.
struct reply {
  std::optional<provider_error> failure;  ///< transport failure (no HTTP status)
  unsigned status = 0;
  json value;              ///< the answer (unwrapped from `/rest`'s {"value": ...}); null if none
  std::string error_type;  ///< "NOT_FOUND", "ALREADY_EXISTS", ... of an error answer
  std::string message;     ///< the first default_message of an error answer

  bool ok() const noexcept { return !failure && status >= 200 && status < 300; }
  bool is(std::string_view type) const noexcept { return !failure && error_type == type; }
};

/// Parses an error body of either dialect ({"error_type", "messages"} or {"type", "value"}).
void parse_error(const json& body, reply& r);

/// An error answer or transport failure as a provider error (see docs/providers/vsphere.md).
provider_error error_of(const reply& r, std::string_view what);

using detail::transport_error;  // detail/api_support.hpp

/// A map as `/api` renders it (an object) or as `/rest` does ([{"key": k, "value": v}]), as
/// an object.
json as_map(const json& j);

/// What a request's tag says (its description, JSON).
struct marker {
  std::string request_id;
  std::string tenant;
  std::string vm_name;
  std::string idempotency_key;  ///< of the call that created the VM
  std::string created_at;       ///< RFC 3339
  bool creating = false;        ///< set before the VM is created: an untagged VM named `vm_name` is ours
  bool suspended = false;

  bool operator==(const marker&) const = default;
};

std::string render_marker(const marker& m);
/// The marker in a tag description, or nullopt when it is not ours.
std::optional<marker> parse_marker(std::string_view description);

/// The vCenter session: logs in on first use (detecting the dialect unless pinned), keeps the
/// session id, logs in again once when a call is answered 401 (an expired session).
/// Thread-safe.
class api_client {
 public:
  struct options {
    std::string endpoint;  ///< https://vcenter.example (no trailing slash needed)
    std::string username;
    std::string password;
    std::string dialect = "auto";  ///< "auto", "api", "rest"
    http::client_options http;
  };

  explicit api_client(options o);

  /// One call with the session header; a 401 logs in again and repeats the call once.
  reply call(const operation& op);
  /// Logs in unless a session exists.
  std::optional<provider_error> connect();
  /// The dialect in use (after `connect`).
  dialect current() const;
  const std::string& endpoint() const noexcept { return _options.endpoint; }
  /// Logins made so far (tests: re-authentication happens once, not per call).
  std::size_t logins() const;

 private:
  std::optional<provider_error> login_locked();
  reply send(const std::string& method, const std::string& target, const std::string& body,
             const std::string& session, dialect d);

  options _options;
  http::client _http;
  mutable std::mutex _mutex;
  std::string _session;
  std::optional<dialect> _dialect;
  std::size_t _logins = 0;
};

/// Whether a TCP connection to host:port opens within `timeout` ("" on success, else why not).
std::string tcp_probe(const std::string& host, int port, std::chrono::milliseconds timeout);

}  // namespace prov::providers::vsphere
