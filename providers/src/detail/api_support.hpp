#pragma once
/// What every real provider's API client shares: how a transport failure of the HTTP client
/// becomes a provider error, and reading a string out of a JSON answer.

#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "prov/core/error.hpp"
#include "prov/providers/provider.hpp"

namespace prov::providers::detail {

/// A transport failure as a provider error: timeouts and unreachable servers may pass,
/// certificate problems, bad configuration and unsupported requests do not.
provider_error transport_error(const error& e, std::string_view what);

/// The string at `path` in `j` ("" if any step is missing or it is not a string).
std::string text_at(const nlohmann::json& j, std::initializer_list<std::string_view> path);

}  // namespace prov::providers::detail
