#pragma once
/// Webhooks as an aggregate: stream "webhook/<id>", type ids 110-129.
///
/// A tenant registers a URL and the lifecycle event types it wants; the engine signs
/// each delivery with the webhook's secret (kept sealed: `secret_sealed` is ciphertext from
/// the engine's secret box, never clear text). Every delivery attempt is an event of the
/// webhook's stream, so the stream grows with its traffic; the read model keeps only the last
/// attempts (see `projections/views.hpp`).
///
/// Who writes what:
/// - the API (engine commands, expected versions): registered, reactivated, deleted;
/// - the delivery dispatcher (`any_version`: facts it observed): delivery_attempted and
///   deactivated. Because those are appended without an expected version, the fold accepts
///   them also where they no longer change anything (an attempt finishing after a deletion,
///   a deactivation of a webhook deleted meanwhile) instead of refusing them.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "prov/core/error.hpp"
#include "prov/events/journal.hpp"
#include "prov/events/request_events.hpp"

namespace prov::events {

struct event_meta;

/// What became of one delivery attempt.
enum class delivery_outcome : std::uint8_t {
  delivered,  ///< the receiver answered 2xx
  failed,     ///< no 2xx answer: an HTTP error status, a transport error, a timeout, a refused address
  dropped,    ///< never attempted: the webhook's queue was full (not counted as a failure)
};
inline constexpr std::array<std::string_view, 3> delivery_outcome_names{"delivered", "failed", "dropped"};
inline std::span<const std::string_view> enum_names(delivery_outcome) { return delivery_outcome_names; }

/// A webhook was registered. `events` holds lifecycle types or "*" for all of them.
struct webhook_registered {
  static constexpr event_type_info info{110, 1, "webhook.registered"};
  std::string webhook_id;
  std::string tenant;
  std::string url;
  std::vector<std::string> events;
  std::string secret_sealed;  ///< sealed by the engine's secret box; never clear text
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("webhookId", x.webhook_id);
    f("tenant", x.tenant);
    f("url", x.url);
    f("events", x.events);
    f("secretSealed", x.secret_sealed);
    f("by", x.by);
  }
  bool operator==(const webhook_registered&) const = default;
};

/// The dispatcher stopped delivering to the webhook (after consecutive failures).
struct webhook_deactivated {
  static constexpr event_type_info info{111, 1, "webhook.deactivated"};
  std::string reason;
  std::uint32_t consecutive_failures = 0;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("reason", x.reason);
    f("consecutiveFailures", x.consecutive_failures);
  }
  bool operator==(const webhook_deactivated&) const = default;
};

/// Deliveries resume (for events after this one); the failure count starts again at zero.
struct webhook_reactivated {
  static constexpr event_type_info info{112, 1, "webhook.reactivated"};
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("by", x.by);
  }
  bool operator==(const webhook_reactivated&) const = default;
};

struct webhook_deleted {
  static constexpr event_type_info info{113, 1, "webhook.deleted"};
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("by", x.by);
  }
  bool operator==(const webhook_deleted&) const = default;
};

/// One delivery attempt of one lifecycle event (or a delivery dropped unattempted).
struct webhook_delivery_attempted {
  static constexpr event_type_info info{114, 1, "webhook.delivery_attempted"};
  std::string event_id;    ///< the CloudEvent id (also sent as `X-Webhook-Id`)
  std::string event_type;  ///< the lifecycle type
  std::string request_id;
  std::uint64_t position = 0;  ///< journal position of the event it delivers
  std::uint32_t attempt = 0;   ///< 1-based; 0 for a dropped delivery
  delivery_outcome outcome = delivery_outcome::failed;
  bool final = false;             ///< no further attempt of this event follows
  std::uint32_t status_code = 0;  ///< the receiver's HTTP status; 0 = no answer
  std::int64_t latency_ms = 0;
  std::string error;  ///< why it failed ("" when delivered)
  timestamp attempted_at{};

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("eventId", x.event_id);
    f("eventType", x.event_type);
    f("requestId", x.request_id);
    f("position", x.position);
    f("attempt", x.attempt);
    f("outcome", x.outcome);
    f("final", x.final);
    f("statusCode", x.status_code);
    f("latencyMs", x.latency_ms);
    f("error", x.error);
    f("attemptedAt", x.attempted_at);
  }
  bool operator==(const webhook_delivery_attempted&) const = default;
};

using webhook_event =
    std::variant<webhook_registered, webhook_deactivated, webhook_reactivated, webhook_deleted, webhook_delivery_attempted>;

struct webhook_state {
  std::string id;
  std::string tenant;
  std::string url;
  std::vector<std::string> events;
  std::string secret_sealed;
  bool active = false;
  bool deleted = false;
  std::uint32_t consecutive_failures = 0;  ///< failed attempts since the last delivered one
  std::string deactivation_reason;
  std::optional<timestamp> deactivated_at;
  std::uint64_t active_since = 0;  ///< sequence of the event that (re)activated it
  std::uint64_t attempts = 0;      ///< delivery records so far (attempts and drops)
  std::uint64_t delivered = 0;     ///< attempts answered 2xx
  std::uint64_t failed = 0;        ///< attempts not answered 2xx
  std::uint64_t dropped = 0;       ///< deliveries dropped on a full queue
  std::optional<timestamp> last_attempt_at;
  timestamp created_at{};
  timestamp updated_at{};
  std::uint64_t version = 0;

  bool exists() const noexcept { return version > 0; }
  /// Whether the webhook wants events of `type` (a lifecycle type).
  bool subscribes(std::string_view type) const noexcept;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("id", x.id);
    f("tenant", x.tenant);
    f("url", x.url);
    f("events", x.events);
    f("secretSealed", x.secret_sealed);
    f("active", x.active);
    f("deleted", x.deleted);
    f("consecutiveFailures", x.consecutive_failures);
    f("deactivationReason", x.deactivation_reason);
    f("deactivatedAt", x.deactivated_at);
    f("activeSince", x.active_since);
    f("attempts", x.attempts);
    f("delivered", x.delivered);
    f("failed", x.failed);
    f("dropped", x.dropped);
    f("lastAttemptAt", x.last_attempt_at);
    f("createdAt", x.created_at);
    f("updatedAt", x.updated_at);
    f("version", x.version);
  }
  bool operator==(const webhook_state&) const = default;
};

/// Stream id of a webhook: "webhook/<id>".
std::string webhook_stream(std::string_view webhook_id);

/// The fold step in place (see `apply.hpp`): on error the state is exactly as it was.
status apply_to(webhook_state& state, const webhook_event& event, const event_meta& meta);

/// Folds a webhook's stored events from scratch; stops at the first that does not fit.
result<webhook_state> fold_webhook(std::span<const stored_event> events);

/// Folds the events after `snapshot` onto it: `snapshot` is this webhook's state at its
/// `version` (a default one: nothing yet), e.g. its projection, and `tail` its stream from
/// `version + 1` on. The result is the fold from scratch, for a read of the tail only: the
/// stream grows with every delivery attempt (R-1.1's snapshot plus the tail). A tail that does
/// not go on from the snapshot is `corrupt`.
result<webhook_state> fold_webhook(webhook_state snapshot, std::span<const stored_event> tail);

}  // namespace prov::events
