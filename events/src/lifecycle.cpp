#include "prov/events/lifecycle.hpp"

#include "prov/core/time_format.hpp"

namespace prov::events {

namespace {

nlohmann::json envelope(const stored_event& stored, std::string_view type, int n, const request_state& s) {
  nlohmann::json ce = nlohmann::json::object();
  ce["specversion"] = "1.0";
  ce["id"] = stored.stream + "/" + std::to_string(stored.sequence) + "#" + std::to_string(n);
  ce["source"] = "/provisiond/" + stored.stream;
  ce["type"] = std::string{type};
  ce["subject"] = s.id;
  ce["time"] = format_rfc3339(stored.time, 6);
  ce["datacontenttype"] = "application/json";
  ce["sequence"] = stored.sequence;
  ce["tenant"] = s.tenant;
  return ce;
}

nlohmann::json summary(const request_state& s) {
  nlohmann::json d{{"requestId", s.id},
                   {"tenant", s.tenant},
                   {"type", enum_name(s.type)},
                   {"provider", enum_name(s.provider)},
                   {"region", s.region},
                   {"state", enum_name(s.state)}};
  if (!s.cluster.empty()) {
    d["cluster"] = s.cluster;
  }
  return d;
}

}  // namespace

bool is_lifecycle_type(std::string_view type) noexcept {
  for (auto t : lifecycle_types) {
    if (t == type) {
      return true;
    }
  }
  return false;
}

std::vector<lifecycle_event> to_lifecycle(const stored_event& stored, const any_event& event, const request_state& s) {
  std::vector<lifecycle_event> out;
  auto add = [&](std::string_view type, nlohmann::json data) {
    auto ce = envelope(stored, type, static_cast<int>(out.size()), s);
    ce["data"] = std::move(data);
    out.push_back(lifecycle_event{std::string{type}, s.id, s.tenant, std::move(ce)});
  };
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, request_submitted>) {
          auto d = summary(s);
          d["spec"] = {{"cpuMillis", e.spec.cpu_millis}, {"memoryMb", e.spec.memory_mb}, {"storageGb", e.spec.storage_gb}};
          add("provisioning.started", std::move(d));
        } else if constexpr (std::is_same_v<E, step_succeeded>) {
          auto d = summary(s);
          d["step"] = enum_name(e.step);
          d["attempt"] = e.attempt;
          add("provisioning.step-completed", d);
          if (e.step == step_kind::activate) {
            d.erase("step");
            d.erase("attempt");
            d["endpoints"] = s.endpoints;
            add("service.activated", std::move(d));
          }
        } else if constexpr (std::is_same_v<E, resource_allocated>) {
          auto d = summary(s);
          d["resource"] = {{"kind", e.kind}, {"id", e.resource_id}, {"name", e.name}, {"step", enum_name(e.step)}};
          add("resource.allocated", std::move(d));
        } else if constexpr (std::is_same_v<E, request_completed>) {
          auto d = summary(s);
          d["endpoints"] = s.endpoints;
          d["credentialsAvailable"] = !s.credentials_sealed.empty();
          add("provisioning.completed", std::move(d));
        } else if constexpr (std::is_same_v<E, request_failed> || std::is_same_v<E, request_rejected> ||
                             std::is_same_v<E, request_cancelled>) {
          auto d = summary(s);
          d["reason"] = s.reason;
          d["message"] = s.reason_message;
          add("provisioning.failed", std::move(d));
        } else if constexpr (std::is_same_v<E, request_suspended>) {
          auto d = summary(s);
          d["reason"] = s.reason_message;
          add("service.suspended", std::move(d));
        } else if constexpr (std::is_same_v<E, request_reactivated>) {
          add("service.reactivated", summary(s));
        } else if constexpr (std::is_same_v<E, request_rolled_back>) {
          auto d = summary(s);
          d["reason"] = s.reason;
          add("provisioning.rolled-back", std::move(d));
        }
      },
      event);
  return out;
}

}  // namespace prov::events
