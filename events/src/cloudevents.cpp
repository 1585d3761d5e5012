#include "prov/events/cloudevents.hpp"

#include "prov/core/time_format.hpp"

namespace prov::events {

namespace {

constexpr std::string_view source_prefix = "/provisiond/";

template <std::size_t I = 0>
result<any_event> event_from_json(std::string_view type, const nlohmann::json& data) {
  if constexpr (I == std::variant_size_v<any_event>) {
    return make_error(errc::invalid_argument, "unknown event type " + std::string{type});
  } else {
    using E = std::variant_alternative_t<I, any_event>;
    if (E::info.name != type) {
      return event_from_json<I + 1>(type, data);
    }
    auto e = from_json_value<E>(data);
    if (!e) {
      return std::move(e).err();
    }
    return any_event{std::move(*e)};
  }
}

}  // namespace

nlohmann::json to_cloudevent(const stored_event& stored, const any_event& event) {
  nlohmann::json ce = nlohmann::json::object();
  ce["specversion"] = "1.0";
  ce["id"] = stored.stream + "/" + std::to_string(stored.sequence);
  ce["source"] = std::string{source_prefix} + stored.stream;
  ce["type"] = std::string{type_name(event)};
  ce["subject"] = std::string{stream_key(stored.stream)};
  ce["time"] = format_rfc3339(stored.time, 6);
  ce["datacontenttype"] = "application/json";
  ce["sequence"] = stored.sequence;
  ce["position"] = stored.position;
  ce["eventversion"] = stored.version;
  ce["data"] = std::visit(
      [](const auto& e) -> nlohmann::json {
        using E = std::decay_t<decltype(e)>;
        if constexpr (requires { E::secret; }) {
          // Secrets never leave the engine: only which fields were delivered.
          return nlohmann::json{{"redacted", true}, {"fields", e.fields_present}};
        } else {
          return to_json_value(e);
        }
      },
      event);
  return ce;
}

result<nlohmann::json> to_cloudevent(const stored_event& stored) {
  auto event = decode(stored);
  if (!event) {
    return std::move(event).err();
  }
  return to_cloudevent(stored, *event);
}

result<stored_event> from_cloudevent(const nlohmann::json& ce) {
  auto bad = [](std::string what) { return make_error(errc::invalid_argument, "cloudevent: " + what); };
  if (!ce.is_object() || ce.value("specversion", "") != "1.0") {
    return bad("specversion must be \"1.0\"");
  }
  const auto source = ce.value("source", "");
  if (source.rfind(source_prefix, 0) != 0 || source.size() == source_prefix.size()) {
    return bad("source must start with " + std::string{source_prefix});
  }
  const auto seq = ce.find("sequence");
  const auto pos = ce.find("position");
  if (seq == ce.end() || !seq->is_number_unsigned() || pos == ce.end() || !pos->is_number_unsigned()) {
    return bad("sequence and position must be non-negative integers");
  }
  const auto time = parse_rfc3339(ce.value("time", ""));
  if (!time) {
    return bad("time must be RFC 3339");
  }
  const auto data = ce.find("data");
  if (data == ce.end()) {
    return bad("data is missing");
  }
  auto event = event_from_json(ce.value("type", ""), *data);
  if (!event) {
    return std::move(event).err();
  }
  auto record = to_record(*event);
  if (ce.value("eventversion", 0) != record.version) {
    return bad("eventversion does not match the type's schema version");
  }
  stored_event out;
  out.position = pos->get<std::uint64_t>();
  out.stream = source.substr(source_prefix.size());
  out.sequence = seq->get<std::uint64_t>();
  out.time = *time;
  out.type_id = record.type_id;
  out.version = record.version;
  out.payload = std::move(record.payload);
  return out;
}

}  // namespace prov::events
