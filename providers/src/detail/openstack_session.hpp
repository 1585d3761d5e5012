#pragma once
/// Internals of the OpenStack provider, open to its tests: a Keystone v3 session (token,
/// catalog, refresh before expiry, one re-authentication on 401) and the mapping of OpenStack
/// answers to provider errors.
///
/// API references followed:
///   Keystone v3 tokens   https://docs.openstack.org/api-ref/identity/v3/#password-authentication-with-scoped-authorization
///   application creds    https://docs.openstack.org/api-ref/identity/v3/#authenticating-with-an-application-credential
///   microversions        https://docs.openstack.org/api-guide/compute/microversions.html
///   error bodies         https://docs.openstack.org/api-guide/compute/faults.html,
///                        https://docs.openstack.org/api-ref/network/v2/#response-codes

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/api_support.hpp"
#include "prov/core/clock.hpp"
#include "prov/providers/http/client.hpp"
#include "prov/providers/openstack_provider.hpp"

namespace prov::providers::openstack {

using json = nlohmann::json;

/// The services the provider uses, by catalog type.
enum class service : std::uint8_t { compute, network, volume, image };
std::string_view service_name(service s) noexcept;

/// An answer from an OpenStack API, or why there is none.
struct api_reply {
  std::optional<provider_error> failure;  ///< transport or authentication failure (no status)
  unsigned status = 0;
  json body;         ///< null when the body is not JSON
  std::string text;  ///< the raw body (for error messages)

  bool ok() const noexcept { return !failure && status >= 200 && status < 300; }
};

using detail::transport_error;  // detail/api_support.hpp

/// The human message inside an OpenStack error body: Nova/Cinder `{"<name>": {"message"}}`,
/// Neutron `{"NeutronError": {"message"}}`, Keystone `{"error": {"message"}}`, else the text.
std::string error_detail(const json& body, const std::string& text);

/// An HTTP error status as a provider error: 5xx, 429 and plain 409 retryable; 400, 401, 403,
/// 404 and every quota refusal (413, 403 or 409 saying "quota"/"OverQuota") not.
provider_error status_error(const api_reply& r, std::string_view what);

/// What a token says about itself.
struct token_info {
  std::string project_id;
  std::string project_name;
  std::string user_name;
  std::vector<std::string> service_types;  ///< in the catalog
  std::chrono::milliseconds latency{0};    ///< of the token request
};

class session {
 public:
  /// `keystone_url` ends in `/v3` (added if missing). `clk` drives token expiry.
  session(std::string keystone_url, openstack_credentials credentials, const openstack_settings& settings,
          const clock& clk);

  /// One request to a service: `path` is relative to the catalog endpoint (e.g. "/servers"),
  /// or absolute when it starts with http. A token is issued first if there is none or it
  /// expires soon; a 401 answer drops the token, issues a new one and repeats the request
  /// once.
  api_reply call(service s, std::string_view method, const std::string& path, const json* body = nullptr);

  /// Issues a fresh token (whatever is cached) and reports what it says.
  result<token_info> issue_token();

  /// The project the token is scoped to ("" before the first token).
  std::string project_id();
  /// The catalog endpoint of a service (after a token was issued).
  result<std::string> endpoint(service s);

  http::client& client() noexcept { return _client; }
  const std::string& keystone_url() const noexcept { return _keystone; }
  /// Tokens issued so far (for tests).
  std::size_t tokens_issued() const noexcept { return _issued; }

 private:
  struct token_state {
    std::string token;
    timestamp refresh_at{};  ///< local time after which the token is renewed
    std::string project_id;
    std::vector<std::pair<std::string, std::string>> endpoints;  ///< service name -> URL
  };

  /// Issues a token (the lock held by the caller). Returns the error of a failed issue.
  std::optional<provider_error> issue_locked(token_info* info);
  /// The current token and the endpoint of `s`, issuing a token when needed.
  std::optional<provider_error> current(service s, bool force, std::string& token, std::string& base);
  json auth_body() const;

  std::string _keystone;
  openstack_credentials _credentials;
  std::string _region;
  std::string _interface;
  std::string _compute_microversion;
  const clock& _clock;
  http::client _client;
  std::mutex _mutex;
  token_state _token;
  std::size_t _issued = 0;
};

}  // namespace prov::providers::openstack
