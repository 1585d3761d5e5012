#pragma once
/// The lifecycle events the outside world subscribes to, derived from the journal's
/// request events. One journal event maps to zero or more lifecycle events:
///
///   request.submitted              -> provisioning.started
///   request.step_succeeded         -> provisioning.step-completed (+ service.activated for activate)
///   request.resource_allocated     -> resource.allocated
///   request.completed              -> provisioning.completed
///   request.failed, request.rejected, request.cancelled -> provisioning.failed
///   request.suspended              -> service.suspended
///   request.reactivated            -> service.reactivated
///   request.rolled_back            -> provisioning.rolled-back
///
/// Bodies are CloudEvents 1.0 JSON: `id` "<journal event id>#<n>" (stable across replays, so
/// consumers can drop duplicates), `source` "/provisiond/request/<id>", `subject` the request
/// id, `time`, `sequence` (the journal event's sequence in its request stream), `tenant`
/// (extension) and `data` without any secret (credentials never appear).

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "prov/events/catalog.hpp"
#include "prov/events/journal.hpp"

namespace prov::events {

/// The lifecycle types, in R-6.1's order.
inline constexpr std::string_view lifecycle_types[] = {
    "provisioning.started",    "provisioning.step-completed", "resource.allocated",
    "service.activated",       "provisioning.completed",      "provisioning.failed",
    "service.suspended",       "service.reactivated",         "provisioning.rolled-back"};

struct lifecycle_event {
  std::string type;     ///< one of `lifecycle_types`
  std::string request;  ///< the request id (Kafka key: per-request order)
  std::string tenant;
  nlohmann::json cloudevent;
};

/// The lifecycle events one stored event stands for. `state` is the request's state *after*
/// the event (the caller folds the stream, e.g. a projection listener or a reader keeping
/// states); it supplies the tenant and the context (cluster, endpoints) for the bodies.
std::vector<lifecycle_event> to_lifecycle(const stored_event& stored, const any_event& event, const request_state& state);

/// True if `type` is one of the lifecycle types.
bool is_lifecycle_type(std::string_view type) noexcept;

}  // namespace prov::events
