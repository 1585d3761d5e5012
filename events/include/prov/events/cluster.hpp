#pragma once
/// The cluster aggregate: a place where a provider runs requests. Its events carry
/// type ids 50-69. State is the fold of the events, like every aggregate.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "prov/events/request.hpp"
#include "prov/events/request_events.hpp"

namespace prov::events {

enum class cluster_health : std::uint8_t { healthy, degraded, offline };
inline constexpr std::array<std::string_view, 3> cluster_health_names{"healthy", "degraded", "offline"};
inline std::span<const std::string_view> enum_names(cluster_health) { return cluster_health_names; }

/// Total capacity of a cluster; a dimension of 0 is not limited.
struct cluster_capacity {
  std::int64_t cpu_millis = 0;
  std::int64_t memory_mb = 0;
  std::int64_t storage_gb = 0;
  std::int64_t vm_slots = 0;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cpuMillis", x.cpu_millis);
    f("memoryMb", x.memory_mb);
    f("storageGb", x.storage_gb);
    f("vmSlots", x.vm_slots);
  }
  bool operator==(const cluster_capacity&) const = default;
};

/// Behaviour of a simulation cluster: per-step failure probabilities in [0, 1] and a
/// uniform delay per provider call. Decisions are a pure function of the call's idempotency
/// key and `seed`, so a run is reproducible.
struct simulation_settings {
  double fail_allocate = 0;
  double fail_configure = 0;
  double fail_activate = 0;
  double fail_verify = 0;
  double fail_rollback = 0;  ///< probability that one release call fails (it is retried)
  std::int64_t delay_min_ms = 0;
  std::int64_t delay_max_ms = 0;
  std::uint64_t seed = 0;
  double hang_rate = 0;  ///< probability that a step or release call never answers (stuck detection)

  double failure_rate(step_kind s) const noexcept {
    switch (s) {
      case step_kind::allocate: return fail_allocate;
      case step_kind::configure: return fail_configure;
      case step_kind::activate: return fail_activate;
      case step_kind::verify: return fail_verify;
    }
    return 0;
  }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("failAllocate", x.fail_allocate);
    f("failConfigure", x.fail_configure);
    f("failActivate", x.fail_activate);
    f("failVerify", x.fail_verify);
    f("failRollback", x.fail_rollback);
    f("delayMinMs", x.delay_min_ms);
    f("delayMaxMs", x.delay_max_ms);
    f("seed", x.seed);
    f("hangRate", x.hang_rate);
  }
  bool operator==(const simulation_settings&) const = default;
};

/// An admin tested the cluster's connectivity: the outcome and its latency.
struct cluster_tested {
  static constexpr event_type_info info{52, 1, "cluster.tested"};
  bool ok = false;
  std::int64_t latency_ms = 0;
  std::string message;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("ok", x.ok);
    f("latencyMs", x.latency_ms);
    f("message", x.message);
  }
  bool operator==(const cluster_tested&) const = default;
};

struct cluster_state {
  std::string id;
  std::string name;
  provider_type type = provider_type::simulation;
  std::string region;
  std::string endpoint;  ///< the provider's API URL ("" for simulation and manual)
  cluster_capacity capacity;
  simulation_settings simulation;
  bool enabled = true;
  bool is_default = false;
  cluster_health health = cluster_health::healthy;
  std::string settings_json;       ///< provider settings (non-secret), canonical JSON object text
  std::string credentials_sealed;  ///< provider credentials, sealed by the engine's secret_box
  std::optional<cluster_tested> last_test;
  std::optional<timestamp> last_tested_at;
  timestamp created_at{};
  timestamp updated_at{};
  std::uint64_t version = 0;

  bool exists() const noexcept { return version > 0; }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("id", x.id);
    f("name", x.name);
    f("type", x.type);
    f("region", x.region);
    f("endpoint", x.endpoint);
    f("capacity", x.capacity);
    f("simulation", x.simulation);
    f("enabled", x.enabled);
    f("isDefault", x.is_default);
    f("health", x.health);
    f("settings", x.settings_json);
    f("credentialsSealed", x.credentials_sealed);
    f("lastTest", x.last_test);
    f("lastTestedAt", x.last_tested_at);
    f("createdAt", x.created_at);
    f("updatedAt", x.updated_at);
    f("version", x.version);
  }
  bool operator==(const cluster_state&) const = default;
};

struct cluster_registered {
  static constexpr event_type_info info{50, 1, "cluster.registered"};
  std::string cluster_id;
  std::string name;
  provider_type type = provider_type::simulation;
  std::string region;
  std::string endpoint;
  cluster_capacity capacity;
  simulation_settings simulation;
  bool enabled = true;
  bool is_default = false;
  cluster_health health = cluster_health::healthy;
  std::string settings_json;
  std::string credentials_sealed;  ///< never clear text: sealed before it is appended

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("clusterId", x.cluster_id);
    f("name", x.name);
    f("type", x.type);
    f("region", x.region);
    f("endpoint", x.endpoint);
    f("capacity", x.capacity);
    f("simulation", x.simulation);
    f("enabled", x.enabled);
    f("isDefault", x.is_default);
    f("health", x.health);
    f("settings", x.settings_json);
    f("credentialsSealed", x.credentials_sealed);
  }
  bool operator==(const cluster_registered&) const = default;
};

/// A partial update: only the fields present change.
struct cluster_updated {
  static constexpr event_type_info info{51, 1, "cluster.updated"};
  std::optional<std::string> name;
  std::optional<std::string> endpoint;
  std::optional<cluster_capacity> capacity;
  std::optional<simulation_settings> simulation;
  std::optional<bool> enabled;
  std::optional<bool> is_default;
  std::optional<cluster_health> health;
  std::optional<std::string> settings_json;
  std::optional<std::string> credentials_sealed;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("name", x.name);
    f("endpoint", x.endpoint);
    f("capacity", x.capacity);
    f("simulation", x.simulation);
    f("enabled", x.enabled);
    f("isDefault", x.is_default);
    f("health", x.health);
    f("settings", x.settings_json);
    f("credentialsSealed", x.credentials_sealed);
  }
  bool operator==(const cluster_updated&) const = default;
};

using cluster_event = std::variant<cluster_registered, cluster_updated, cluster_tested>;

/// Stream id of a cluster: "cluster/<id>".
std::string cluster_stream(std::string_view cluster_id);

}  // namespace prov::events
