#pragma once
/// What every real provider reads from a cluster's registration, with one set of error
/// messages: the fields of its `settings` object, and its sealed credentials.

#include <chrono>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

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

}  // namespace prov::providers::detail
