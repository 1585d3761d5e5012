#pragma once
/// What every real provider reads from a cluster's registration, with one set of error
/// messages: the fields of its `settings` object, and its sealed credentials.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "prov/core/clock.hpp"
#include "prov/core/error.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/events/cluster.hpp"

namespace prov::providers::detail {

/// One field of a provider's settings object. Errors read
/// "<provider> settings: <key> must be ..." (errc::invalid_argument).
class setting_field {
 public:
  setting_field(std::string_view provider, const std::string& key, const nlohmann::json& value)
      : _provider(provider), _key(key), _value(value) {}

  error bad(const std::string& why) const;
  status string(std::string& out) const;
  status boolean(bool& out) const;
  /// A positive integer of milliseconds.
  status millis(std::chrono::milliseconds& out) const;

 private:
  std::string_view _provider;
  const std::string& _key;
  const nlohmann::json& _value;
};

/// The clear text of `cluster`'s sealed credentials. `expected` says what they should hold,
/// for the error when there are none (e.g. "a bearer token").
result<std::string> open_credentials(const events::cluster_state& cluster, const secret_box* secrets,
                                     std::string_view expected);

/// The end of every real provider's `from_cluster`, once the cluster's type and endpoint are
/// checked: its parsed settings, then its credentials opened and parsed, then the provider.
template <class Provider, class Credentials, class Settings>
result<std::unique_ptr<Provider>> assemble_provider(const events::cluster_state& cluster, result<Settings> settings,
                                                    const secret_box* secrets, std::string_view expected_credentials,
                                                    const clock* clk) {
  if (!settings) {
    return std::move(settings).err();
  }
  auto opened = open_credentials(cluster, secrets, expected_credentials);
  if (!opened) {
    return std::move(opened).err();
  }
  auto credentials = Credentials::parse(*opened);
  if (!credentials) {
    return std::move(credentials).err();
  }
  return std::make_unique<Provider>(cluster.id, cluster.endpoint, std::move(*settings), std::move(*credentials), clk);
}

}  // namespace prov::providers::detail
