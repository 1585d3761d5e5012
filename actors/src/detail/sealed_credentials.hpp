#pragma once
/// Credentials never reach the journal in clear: they are sealed with the engine's key first.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prov/core/secret_box.hpp"
#include "prov/events/request_events.hpp"

namespace prov::actors::detail {

/// The event that delivers `credentials`: their JSON object sealed by `box` (nothing without a
/// box), and the names of the fields in clear.
inline events::credentials_delivered sealed_credentials(const secret_box* box,
                                                        const std::map<std::string, std::string>& credentials) {
  nlohmann::json plain = nlohmann::json::object();
  std::vector<std::string> names;
  for (const auto& [k, v] : credentials) {
    plain[k] = v;
    names.push_back(k);
  }
  return events::credentials_delivered{box != nullptr ? box->seal(plain.dump()) : std::string{}, std::move(names)};
}

}  // namespace prov::actors::detail
