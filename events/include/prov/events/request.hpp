#pragma once
/// The request aggregate: its vocabulary (states, steps, resources) and its state, which is
/// never stored directly: it is the fold of the request's events (see `apply.hpp`).

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prov/core/clock.hpp"

namespace prov::events {

/// The 11 lifecycle states. Values are persisted: append only.
enum class lifecycle_state : std::uint8_t {
  queued,
  pending_approval,
  allocating,
  configuring,
  activating,
  verifying,
  completed,
  suspended,
  failed,
  rolling_back,
  rolled_back,
};
inline constexpr std::size_t lifecycle_state_count = 11;
inline constexpr std::array<std::string_view, lifecycle_state_count> lifecycle_state_names{
    "queued",    "pending_approval", "allocating", "configuring",  "activating", "verifying",
    "completed", "suspended",        "failed",     "rolling_back", "rolled_back"};
inline std::span<const std::string_view> enum_names(lifecycle_state) { return lifecycle_state_names; }

/// The 4 pipeline steps, in order.
enum class step_kind : std::uint8_t { allocate, configure, activate, verify };
inline constexpr std::size_t step_count = 4;
inline constexpr std::array<std::string_view, step_count> step_kind_names{"allocate", "configure",
                                                                          "activate", "verify"};
inline std::span<const std::string_view> enum_names(step_kind) { return step_kind_names; }

enum class step_status : std::uint8_t { pending, running, succeeded, failed, awaiting_input };
inline constexpr std::array<std::string_view, 5> step_status_names{"pending", "running", "succeeded",
                                                                   "failed", "awaiting_input"};
inline std::span<const std::string_view> enum_names(step_status) { return step_status_names; }

/// What is being provisioned.
enum class service_type : std::uint8_t { vps, namespace_, managed };
inline constexpr std::array<std::string_view, 3> service_type_names{"vps", "namespace", "managed"};
inline std::span<const std::string_view> enum_names(service_type) { return service_type_names; }

/// Which kind of provider runs it (also a cluster's type).
enum class provider_type : std::uint8_t { openstack, openshift, kubernetes, vmware, proxmox, simulation, manual };
inline constexpr std::array<std::string_view, 7> provider_type_names{
    "openstack", "openshift", "kubernetes", "vmware", "proxmox", "simulation", "manual"};
inline std::span<const std::string_view> enum_names(provider_type) { return provider_type_names; }

/// The state a step runs in (allocate -> allocating, ...).
constexpr lifecycle_state state_of(step_kind s) noexcept {
  return static_cast<lifecycle_state>(static_cast<int>(lifecycle_state::allocating) + static_cast<int>(s));
}

/// The step that runs in a state, if any.
constexpr std::optional<step_kind> step_of(lifecycle_state s) noexcept {
  const int i = static_cast<int>(s) - static_cast<int>(lifecycle_state::allocating);
  if (i < 0 || i >= static_cast<int>(step_count)) {
    return std::nullopt;
  }
  return static_cast<step_kind>(i);
}

/// States in which nothing happens without an outside command: the request's actor stops.
constexpr bool is_at_rest(lifecycle_state s) noexcept {
  return s == lifecycle_state::completed || s == lifecycle_state::suspended ||
         s == lifecycle_state::rolled_back;
}

/// Sizes asked for, in exact integer units (quotas add them up).
struct resource_spec {
  std::int64_t cpu_millis = 0;  ///< 1000 = one core
  std::int64_t memory_mb = 0;
  std::int64_t storage_gb = 0;
  std::string extra_json;  ///< provider-specific spec fields, canonical JSON object text ("" = none)

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cpuMillis", x.cpu_millis);
    f("memoryMb", x.memory_mb);
    f("storageGb", x.storage_gb);
    f("extra", x.extra_json);
  }
  bool operator==(const resource_spec&) const = default;
};

/// A resource at a provider that this request created (and must release on rollback).
struct resource {
  std::string kind;             ///< provider-specific: "server", "volume", "namespace", ...
  std::string id;               ///< the provider's id
  std::string name;
  step_kind step = step_kind::allocate;  ///< the step that created it
  std::string idempotency_key;  ///< the provider call that created it
  bool released = false;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("kind", x.kind);
    f("id", x.id);
    f("name", x.name);
    f("step", x.step);
    f("idempotencyKey", x.idempotency_key);
    f("released", x.released);
  }
  bool operator==(const resource&) const = default;
};

/// Progress of one pipeline step.
struct step_record {
  step_status status = step_status::pending;
  std::uint32_t attempts = 0;
  std::optional<timestamp> started_at;
  std::optional<timestamp> finished_at;
  std::string error;            ///< last error message of this step ("" = none)
  std::string idempotency_key;  ///< key of the current attempt's provider call
  std::optional<timestamp> next_attempt_at;  ///< a retry is scheduled for then

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("status", x.status);
    f("attempts", x.attempts);
    f("startedAt", x.started_at);
    f("finishedAt", x.finished_at);
    f("error", x.error);
    f("idempotencyKey", x.idempotency_key);
    f("nextAttemptAt", x.next_attempt_at);
  }
  bool operator==(const step_record&) const = default;
};

/// The state of one request: the fold of its events. `version` = number of events applied.
struct request_state {
  std::string id;
  std::string tenant;
  service_type type = service_type::vps;
  provider_type provider = provider_type::simulation;
  std::string region;
  resource_spec spec;
  std::vector<std::string> depends_on;
  std::string idempotency_key;
  std::string requested_cluster;  ///< a cluster the submitter pinned, "" = engine selects

  lifecycle_state state = lifecycle_state::queued;
  std::string reason;          ///< machine-readable why (e.g. "provider_error", "stuck")
  std::string reason_message;  ///< human text for `reason`
  std::string cluster;         ///< assigned cluster
  std::vector<step_record> steps = std::vector<step_record>(step_count);
  std::vector<resource> resources;
  std::map<std::string, std::string> endpoints;

  std::string approval_rule;       ///< the rule that asked for approval ("" = none)
  std::string approval_rule_name;
  std::uint8_t pending_action = 0;  ///< a service_action asked for and not yet done (0 = none)
  std::string action_error;       ///< why the last post-provisioning action failed
  std::string action_reason;      ///< the reason given with the pending or last action
  std::string credentials_sealed; ///< sealed JSON object; never shown in views
  std::vector<std::string> credential_fields;

  timestamp created_at{};
  timestamp updated_at{};
  std::uint64_t version = 0;

  bool exists() const noexcept { return version > 0; }
  step_record& step(step_kind s) { return steps[static_cast<std::size_t>(s)]; }
  const step_record& step(step_kind s) const { return steps[static_cast<std::size_t>(s)]; }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("id", x.id);
    f("tenant", x.tenant);
    f("type", x.type);
    f("provider", x.provider);
    f("region", x.region);
    f("spec", x.spec);
    f("dependsOn", x.depends_on);
    f("idempotencyKey", x.idempotency_key);
    f("requestedCluster", x.requested_cluster);
    f("state", x.state);
    f("reason", x.reason);
    f("reasonMessage", x.reason_message);
    f("cluster", x.cluster);
    f("steps", x.steps);
    f("resources", x.resources);
    f("endpoints", x.endpoints);
    f("approvalRule", x.approval_rule);
    f("approvalRuleName", x.approval_rule_name);
    f("pendingAction", x.pending_action);
    f("actionError", x.action_error);
    f("actionReason", x.action_reason);
    f("credentialsSealed", x.credentials_sealed);
    f("credentialFields", x.credential_fields);
    f("createdAt", x.created_at);
    f("updatedAt", x.updated_at);
    f("version", x.version);
  }
  bool operator==(const request_state&) const = default;
};

/// Stream id of a request: "request/<id>".
std::string request_stream(std::string_view request_id);

}  // namespace prov::events
