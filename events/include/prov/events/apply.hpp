#pragma once
/// Folding events into aggregate state. Pure: the result depends only on the arguments.
/// An event that does not fit the state (wrong sequence, forbidden transition, a step out of
/// order, an unknown resource) is refused with an error and the state is left as it was.

#include <span>

#include "prov/core/error.hpp"
#include "prov/events/catalog.hpp"

namespace prov::events {

/// The fold step, pure: returns the next state or why the event does not fit.
result<request_state> apply(request_state state, const request_event& event, const event_meta& meta);
result<cluster_state> apply(cluster_state state, const cluster_event& event, const event_meta& meta);
result<tenant_state> apply(tenant_state state, const tenant_event& event, const event_meta& meta);

/// The same fold step in place, for hot paths that must not copy the state: on success the
/// state has advanced; on error it is exactly as it was (every rule is checked before any
/// field changes).
status apply_to(request_state& state, const request_event& event, const event_meta& meta);
/// As above, taking the event's strings instead of copying them (the event is left valid but
/// unspecified, whether or not it applied).
status apply_to(request_state& state, request_event&& event, const event_meta& meta);
status apply_to(cluster_state& state, const cluster_event& event, const event_meta& meta);
status apply_to(tenant_state& state, const tenant_event& event, const event_meta& meta);
status apply_to(rule_state& state, const rule_event& event, const event_meta& meta);

/// Replaces, in `state`, every time the request fold takes from an event's meta (creation,
/// last change, a step's start and finish) that equals `from` with `to`. A request actor
/// checks its next append by folding it with a placeholder time, and stamps the commit time
/// once the journal has answered: the fold need not be done twice.
void restamp(request_state& state, timestamp from, timestamp to) noexcept;

/// Folds a request's stored events from scratch (decode + apply each). Stops at the first
/// event that does not decode or apply and returns that error.
result<request_state> fold_request(std::span<const stored_event> events);
result<cluster_state> fold_cluster(std::span<const stored_event> events);
result<tenant_state> fold_tenant(std::span<const stored_event> events);
result<rule_state> fold_rule(std::span<const stored_event> events);

}  // namespace prov::events
