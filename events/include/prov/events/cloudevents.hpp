#pragma once
/// CloudEvents 1.0 JSON (structured mode) for journal events, as shown to the outside world
/// (HTTP `/events`, Kafka, webhooks). Attributes:
///
///     specversion "1.0" | id "<stream>/<sequence>" | source "/provisiond/<stream>"
///     type "<event type name>" | subject "<aggregate id>" | time RFC 3339 (microseconds)
///     datacontenttype "application/json" | sequence <int> | position <int> | eventversion <int>
///     data { the event's fields }
///
/// Events marked secret (credentials) are rendered without their payload: `{"redacted":true,
/// "fields":[...]}`; they cannot be parsed back.
///
/// `sequence` is the event's 1-based index in its stream; `position` its index in the journal's
/// global log; `eventversion` the payload schema version.

#include <nlohmann/json.hpp>

#include "prov/core/error.hpp"
#include "prov/events/catalog.hpp"
#include "prov/events/journal.hpp"

namespace prov::events {

/// Renders a stored event; `errc::corrupt` if its payload does not decode.
result<nlohmann::json> to_cloudevent(const stored_event& stored);

/// Renders an already decoded event with its stored envelope.
nlohmann::json to_cloudevent(const stored_event& stored, const any_event& event);

/// Parses a CloudEvent written by `to_cloudevent` back into a stored event (payload
/// re-encoded in binary). Unknown types and malformed attributes are `errc::invalid_argument`.
result<stored_event> from_cloudevent(const nlohmann::json& ce);

}  // namespace prov::events
