#include "detail/openapi.hpp"

namespace prov::gateway::detail {

namespace {

using nlohmann::json;

json ref(const char* name) { return json{{"$ref", std::string{"#/components/schemas/"} + name}}; }

json op(const char* summary, bool admin, json responses, json body = nullptr, json params = json::array()) {
  json o{{"summary", summary}, {"responses", std::move(responses)}};
  o["security"] = json::array({json{{"bearer", json::array()}}});
  if (admin) {
    o["description"] = "Requires the admin token.";
  }
  if (!body.is_null()) {
    o["requestBody"] = {{"required", true}, {"content", {{"application/json", {{"schema", std::move(body)}}}}}};
  }
  if (!params.empty()) {
    o["parameters"] = std::move(params);
  }
  return o;
}

json resp(const char* description, json schema = nullptr) {
  json r{{"description", description}};
  if (!schema.is_null()) {
    r["content"] = {{"application/json", {{"schema", std::move(schema)}}}};
  }
  return r;
}

json errors() { return resp("Error", ref("Error")); }

json path_param(const char* name) {
  return json{{"name", name}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
}

json query_param(const char* name, const char* type, const char* description) {
  return json{{"name", name}, {"in", "query"}, {"required", false}, {"description", description},
              {"schema", {{"type", type}}}};
}

json build() {
  json states = json::array({"queued", "pending_approval", "allocating", "configuring", "activating", "verifying",
                             "completed", "suspended", "failed", "rolling_back", "rolled_back"});
  json schemas{
      {"Error",
       {{"type", "object"},
        {"properties",
         {{"error", {{"type", "object"},
                     {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}}},
      {"Spec",
       {{"type", "object"},
        {"required", {"cpu", "memoryGb"}},
        {"properties",
         {{"cpu", {{"type", "number"}, {"minimum", 0.001}}},
          {"memoryGb", {{"type", "number"}, {"minimum", 0.001}}},
          {"storageGb", {{"type", "integer"}, {"minimum", 0}}}}},
        {"additionalProperties", true}}},
      {"SubmitRequest",
       {{"type", "object"},
        {"required", {"type", "provider", "spec"}},
        {"properties",
         {{"tenant", {{"type", "string"}, {"description", "required with the admin token"}}},
          {"type", {{"type", "string"}, {"enum", {"vps", "namespace", "managed"}}}},
          {"provider",
           {{"type", "string"},
            {"enum", {"openstack", "openshift", "kubernetes", "vmware", "proxmox", "simulation", "manual"}}}},
          {"region", {{"type", "string"}}},
          {"cluster", {{"type", "string"}, {"description", "pin a cluster instead of letting the engine choose"}}},
          {"spec", ref("Spec")},
          {"dependsOn", {{"type", "array"}, {"items", {{"type", "string"}}}}},
          {"idempotencyKey", {{"type", "string"}, {"maxLength", 255}}}}}}},
      {"Request",
       {{"type", "object"},
        {"properties",
         {{"id", {{"type", "string"}}},
          {"tenant", {{"type", "string"}}},
          {"state", {{"type", "string"}, {"enum", states}}},
          {"reason", {{"type", "string"}, {"nullable", true}}},
          {"cluster", {{"type", "string"}, {"nullable", true}}},
          {"steps", {{"type", "array"}, {"items", {{"type", "object"}}}}},
          {"resources", {{"type", "array"}, {"items", {{"type", "object"}}}}},
          {"endpoints", {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}}},
          {"createdAt", {{"type", "string"}, {"format", "date-time"}}},
          {"updatedAt", {{"type", "string"}, {"format", "date-time"}}},
          {"version", {{"type", "integer"}}}}}}},
      {"CloudEvent",
       {{"type", "object"},
        {"properties",
         {{"specversion", {{"type", "string"}}},
          {"id", {{"type", "string"}}},
          {"source", {{"type", "string"}}},
          {"type", {{"type", "string"}}},
          {"subject", {{"type", "string"}}},
          {"time", {{"type", "string"}, {"format", "date-time"}}},
          {"sequence", {{"type", "integer"}}},
          {"data", {{"type", "object"}}}}}}},
      {"Tenant", {{"type", "object"}}},
      {"Cluster", {{"type", "object"}}},
      {"WebhookRegistration",
       {{"type", "object"},
        {"required", {"url", "events"}},
        {"properties",
         {{"tenant", {{"type", "string"}, {"description", "required with the admin token"}}},
          {"url", {{"type", "string"}, {"maxLength", 2048}, {"description", "http(s); must pass the address guard"}}},
          {"events",
           {{"type", "array"},
            {"items", {{"type", "string"}}},
            {"description", "lifecycle types (provisioning.started, ...) or \"*\""}}},
          {"secret", {{"type", "string"}, {"minLength", 16}, {"maxLength", 256},
                      {"description", "generated when absent; shown once in the 201 response"}}}}}}},
      {"Webhook",
       {{"type", "object"},
        {"properties",
         {{"id", {{"type", "string"}}},
          {"tenant", {{"type", "string"}}},
          {"url", {{"type", "string"}}},
          {"events", {{"type", "array"}, {"items", {{"type", "string"}}}}},
          {"active", {{"type", "boolean"}}},
          {"consecutiveFailures", {{"type", "integer"}}},
          {"deactivationReason", {{"type", "string"}, {"nullable", true}}},
          {"secret", {{"type", "string"}, {"description", "only in the 201 answer to POST /v1/webhooks"}}},
          {"createdAt", {{"type", "string"}, {"format", "date-time"}}},
          {"updatedAt", {{"type", "string"}, {"format", "date-time"}}},
          {"version", {{"type", "integer"}}}}}}},
      {"WebhookDelivery",
       {{"type", "object"},
        {"properties",
         {{"eventId", {{"type", "string"}}},
          {"eventType", {{"type", "string"}}},
          {"requestId", {{"type", "string"}}},
          {"attempt", {{"type", "integer"}}},
          {"outcome", {{"type", "string"}, {"enum", {"delivered", "failed", "dropped"}}}},
          {"final", {{"type", "boolean"}}},
          {"statusCode", {{"type", "integer"}, {"description", "0 = no HTTP answer"}}},
          {"latencyMs", {{"type", "integer"}}},
          {"error", {{"type", "string"}, {"nullable", true}}},
          {"attemptedAt", {{"type", "string"}, {"format", "date-time"}}}}}}},
  };
  json paths{
      {"/v1/requests",
       {{"post", op("Submit a provisioning request", false,
                    {{"202", resp("Accepted", json{{"type", "object"}})}, {"4XX", errors()}}, ref("SubmitRequest"))},
        {"get", op("List requests, newest first", false,
                   {{"200", resp("A page", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                   json::array({query_param("state", "string", "lifecycle state"),
                                query_param("tenant", "string", "tenant id (admin)"),
                                query_param("limit", "integer", "1 to 1000, default 50"),
                                query_param("cursor", "string", "nextCursor of the previous page")}))}}},
      {"/v1/requests:batch",
       {{"post", op("Submit up to 1 000 requests, each as POST /v1/requests would (not atomically); each "
                    "item's outcome is in its slot of results",
                    false,
                    {{"200", resp("Each item's status, and its id or error",
                                  json{{"type", "object"},
                                       {"properties",
                                        {{"accepted", {{"type", "integer"}}},
                                         {"rejected", {{"type", "integer"}}},
                                         {"results", {{"type", "array"}, {"items", {{"type", "object"}}}}}}}})},
                     {"4XX", errors()}},
                    json{{"type", "object"},
                         {"required", {"requests"}},
                         {"properties",
                          {{"requests",
                            {{"type", "array"}, {"minItems", 1}, {"maxItems", 1000}, {"items", ref("SubmitRequest")}}}}}})}}},
      {"/v1/requests/{id}",
       {{"get", op("A request's view", false, {{"200", resp("The request", ref("Request"))}, {"4XX", errors()}},
                   nullptr, json::array({path_param("id")}))}}},
      {"/v1/requests/{id}/events",
       {{"get", op("A request's events (audit); with asOf or asOfTime also its state then", false,
                   {{"200", resp("Events", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id"), query_param("asOf", "integer", "a sequence number"),
                                query_param("asOfTime", "string", "an RFC 3339 time")}))}}},
      {"/v1/tenants",
       {{"post", op("Create a tenant and its token (shown once)", true,
                    {{"201", resp("Created", json{{"type", "object"}})}, {"4XX", errors()}}, ref("Tenant"))},
        {"get", op("List tenants", true, {{"200", resp("Tenants", json{{"type", "object"}})}})}}},
      {"/v1/tenants/{id}",
       {{"get", op("A tenant", false, {{"200", resp("Tenant", ref("Tenant"))}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id")}))}}},
      {"/v1/tenants/{id}/quota",
       {{"get", op("A tenant's quota", false, {{"200", resp("Quota", json{{"type", "object"}})}}, nullptr,
                   json::array({path_param("id")}))}}},
      {"/v1/tenants/{id}/token",
       {{"post", op("A new token for the tenant (shown once); its current token stops working (admin or the tenant)",
                    false, {{"200", resp("Rotated", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                    json::array({path_param("id")}))}}},
      {"/v1/clusters",
       {{"post", op("Register a cluster", true, {{"201", resp("Registered", ref("Cluster"))}, {"4XX", errors()}},
                    ref("Cluster"))},
        {"get", op("List clusters", true, {{"200", resp("Clusters", json{{"type", "object"}})}})}}},
      {"/v1/clusters/{id}",
       {{"get", op("A cluster", true, {{"200", resp("Cluster", ref("Cluster"))}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id")}))},
        {"patch", op("Change a cluster", true, {{"200", resp("Cluster", ref("Cluster"))}, {"4XX", errors()}},
                     ref("Cluster"), json::array({path_param("id")}))}}},
      {"/v1/clusters/{id}/inventory",
       {{"get", op("Resources at the provider, each with its request (orphan audit)", true,
                   {{"200", resp("Inventory", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id")}))}}},
      {"/v1/clusters/{id}/reconcile",
       {{"post", op("A pass of the orphan reconciler over the cluster now: resources that no request holds are "
                    "recorded (request.orphan_found) and deleted; answers with what it found and did",
                    true, {{"200", resp("Pass", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                    json::array({path_param("id")}))}}},
      {"/v1/backups",
       {{"post", op("An online backup under --backup-dir: a data directory (the store and the secret key) to "
                    "start provisiond on; body {\"name\"} optional",
                    true, {{"201", resp("Written", json{{"type", "object"}})}, {"4XX", errors()}})}}},
      {"/v1/webhooks",
       {{"post", op("Register a webhook (the secret is shown once)", false,
                    {{"201", resp("Registered", ref("Webhook"))}, {"4XX", errors()}}, ref("WebhookRegistration"))},
        {"get", op("List webhooks (a tenant sees its own)", false,
                   {{"200", resp("Webhooks", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                   json::array({query_param("tenant", "string", "tenant id (admin)")}))}}},
      {"/v1/webhooks/{id}",
       {{"get", op("A webhook", false, {{"200", resp("Webhook", ref("Webhook"))}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id")}))},
        {"delete", op("Delete a webhook", false, {{"204", resp("Deleted")}, {"4XX", errors()}}, nullptr,
                      json::array({path_param("id")}))}}},
      {"/v1/webhooks/{id}/reactivate",
       {{"post", op("Reactivate a deactivated webhook", false,
                    {{"200", resp("Webhook", ref("Webhook"))}, {"4XX", errors()}}, nullptr,
                    json::array({path_param("id")}))}}},
      {"/v1/webhooks/{id}/deliveries",
       {{"get", op("The last delivery attempts, newest first (at most 100 kept)", false,
                   {{"200", resp("Deliveries", json{{"type", "object"}})}, {"4XX", errors()}}, nullptr,
                   json::array({path_param("id"), query_param("limit", "integer", "1 to 100, default 100")}))}}},
      {"/healthz",
       {{"get",
         {{"summary", "Liveness: 503 once only a restart can help (the journal failed a WAL write or sync)"},
          {"responses", {{"200", resp("Alive")}, {"503", resp("Must be restarted", ref("Error"))}}}}}}},
      {"/readyz",
       {{"get",
         {{"summary", "Readiness: 503 while the store cannot be read or the journal failed"},
          {"responses", {{"200", resp("Ready")}, {"503", resp("Not ready", ref("Error"))}}}}}}},
      {"/metrics", {{"get", {{"summary", "Prometheus metrics"}, {"responses", {{"200", resp("Metrics")}}}}}}},
  };
  return json{{"openapi", "3.0.3"},
              {"info", {{"title", "provisiond"}, {"version", PROVISIOND_VERSION}}},
              {"paths", std::move(paths)},
              {"components",
               {{"schemas", std::move(schemas)},
                {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
}

}  // namespace

const nlohmann::json& openapi_document() {
  static const nlohmann::json doc = build();
  return doc;
}

}  // namespace prov::gateway::detail
