#pragma once
// JSON shapes of the HTTP API. One function per resource; the field names here are
// the public contract.

#include <nlohmann/json.hpp>

#include "prov/actors/messages.hpp"
#include "prov/events/cluster.hpp"
#include "prov/events/rule.hpp"
#include "prov/projections/views.hpp"
#include "prov/events/request.hpp"
#include "prov/events/tenant.hpp"
#include "prov/providers/provider.hpp"

namespace prov::gateway::detail {

nlohmann::json render_request(const events::request_state& r);
nlohmann::json render_cluster(const events::cluster_state& c);
/// The runtime side of a cluster: circuit breaker and bulkhead.
nlohmann::json render_runtime(const actors::cluster_runtime& r);
nlohmann::json render_tenant(const events::tenant_state& t);
nlohmann::json render_quota(const events::tenant_quota& q);
nlohmann::json render_usage(const projections::usage_totals& u);
nlohmann::json render_rule(const events::rule_state& r);
nlohmann::json render_metrics(const providers::metrics_sample& m);
nlohmann::json render_inventory_item(const providers::inventory_item& i);

}  // namespace prov::gateway::detail
