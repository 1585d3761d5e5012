#pragma once
/// Every event type the journal may hold, and the conversions between them and journal
/// records: `to_record` (binary payload) and `decode` (by type id and schema version).

#include <optional>
#include <string_view>
#include <variant>

#include "prov/core/error.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/codec.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/request_events.hpp"
#include "prov/events/rule.hpp"
#include "prov/events/tenant.hpp"
#include "prov/events/webhook.hpp"

namespace prov::events {

using any_event =
    std::variant<request_submitted, cluster_assigned, step_started, step_succeeded, step_failed,
                 resource_allocated, resource_released, request_completed, request_failed,
                 rollback_started, request_rolled_back, retry_scheduled, request_waiting,
                 approval_required, request_approved, request_rejected, request_cancelled,
                 action_requested, request_suspended, request_reactivated, action_failed,
                 credentials_delivered, input_requested, input_provided, orphan_found,
                 cluster_registered, cluster_updated, cluster_tested, rule_created, rule_deleted,
                 tenant_created, tenant_quota_set, tenant_token_rotated, idempotency_claimed,
                 webhook_registered, webhook_deactivated, webhook_reactivated, webhook_deleted,
                 webhook_delivery_attempted>;

/// Where an event sits in its stream, and when it was committed.
struct event_meta {
  std::uint64_t sequence = 0;
  timestamp time{};
};

/// Encodes an event as a journal record.
template <class E>
event_record to_record(const E& e) {
  event_record r;
  r.type_id = E::info.id;
  r.version = E::info.version;
  encode_binary(e, r.payload);
  return r;
}

event_record to_record(const any_event& e);

/// Decodes a record's payload by its type id and version; unknown ids or versions and
/// malformed payloads are `errc::corrupt`.
result<any_event> decode(std::uint16_t type_id, std::uint8_t version, std::string_view payload);
inline result<any_event> decode(const stored_event& e) {
  return decode(e.type_id, e.version, e.payload);
}

/// The type name ("request.step_started") of an event or of a type id ("" if unknown).
std::string_view type_name(const any_event& e);
std::string_view type_name(std::uint16_t type_id);

/// Narrows to the request aggregate's events (nullopt for other aggregates' events).
std::optional<request_event> as_request_event(any_event e);
std::optional<cluster_event> as_cluster_event(any_event e);
std::optional<tenant_event> as_tenant_event(any_event e);
std::optional<rule_event> as_rule_event(any_event e);
std::optional<webhook_event> as_webhook_event(any_event e);

/// The aggregate category of a stream id: the part before the first '/'.
std::string_view stream_category(std::string_view stream);
/// The aggregate id of a stream id: the part after the first '/'.
std::string_view stream_key(std::string_view stream);

}  // namespace prov::events
