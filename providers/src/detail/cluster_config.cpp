#include "detail/cluster_config.hpp"

#include <cstdint>

namespace prov::providers::detail {

error setting_field::bad(const std::string& why) const {
  return make_error(errc::invalid_argument, std::string{_provider} + " settings: " + _key + " " + why);
}

status setting_field::string(std::string& out) const {
  if (!_value.is_string()) {
    return bad("must be a string");
  }
  out = _value.get<std::string>();
  return {};
}

status setting_field::boolean(bool& out) const {
  if (!_value.is_boolean()) {
    return bad("must be true or false");
  }
  out = _value.get<bool>();
  return {};
}

status setting_field::millis(std::chrono::milliseconds& out) const {
  if (!_value.is_number_integer() || _value.get<std::int64_t>() <= 0) {
    return bad("must be a positive integer (milliseconds)");
  }
  out = std::chrono::milliseconds{_value.get<std::int64_t>()};
  return {};
}

result<std::string> open_credentials(const events::cluster_state& cluster, const secret_box* secrets,
                                     std::string_view expected) {
  if (cluster.credentials_sealed.empty()) {
    return make_error(errc::invalid_argument,
                      "cluster " + cluster.id + " has no credentials (" + std::string{expected} + ")");
  }
  if (secrets == nullptr) {
    return make_error(errc::unavailable, "no secret box to open the credentials of cluster " + cluster.id);
  }
  auto opened = secrets->open(cluster.credentials_sealed);
  if (!opened) {
    return make_error(errc::invalid_argument,
                      "cannot open the credentials of cluster " + cluster.id + ": " + opened.err().message);
  }
  return std::move(*opened);
}

}  // namespace prov::providers::detail
