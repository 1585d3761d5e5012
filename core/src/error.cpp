#include "prov/core/error.hpp"

namespace prov {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::conflict: return "conflict";
    case errc::version_conflict: return "version_conflict";
    case errc::invalid_transition: return "invalid_transition";
    case errc::unauthorized: return "unauthorized";
    case errc::forbidden: return "forbidden";
    case errc::quota_exceeded: return "quota_exceeded";
    case errc::no_cluster_available: return "no_cluster_available";
    case errc::provider_error: return "provider_error";
    case errc::io_error: return "io_error";
    case errc::corrupt: return "corrupt";
    case errc::unavailable: return "unavailable";
    case errc::payload_too_large: return "payload_too_large";
    case errc::unsupported: return "unsupported";
    case errc::timeout: return "timeout";
    case errc::internal: return "internal";
    case errc::overloaded: return "overloaded";
  }
  return "internal";
}

}  // namespace prov
