#pragma once
/// Approval rules as an aggregate: stream "rule/<id>", type ids 100-109. A rule is
/// global or scoped to one tenant; rules are tried in priority order (lower number first; at
/// equal priority a tenant rule before a global one, then the older rule); the first whose
/// conditions all hold puts the request in pending_approval.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "prov/events/request_events.hpp"

namespace prov::events {

struct rule_conditions {
  std::optional<std::int64_t> min_cpu_millis;
  std::optional<std::int64_t> min_memory_mb;
  std::optional<std::int64_t> min_storage_gb;
  std::vector<service_type> types;   ///< empty = any
  std::vector<std::string> regions;  ///< empty = any

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("minCpuMillis", x.min_cpu_millis);
    f("minMemoryMb", x.min_memory_mb);
    f("minStorageGb", x.min_storage_gb);
    f("types", x.types);
    f("regions", x.regions);
  }
  bool operator==(const rule_conditions&) const = default;

  /// Whether a request with these properties matches every condition.
  bool matches(const resource_spec& spec, service_type type, const std::string& region) const;
};

struct rule_state {
  std::string id;
  std::string name;
  std::string tenant;  ///< "" = global
  std::int64_t priority = 0;
  rule_conditions conditions;
  bool deleted = false;
  timestamp created_at{};
  timestamp updated_at{};
  std::uint64_t version = 0;

  bool exists() const noexcept { return version > 0; }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("id", x.id);
    f("name", x.name);
    f("tenant", x.tenant);
    f("priority", x.priority);
    f("conditions", x.conditions);
    f("deleted", x.deleted);
    f("createdAt", x.created_at);
    f("updatedAt", x.updated_at);
    f("version", x.version);
  }
  bool operator==(const rule_state&) const = default;
};

struct rule_created {
  static constexpr event_type_info info{100, 1, "rule.created"};
  std::string rule_id;
  std::string name;
  std::string tenant;
  std::int64_t priority = 0;
  rule_conditions conditions;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("ruleId", x.rule_id);
    f("name", x.name);
    f("tenant", x.tenant);
    f("priority", x.priority);
    f("conditions", x.conditions);
    f("by", x.by);
  }
  bool operator==(const rule_created&) const = default;
};

struct rule_deleted {
  static constexpr event_type_info info{101, 1, "rule.deleted"};
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("by", x.by);
  }
  bool operator==(const rule_deleted&) const = default;
};

using rule_event = std::variant<rule_created, rule_deleted>;

std::string rule_stream(std::string_view rule_id);

/// The first matching rule among `rules` (deleted ones ignored), in the order documented
/// above; nullptr if none matches.
const rule_state* first_matching_rule(const std::vector<rule_state>& rules, const std::string& tenant,
                                      const resource_spec& spec, service_type type, const std::string& region);

}  // namespace prov::events
