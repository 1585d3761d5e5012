#pragma once
/// Events of the request aggregate. Each is a plain struct with a stable type id and name
/// and a schema version (`info`), and lists its fields for the codec. Type ids 1-49 belong to
/// requests; never reuse or renumber one. Changing a payload means a new version.

#include <cstdint>
#include <array>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "prov/events/request.hpp"

namespace prov::events {

/// Identity of an event type in the journal and in JSON.
struct event_type_info {
  std::uint16_t id;
  std::uint8_t version;
  std::string_view name;
};

/// A request was accepted (state: queued).
struct request_submitted {
  static constexpr event_type_info info{1, 1, "request.submitted"};
  std::string request_id;
  std::string tenant;
  service_type type = service_type::vps;
  provider_type provider = provider_type::simulation;
  std::string region;
  resource_spec spec;
  std::vector<std::string> depends_on;
  std::string idempotency_key;
  std::string requested_cluster;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("requestId", x.request_id);
    f("tenant", x.tenant);
    f("type", x.type);
    f("provider", x.provider);
    f("region", x.region);
    f("spec", x.spec);
    f("dependsOn", x.depends_on);
    f("idempotencyKey", x.idempotency_key);
    f("requestedCluster", x.requested_cluster);
  }
  bool operator==(const request_submitted&) const = default;
};

/// The cluster that will run the request was chosen.
struct cluster_assigned {
  static constexpr event_type_info info{2, 1, "request.cluster_assigned"};
  std::string cluster;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cluster", x.cluster);
  }
  bool operator==(const cluster_assigned&) const = default;
};

/// A step attempt begins; its provider call will carry `idempotency_key`.
struct step_started {
  static constexpr event_type_info info{3, 1, "request.step_started"};
  step_kind step = step_kind::allocate;
  std::uint32_t attempt = 1;
  std::string idempotency_key;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("attempt", x.attempt);
    f("idempotencyKey", x.idempotency_key);
  }
  bool operator==(const step_started&) const = default;
};

/// A step attempt succeeded; `endpoints` are merged into the request's endpoints.
struct step_succeeded {
  static constexpr event_type_info info{4, 1, "request.step_succeeded"};
  step_kind step = step_kind::allocate;
  std::uint32_t attempt = 1;
  std::map<std::string, std::string> endpoints;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("attempt", x.attempt);
    f("endpoints", x.endpoints);
  }
  bool operator==(const step_succeeded&) const = default;
};

/// A step attempt failed.
struct step_failed {
  static constexpr event_type_info info{5, 1, "request.step_failed"};
  step_kind step = step_kind::allocate;
  std::uint32_t attempt = 1;
  std::string code;
  std::string message;
  bool retryable = false;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("attempt", x.attempt);
    f("code", x.code);
    f("message", x.message);
    f("retryable", x.retryable);
  }
  bool operator==(const step_failed&) const = default;
};

/// The provider created a resource for this request.
struct resource_allocated {
  static constexpr event_type_info info{6, 1, "request.resource_allocated"};
  step_kind step = step_kind::allocate;
  std::string kind;
  std::string resource_id;
  std::string name;
  std::string idempotency_key;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("kind", x.kind);
    f("resourceId", x.resource_id);
    f("name", x.name);
    f("idempotencyKey", x.idempotency_key);
  }
  bool operator==(const resource_allocated&) const = default;
};

/// A resource is gone at the provider (deleted by rollback, or found already gone).
struct resource_released {
  static constexpr event_type_info info{7, 1, "request.resource_released"};
  std::string kind;
  std::string resource_id;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("kind", x.kind);
    f("resourceId", x.resource_id);
  }
  bool operator==(const resource_released&) const = default;
};

/// All four steps succeeded (state: completed).
struct request_completed {
  static constexpr event_type_info info{8, 1, "request.completed"};

  template <class F, class Self>
  static void fields(F&, Self&) {}
  bool operator==(const request_completed&) const = default;
};

/// The request failed (state: failed); rollback follows.
struct request_failed {
  static constexpr event_type_info info{9, 1, "request.failed"};
  std::string code;  ///< stable reason code, e.g. "provider_error", "no_cluster_available"
  std::string message;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("code", x.code);
    f("message", x.message);
  }
  bool operator==(const request_failed&) const = default;
};

/// Releasing the request's resources begins (state: rolling_back).
struct rollback_started {
  static constexpr event_type_info info{10, 1, "request.rollback_started"};
  std::string reason;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("reason", x.reason);
  }
  bool operator==(const rollback_started&) const = default;
};

/// Every resource is released (state: rolled_back).
struct request_rolled_back {
  static constexpr event_type_info info{11, 1, "request.rolled_back"};

  template <class F, class Self>
  static void fields(F&, Self&) {}
  bool operator==(const request_rolled_back&) const = default;
};

/// A failed step will be tried again at `due`. The due time is in the log so that a
/// restart keeps the schedule instead of restarting it.
struct retry_scheduled {
  static constexpr event_type_info info{12, 1, "request.retry_scheduled"};
  step_kind step = step_kind::allocate;
  std::uint32_t attempt = 2;  ///< the attempt that will run at `due`
  timestamp due{};
  std::int64_t delay_ms = 0;  ///< the backoff chosen (informative)

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("attempt", x.attempt);
    f("due", x.due);
    f("delayMs", x.delay_ms);
  }
  bool operator==(const retry_scheduled&) const = default;
};

/// The request stays queued, and says why (e.g. "waiting_for_tenant_slot").
struct request_waiting {
  static constexpr event_type_info info{13, 1, "request.waiting"};
  std::string reason;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("reason", x.reason);
  }
  bool operator==(const request_waiting&) const = default;
};

/// An approval rule matched at submission: the request waits for an admin.
struct approval_required {
  static constexpr event_type_info info{14, 1, "request.approval_required"};
  std::string rule_id;
  std::string rule_name;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("ruleId", x.rule_id);
    f("ruleName", x.rule_name);
  }
  bool operator==(const approval_required&) const = default;
};

/// An admin approved: the request is queued again and resumes.
struct request_approved {
  static constexpr event_type_info info{15, 1, "request.approved"};
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("by", x.by);
  }
  bool operator==(const request_approved&) const = default;
};

/// An admin rejected: the request fails with the reason.
struct request_rejected {
  static constexpr event_type_info info{16, 1, "request.rejected"};
  std::string reason;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("reason", x.reason);
    f("by", x.by);
  }
  bool operator==(const request_rejected&) const = default;
};

/// The owner or an admin cancelled a request that had not completed.
struct request_cancelled {
  static constexpr event_type_info info{17, 1, "request.cancelled"};
  std::string reason;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("reason", x.reason);
    f("by", x.by);
  }
  bool operator==(const request_cancelled&) const = default;
};

/// A post-provisioning action was asked for (recorded before the provider is called).
enum class service_action : std::uint8_t { none, suspend, reactivate };
inline constexpr std::array<std::string_view, 3> service_action_names{"none", "suspend", "reactivate"};
inline std::span<const std::string_view> enum_names(service_action) { return service_action_names; }

struct action_requested {
  static constexpr event_type_info info{18, 1, "request.action_requested"};
  service_action action = service_action::suspend;
  std::string reason;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("action", x.action);
    f("reason", x.reason);
    f("by", x.by);
  }
  bool operator==(const action_requested&) const = default;
};

/// The provider stopped the service (completed -> suspended).
struct request_suspended {
  static constexpr event_type_info info{19, 1, "request.suspended"};

  template <class F, class Self>
  static void fields(F&, Self&) {}
  bool operator==(const request_suspended&) const = default;
};

/// The provider started the service again (suspended -> completed).
struct request_reactivated {
  static constexpr event_type_info info{20, 1, "request.reactivated"};

  template <class F, class Self>
  static void fields(F&, Self&) {}
  bool operator==(const request_reactivated&) const = default;
};

/// The provider refused a post-provisioning action; the request stays as it was.
struct action_failed {
  static constexpr event_type_info info{21, 1, "request.action_failed"};
  service_action action = service_action::suspend;
  std::string code;
  std::string message;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("action", x.action);
    f("code", x.code);
    f("message", x.message);
  }
  bool operator==(const action_failed&) const = default;
};

/// Access details for the delivered service. `sealed` is AES-256-GCM ciphertext of a
/// JSON object; it is never rendered outside (CloudEvents show only the field names).
struct credentials_delivered {
  static constexpr event_type_info info{22, 1, "request.credentials_delivered"};
  static constexpr bool secret = true;
  std::string sealed;
  std::vector<std::string> fields_present;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("sealed", x.sealed);
    f("fields", x.fields_present);
  }
  bool operator==(const credentials_delivered&) const = default;
};

/// The manual provider waits for an admin to enter access details.
struct input_requested {
  static constexpr event_type_info info{23, 1, "request.input_requested"};
  step_kind step = step_kind::allocate;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
  }
  bool operator==(const input_requested&) const = default;
};

/// An admin entered the access details: the waiting step succeeded.
struct input_provided {
  static constexpr event_type_info info{24, 1, "request.input_provided"};
  step_kind step = step_kind::allocate;
  std::map<std::string, std::string> endpoints;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("endpoints", x.endpoints);
    f("by", x.by);
  }
  bool operator==(const input_provided&) const = default;
};

/// The orphan reconciler found a resource at the provider, tagged with this request, that the
/// request does not hold (created by a call that answered after its timeout, or after the
/// rollback's sweep). Appended before the engine deletes it; recorded as released. Only for
/// a request at rest (completed, suspended, rolled back), never for a resource it holds.
struct orphan_found {
  static constexpr event_type_info info{25, 1, "request.orphan_found"};
  step_kind step = step_kind::allocate;
  std::string kind;
  std::string resource_id;
  std::string name;
  std::string idempotency_key;  ///< of the call that created it, as the provider reports it

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("step", x.step);
    f("kind", x.kind);
    f("resourceId", x.resource_id);
    f("name", x.name);
    f("idempotencyKey", x.idempotency_key);
  }
  bool operator==(const orphan_found&) const = default;
};

using request_event =
    std::variant<request_submitted, cluster_assigned, step_started, step_succeeded, step_failed,
                 resource_allocated, resource_released, request_completed, request_failed,
                 rollback_started, request_rolled_back, retry_scheduled, request_waiting,
                 approval_required, request_approved, request_rejected, request_cancelled,
                 action_requested, request_suspended, request_reactivated, action_failed,
                 credentials_delivered, input_requested, input_provided, orphan_found>;

}  // namespace prov::events
