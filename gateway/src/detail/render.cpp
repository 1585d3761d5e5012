#include "detail/render.hpp"

#include "prov/core/time_format.hpp"
#include "prov/events/codec.hpp"

namespace prov::gateway::detail {

namespace {

using nlohmann::json;

json optional_time(const std::optional<timestamp>& t) { return t ? json(format_rfc3339(*t)) : json(nullptr); }

// Exact integer units back to the API's numbers: 1500 millicores -> 1.5.
json cores(std::int64_t millis) {
  if (millis % 1000 == 0) {
    return millis / 1000;
  }
  return static_cast<double>(millis) / 1000.0;
}

json gigabytes(std::int64_t mb) {
  if (mb % 1024 == 0) {
    return mb / 1024;
  }
  return static_cast<double>(mb) / 1024.0;
}

json render_spec(const events::resource_spec& s) {
  json out = json::object();
  if (!s.extra_json.empty()) {
    out = json::parse(s.extra_json, nullptr, false);
    if (!out.is_object()) {
      out = json::object();
    }
  }
  out["cpu"] = cores(s.cpu_millis);
  out["memoryGb"] = gigabytes(s.memory_mb);
  out["storageGb"] = s.storage_gb;
  return out;
}

}  // namespace

nlohmann::json render_request(const events::request_state& r) {
  json steps = json::array();
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const auto& s = r.steps[i];
    steps.push_back({{"name", events::enum_name(static_cast<events::step_kind>(i))},
                     {"status", events::enum_name(s.status)},
                     {"attempts", s.attempts},
                     {"startedAt", optional_time(s.started_at)},
                     {"finishedAt", optional_time(s.finished_at)},
                     {"error", s.error.empty() ? json(nullptr) : json(s.error)}});
  }
  json resources = json::array();
  for (const auto& res : r.resources) {
    resources.push_back({{"kind", res.kind},
                         {"id", res.id},
                         {"name", res.name},
                         {"step", events::enum_name(res.step)},
                         {"status", res.released ? "released" : "active"}});
  }
  json out{{"id", r.id},
           {"tenant", r.tenant},
           {"type", events::enum_name(r.type)},
           {"provider", events::enum_name(r.provider)},
           {"region", r.region},
           {"spec", render_spec(r.spec)},
           {"dependsOn", r.depends_on},
           {"state", events::enum_name(r.state)},
           {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
           {"reasonMessage", r.reason_message.empty() ? json(nullptr) : json(r.reason_message)},
           {"cluster", r.cluster.empty() ? json(nullptr) : json(r.cluster)},
           {"steps", steps},
           {"resources", resources},
           {"endpoints", r.endpoints},
           {"createdAt", format_rfc3339(r.created_at)},
           {"updatedAt", format_rfc3339(r.updated_at)},
           {"version", r.version}};
  if (!r.idempotency_key.empty()) {
    out["idempotencyKey"] = r.idempotency_key;
  }
  if (!r.approval_rule.empty()) {
    out["approvalRule"] = {{"id", r.approval_rule}, {"name", r.approval_rule_name}};
  }
  if (r.pending_action != 0) {
    out["pendingAction"] = events::enum_name(static_cast<events::service_action>(r.pending_action));
  }
  if (!r.action_error.empty()) {
    out["actionError"] = r.action_error;
  }
  // Credentials are never in a view: only whether and which are available.
  out["credentials"] = {{"available", !r.credentials_sealed.empty()}, {"fields", r.credential_fields}};
  for (const auto& step : r.steps) {
    if (step.status == events::step_status::awaiting_input) {
      out["statusText"] = "Awaiting Manual Input";
    }
  }
  if (!r.requested_cluster.empty()) {
    out["requestedCluster"] = r.requested_cluster;
  }
  return out;
}

nlohmann::json render_cluster(const events::cluster_state& c) {
  json out{{"id", c.id},
           {"name", c.name},
           {"type", events::enum_name(c.type)},
           {"region", c.region},
           {"endpoint", c.endpoint.empty() ? json(nullptr) : json(c.endpoint)},
           {"capacity",
            {{"cpu", cores(c.capacity.cpu_millis)},
             {"memoryGb", gigabytes(c.capacity.memory_mb)},
             {"storageGb", c.capacity.storage_gb},
             {"vmSlots", c.capacity.vm_slots}}},
           {"enabled", c.enabled},
           {"isDefault", c.is_default},
           {"health", events::enum_name(c.health)},
           {"settings", c.settings_json.empty() ? json::object() : json::parse(c.settings_json, nullptr, false)},
           {"lastTest", c.last_test ? json{{"ok", c.last_test->ok},
                                            {"latencyMs", c.last_test->latency_ms},
                                            {"message", c.last_test->message},
                                            {"at", format_rfc3339(*c.last_tested_at)}}
                                     : json(nullptr)},
           {"hasCredentials", !c.credentials_sealed.empty()},
           {"createdAt", format_rfc3339(c.created_at)},
           {"updatedAt", format_rfc3339(c.updated_at)},
           {"version", c.version}};
  if (c.type == events::provider_type::simulation) {
    const auto& s = c.simulation;
    out["simulation"] = {{"failureRate",
                          {{"allocate", s.fail_allocate},
                           {"configure", s.fail_configure},
                           {"activate", s.fail_activate},
                           {"verify", s.fail_verify},
                           {"rollback", s.fail_rollback},
                           {"hang", s.hang_rate}}},
                         {"delayMs", {{"min", s.delay_min_ms}, {"max", s.delay_max_ms}}},
                         {"seed", s.seed}};
  }
  return out;
}

nlohmann::json render_runtime(const actors::cluster_runtime& r) {
  return {{"breaker", r.breaker},
          {"consecutiveFailures", r.consecutive_failures},
          {"recentCalls", r.window_calls},
          {"recentFailures", r.window_failures},
          {"openForMs", r.open_for_ms},
          {"breakerOpenedTotal", r.breaker_opened},
          {"inFlight", r.in_flight},
          {"queued", r.queued},
          {"callsTotal", r.calls},
          {"failuresTotal", r.failures},
          {"timeoutsTotal", r.timeouts},
          {"rejectedTotal", r.rejected}};
}

nlohmann::json render_quota(const events::tenant_quota& q) {
  auto dim = [](const std::optional<std::int64_t>& v, auto convert) { return v ? convert(*v) : json(nullptr); };
  return {{"cpu", dim(q.cpu_millis, cores)},
          {"memoryGb", dim(q.memory_mb, gigabytes)},
          {"storageGb", dim(q.storage_gb, [](std::int64_t v) { return json(v); })},
          {"instances", dim(q.instances, [](std::int64_t v) { return json(v); })},
          {"instancesByType", q.instances_by_type}};
}

nlohmann::json render_usage(const projections::usage_totals& u) {
  return {{"cpu", cores(u.cpu_millis)},
          {"memoryGb", gigabytes(u.memory_mb)},
          {"storageGb", u.storage_gb},
          {"instances", u.instances},
          {"instancesByType", u.instances_by_type}};
}

nlohmann::json render_rule(const events::rule_state& r) {
  json types = json::array();
  for (auto t : r.conditions.types) {
    types.push_back(events::enum_name(t));
  }
  const auto& c = r.conditions;
  return {{"id", r.id},
          {"name", r.name},
          {"scope", r.tenant.empty() ? "global" : "tenant"},
          {"tenant", r.tenant.empty() ? json(nullptr) : json(r.tenant)},
          {"priority", r.priority},
          {"conditions",
           {{"minCpu", c.min_cpu_millis ? cores(*c.min_cpu_millis) : json(nullptr)},
            {"minMemoryGb", c.min_memory_mb ? gigabytes(*c.min_memory_mb) : json(nullptr)},
            {"minStorageGb", c.min_storage_gb ? json(*c.min_storage_gb) : json(nullptr)},
            {"types", types},
            {"regions", c.regions}}},
          {"createdAt", format_rfc3339(r.created_at)}};
}

nlohmann::json render_metrics(const providers::metrics_sample& m) {
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return {{"at", format_rfc3339(m.at)},
          {"cpuPercent", opt(m.cpu_percent)},
          {"memoryUsedMb", opt(m.memory_used_mb)},
          {"diskUsedGb", opt(m.disk_used_gb)},
          {"networkRxBytes", opt(m.network_rx_bytes)},
          {"networkTxBytes", opt(m.network_tx_bytes)},
          {"extra", m.extra}};
}

nlohmann::json render_tenant(const events::tenant_state& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"quota", render_quota(t.quota)},
          {"createdAt", format_rfc3339(t.created_at)},
          {"updatedAt", format_rfc3339(t.updated_at)},
          {"version", t.version}};
}

nlohmann::json render_inventory_item(const providers::inventory_item& i) {
  return {{"kind", i.kind},
          {"id", i.id},
          {"name", i.name},
          {"requestId", i.request_id},
          {"step", events::enum_name(i.step)},
          {"idempotencyKey", i.idempotency_key},
          {"createdAt", format_rfc3339(i.created_at)}};
}

}  // namespace prov::gateway::detail
