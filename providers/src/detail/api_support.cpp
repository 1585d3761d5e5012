#include "detail/api_support.hpp"

namespace prov::providers::detail {

provider_error transport_error(const error& e, std::string_view what) {
  const std::string message = std::string{what} + ": " + e.message;
  switch (e.code) {
    case errc::timeout: return provider_error{"timeout", message, true};
    case errc::unavailable: return provider_error{"unreachable", message, true};
    case errc::provider_error: {
      // Certificate problems and bad CA material will not heal by themselves.
      const bool config =
          e.message.find("certificate") != std::string::npos || e.message.find("cannot load") != std::string::npos;
      return provider_error{"tls", message, !config};
    }
    case errc::payload_too_large: return provider_error{"bad_response", message, false};
    case errc::invalid_argument: return provider_error{"misconfigured", message, false};
    case errc::unsupported: return provider_error{"unsupported", message, false};
    default: return provider_error{"internal", message, true};
  }
}

std::string text_at(const nlohmann::json& j, std::initializer_list<std::string_view> path) {
  const nlohmann::json* at = &j;
  for (auto key : path) {
    if (!at->is_object()) {
      return {};
    }
    auto it = at->find(std::string{key});
    if (it == at->end()) {
      return {};
    }
    at = &*it;
  }
  return at->is_string() ? at->get<std::string>() : std::string{};
}

}  // namespace prov::providers::detail
