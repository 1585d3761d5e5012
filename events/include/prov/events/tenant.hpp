#pragma once
/// The tenant aggregate: who may submit requests, with which token, under which quota.
/// Events carry type ids 70-89. Tokens are never stored: only their SHA-256.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>

#include "prov/events/request_events.hpp"

namespace prov::events {

/// Limits per tenant; an absent dimension is not limited.
struct tenant_quota {
  std::optional<std::int64_t> cpu_millis;
  std::optional<std::int64_t> memory_mb;
  std::optional<std::int64_t> storage_gb;
  std::optional<std::int64_t> instances;
  std::map<std::string, std::int64_t> instances_by_type;  ///< per service type ("vps", ...)

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("cpuMillis", x.cpu_millis);
    f("memoryMb", x.memory_mb);
    f("storageGb", x.storage_gb);
    f("instances", x.instances);
    f("instancesByType", x.instances_by_type);
  }
  bool operator==(const tenant_quota&) const = default;
};

struct tenant_state {
  std::string id;
  std::string name;
  std::string token_sha256;
  tenant_quota quota;
  timestamp created_at{};
  timestamp updated_at{};
  std::uint64_t version = 0;

  bool exists() const noexcept { return version > 0; }

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("id", x.id);
    f("name", x.name);
    f("tokenSha256", x.token_sha256);
    f("quota", x.quota);
    f("createdAt", x.created_at);
    f("updatedAt", x.updated_at);
    f("version", x.version);
  }
  bool operator==(const tenant_state&) const = default;
};

struct tenant_created {
  static constexpr event_type_info info{70, 1, "tenant.created"};
  std::string tenant_id;
  std::string name;
  std::string token_sha256;
  tenant_quota quota;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("tenantId", x.tenant_id);
    f("name", x.name);
    f("tokenSha256", x.token_sha256);
    f("quota", x.quota);
  }
  bool operator==(const tenant_created&) const = default;
};

struct tenant_quota_set {
  static constexpr event_type_info info{71, 1, "tenant.quota_set"};
  tenant_quota quota;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("quota", x.quota);
  }
  bool operator==(const tenant_quota_set&) const = default;
};

/// The tenant's token was replaced by one whose SHA-256 is `token_sha256`: the old token
/// stops working once this is projected. `by`: "admin" or the tenant itself.
struct tenant_token_rotated {
  static constexpr event_type_info info{72, 1, "tenant.token_rotated"};
  std::string token_sha256;
  std::string by;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("tokenSha256", x.token_sha256);
    f("by", x.by);
  }
  bool operator==(const tenant_token_rotated&) const = default;
};

using tenant_event = std::variant<tenant_created, tenant_quota_set, tenant_token_rotated>;

/// An idempotency key was bound to a request (stream "idempotency/<tenant>/<sha256(key)>").
/// Appended atomically with the request's first event, expecting version 0: a second submit
/// with the same key conflicts and is answered with the first request.
struct idempotency_claimed {
  static constexpr event_type_info info{90, 1, "idempotency.claimed"};
  std::string request_id;

  template <class F, class Self>
  static void fields(F& f, Self& x) {
    f("requestId", x.request_id);
  }
  bool operator==(const idempotency_claimed&) const = default;
};

std::string tenant_stream(std::string_view tenant_id);
std::string idempotency_stream(std::string_view tenant_id, std::string_view key);

}  // namespace prov::events
