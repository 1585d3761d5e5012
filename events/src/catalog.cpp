#include "prov/events/catalog.hpp"

#include <utility>

#include "prov/core/ids.hpp"

namespace prov::events {

namespace {

template <std::size_t I = 0>
result<any_event> decode_alternative(std::uint16_t type_id, std::uint8_t version, std::string_view payload) {
  if constexpr (I == std::variant_size_v<any_event>) {
    return make_error(errc::corrupt, "unknown event type id " + std::to_string(type_id));
  } else {
    using E = std::variant_alternative_t<I, any_event>;
    if (E::info.id != type_id) {
      return decode_alternative<I + 1>(type_id, version, payload);
    }
    if (version != E::info.version) {
      return make_error(errc::corrupt, std::string{E::info.name} + ": unsupported schema version " +
                                           std::to_string(version));
    }
    auto decoded = decode_binary<E>(payload);
    if (!decoded) {
      return make_error(errc::corrupt, std::string{E::info.name} + ": " + decoded.err().message);
    }
    return any_event{std::move(*decoded)};
  }
}

template <std::size_t I = 0>
std::string_view name_of(std::uint16_t type_id) {
  if constexpr (I == std::variant_size_v<any_event>) {
    return {};
  } else {
    using E = std::variant_alternative_t<I, any_event>;
    return E::info.id == type_id ? E::info.name : name_of<I + 1>(type_id);
  }
}

// Narrows `any_event` to a sub-variant whose alternatives are all alternatives of any_event.
template <class Sub>
std::optional<Sub> narrow(any_event e) {
  return std::visit(
      [](auto&& x) -> std::optional<Sub> {
        using E = std::decay_t<decltype(x)>;
        if constexpr (std::is_constructible_v<Sub, E>) {
          return Sub{std::move(x)};
        } else {
          return std::nullopt;
        }
      },
      std::move(e));
}

}  // namespace

event_record to_record(const any_event& e) {
  return std::visit([](const auto& x) { return to_record(x); }, e);
}

result<any_event> decode(std::uint16_t type_id, std::uint8_t version, std::string_view payload) {
  return decode_alternative(type_id, version, payload);
}

std::string_view type_name(const any_event& e) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::info.name; }, e);
}

std::string_view type_name(std::uint16_t type_id) { return name_of(type_id); }

std::optional<request_event> as_request_event(any_event e) { return narrow<request_event>(std::move(e)); }
std::optional<cluster_event> as_cluster_event(any_event e) { return narrow<cluster_event>(std::move(e)); }
std::optional<tenant_event> as_tenant_event(any_event e) { return narrow<tenant_event>(std::move(e)); }
std::optional<rule_event> as_rule_event(any_event e) { return narrow<rule_event>(std::move(e)); }
std::optional<webhook_event> as_webhook_event(any_event e) { return narrow<webhook_event>(std::move(e)); }

std::string_view stream_category(std::string_view stream) {
  const auto slash = stream.find('/');
  return slash == std::string_view::npos ? stream : stream.substr(0, slash);
}

std::string_view stream_key(std::string_view stream) {
  const auto slash = stream.find('/');
  return slash == std::string_view::npos ? std::string_view{} : stream.substr(slash + 1);
}

std::string request_stream(std::string_view request_id) { return "request/" + std::string{request_id}; }
std::string cluster_stream(std::string_view cluster_id) { return "cluster/" + std::string{cluster_id}; }
std::string tenant_stream(std::string_view tenant_id) { return "tenant/" + std::string{tenant_id}; }
std::string rule_stream(std::string_view rule_id) { return "rule/" + std::string{rule_id}; }
std::string idempotency_stream(std::string_view tenant_id, std::string_view key) {
  return "idempotency/" + std::string{tenant_id} + "/" + sha256_hex(key);
}

}  // namespace prov::events
