// Contract tests of the Kubernetes/OpenShift provider against a fake API server that answers
// as the documented API does and checks every request body against the schema (see
// fake_kube_api.hpp). Every test also asserts that no body violated the schema.

#include "prov/providers/kubernetes_provider.hpp"

#include <catch2/catch.hpp>

#include "detail/kube_objects.hpp"
#include "fake_kube_api.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/providers/provider_factory.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using prov::events::resource;
using prov::events::step_kind;
using prov::providers::kubernetes_credentials;
using prov::providers::kubernetes_provider;
using prov::providers::kubernetes_settings;
using prov::providers::step_call;
using prov::providers::step_outcome;
using prov::test::fake_kube_api;
namespace kube = prov::providers::kube;

namespace {

const std::string request_id = "0190a4b2-7c1e-7d3a-9f00-1234567890ab";
const std::string tenant = "acme";

/// Fast polling and short deadlines: the fake answers at once.
const std::string fast_settings =
    R"({"pollIntervalMs": 1, "activateTimeoutMs": 10000, "deleteTimeoutMs": 10000, "requestTimeoutMs": 10000,
        "tenantGroupPrefix": "tenants:"})";

std::unique_ptr<kubernetes_provider> provider_for(const fake_kube_api& api, const std::string& settings = fast_settings,
                                                  bool openshift = false, const std::string& token = "test-token",
                                                  const std::string& ca_pem = "") {
  auto s = kubernetes_settings::parse(settings, openshift);
  REQUIRE(s.ok());
  return std::make_unique<kubernetes_provider>("k8s-1", api.endpoint(), *s, kubernetes_credentials{token, ca_pem});
}

step_call call_for(step_kind step, const std::vector<resource>& resources = {}, std::uint32_t attempt = 1,
                   const std::string& id = request_id) {
  step_call c;
  c.request_id = id;
  c.tenant = tenant;
  c.type = prov::events::service_type::namespace_;
  c.step = step;
  c.attempt = attempt;
  c.idempotency_key = id + "/" + std::string{prov::events::step_kind_names[static_cast<std::size_t>(step)]} + "/" +
                      std::to_string(attempt);
  c.spec.cpu_millis = 2000;
  c.spec.memory_mb = 4096;
  c.spec.storage_gb = 10;
  c.resources = resources;
  return c;
}

/// Runs the four steps, accumulating resources; returns them.
std::vector<resource> provision(kubernetes_provider& p, const std::string& id = request_id) {
  std::vector<resource> held;
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify}) {
    auto out = p.run_step(call_for(step, held, 1, id));
    INFO(prov::events::step_kind_names[static_cast<std::size_t>(step)] << ": " << out.error.code << " "
                                                                       << out.error.message);
    REQUIRE(out.ok);
    held.insert(held.end(), out.resources.begin(), out.resources.end());
  }
  return held;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

/// Releases in reverse creation order, then sweeps: the rollback path of the engine.
void roll_back(kubernetes_provider& p, const std::vector<resource>& held, const std::string& id = request_id) {
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    auto out = p.release(prov::providers::release_call{id, *it, id + "/release/" + it->id});
    INFO(it->kind << " " << it->id << ": " << out.error.message);
    REQUIRE(out.ok);
  }
  auto swept = p.sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
}

json metrics_item(const std::string& pod, const std::string& cpu, const std::string& memory) {
  return {{"metadata", {{"name", pod}}},
          {"timestamp", "2030-01-01T00:00:00Z"},
          {"window", "30s"},
          {"containers", json::array({{{"name", "app"}, {"usage", {{"cpu", cpu}, {"memory", memory}}}}})}};
}

}  // namespace

TEST_CASE("namespace names are deterministic DNS-1123 labels of at most 63 characters", "[kubernetes][names]") {
  const std::string long_tenant(200, 'x');
  for (const std::string& t :
       std::vector<std::string>{"acme", "Acme Corp!", "", "---", "tenant_with_underscores", "ünïcode", long_tenant}) {
    for (const std::string prefix : {"prov-", "", "a-very-long-prefix-x"}) {
      const auto name = kubernetes_provider::namespace_name(prefix, t, request_id);
      INFO("tenant '" << t << "' prefix '" << prefix << "' -> " << name);
      CHECK(prov::test::kube_schema::dns1123_label(name));
      CHECK(name.size() <= 63);
      CHECK(name == kubernetes_provider::namespace_name(prefix, t, request_id));
      CHECK(name != kubernetes_provider::namespace_name(prefix, t, request_id + "x"));
    }
  }
  CHECK(kubernetes_provider::namespace_name("prov-", "Acme Corp!", request_id).rfind("prov-acme-corp-", 0) == 0);
}

TEST_CASE("label values: valid ones kept, others sanitized with a hash", "[kubernetes][names]") {
  CHECK(kubernetes_provider::label_value(request_id) == request_id);
  CHECK(kubernetes_provider::label_value("acme") == "acme");
  for (const std::string& v :
       std::vector<std::string>{"tenant:with:colons", std::string(100, 'a'), "-leading", "é", "a b"}) {
    const auto label = kubernetes_provider::label_value(v);
    INFO(v << " -> " << label);
    CHECK(label.size() <= 63);
    CHECK(label != v);
    CHECK(label == kubernetes_provider::label_value(v));
    json object{{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "x"}, {"labels", {{"k", label}}}}}};
    CHECK(prov::test::kube_schema::check("namespaces", object).empty());
  }
}

TEST_CASE("settings: defaults, OpenShift defaults, strict parsing", "[kubernetes][settings]") {
  auto k8s = kubernetes_settings::parse("", false);
  REQUIRE(k8s.ok());
  CHECK_FALSE(k8s->use_project_request);
  CHECK(k8s->dns_namespace == "kube-system");
  CHECK(k8s->dns_ports == std::vector<int>{53});
  auto os = kubernetes_settings::parse("{}", true);
  REQUIRE(os.ok());
  CHECK(os->use_project_request);
  CHECK(os->dns_namespace == "openshift-dns");
  CHECK(os->dns_ports == std::vector<int>{53, 5353});
  auto custom = kubernetes_settings::parse(
      R"({"tenantGroupPrefix": "oidc:", "useProjectRequest": false, "networkPolicyDns": false, "maxPods": 20,
          "tenantSubjectKind": "User", "dnsPorts": [53], "consoleUrl": "https://console.example/"})",
      true);
  REQUIRE(custom.ok());
  CHECK(custom->tenant_group_prefix == "oidc:");
  CHECK_FALSE(custom->use_project_request);
  CHECK(custom->max_pods == 20);
  CHECK(custom->console_url == "https://console.example");
  for (const std::string bad :
       {R"({"useProjectRequests": true})", R"({"namespacePrefix": "Bad_"})", R"({"tenantSubjectKind": "Robot"})",
        R"({"dnsPorts": [0]})", R"({"pollIntervalMs": 0})", R"({"limitRequestFraction": 0.9})", "[1]", "not json",
        R"({"maxPods": -1})", R"({"verifyTls": "no"})"}) {
    INFO(bad);
    auto parsed = kubernetes_settings::parse(bad, false);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().code == prov::errc::invalid_argument);
  }
}

TEST_CASE("credentials: a token is required and secrets are never echoed", "[kubernetes][settings]") {
  auto ok = kubernetes_credentials::parse(R"({"token": "abc", "caPem": "-----BEGIN CERTIFICATE-----"})");
  REQUIRE(ok.ok());
  CHECK(ok->token == "abc");
  for (const std::string bad : {R"({})", R"({"token": ""})", R"({"token": "a b"})", R"({"token": 5})",
                                R"({"token": "abc", "password": "secret-value"})", "secret-value"}) {
    auto parsed = kubernetes_credentials::parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().message.find("secret-value") == std::string::npos);
  }
}

TEST_CASE("quantities parse and compare as numbers", "[kubernetes][objects]") {
  CHECK(*kube::parse_quantity("250m") == Approx(0.25));
  CHECK(*kube::parse_quantity("2") == Approx(2));
  CHECK(*kube::parse_quantity("1Gi") == Approx(1073741824.0));
  CHECK(*kube::parse_quantity("1.5k") == Approx(1500));
  CHECK(*kube::parse_quantity("2e3") == Approx(2000));
  CHECK(*kube::parse_quantity("123456789n") == Approx(0.123456789));
  CHECK_FALSE(kube::parse_quantity("abc"));
  CHECK_FALSE(kube::parse_quantity("1Xi"));
  CHECK(kube::quantities_equal("2000m", "2"));
  CHECK(kube::quantities_equal("4096Mi", "4Gi"));
  CHECK_FALSE(kube::quantities_equal("4096Mi", "4G"));
  std::string where;
  CHECK(kube::json_matches(json{{"a", {{"b", "1000m"}}}}, json{{"a", {{"b", "1"}, {"c", 2}}}}, true, where));
  CHECK_FALSE(kube::json_matches(json{{"a", {{"b", "1000m"}}}}, json{{"a", {{"b", "1"}}}}, false, where));
  CHECK(where == ".a.b: expected \"1000m\", found \"1\"");
}

TEST_CASE("the four steps write five valid objects, rollback leaves the cluster empty", "[kubernetes][flow]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto ns = kubernetes_provider::namespace_name("prov-", tenant, request_id);

  auto allocated = p->run_step(call_for(step_kind::allocate));
  REQUIRE(allocated.ok);
  REQUIRE(allocated.resources.size() == 1);
  CHECK(allocated.resources[0] ==
        resource{"namespace", ns, ns, step_kind::allocate, call_for(step_kind::allocate).idempotency_key, false});

  auto configured = p->run_step(call_for(step_kind::configure, allocated.resources));
  REQUIRE(configured.ok);
  std::vector<std::string> ids;
  for (const auto& r : configured.resources) {
    ids.push_back(r.kind + " " + r.id);
  }
  CHECK(ids == std::vector<std::string>{"resource_quota " + ns + "/provisiond-quota",
                                        "limit_range " + ns + "/provisiond-limits",
                                        "role_binding " + ns + "/provisiond-tenant-admin",
                                        "network_policy " + ns + "/provisiond-isolation"});
  CHECK(configured.endpoints.at("namespace") == ns);
  CHECK(configured.endpoints.at("api") == api.endpoint());

  std::vector<resource> held = allocated.resources;
  held.insert(held.end(), configured.resources.begin(), configured.resources.end());
  REQUIRE(p->run_step(call_for(step_kind::activate, held)).ok);
  auto verified = p->run_step(call_for(step_kind::verify, held));
  INFO(verified.error.message);
  REQUIRE(verified.ok);

  INFO(joined(api.log()));
  CHECK(api.violations().empty());
  CHECK(api.keys().size() == 5);

  // What was written, as the API server stores it (quantities in canonical form).
  auto ns_object = *api.object("namespaces", "", ns);
  CHECK(ns_object["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "provisiond");
  CHECK(ns_object["metadata"]["labels"]["provisiond.io/request-id"] == request_id);
  CHECK(ns_object["metadata"]["labels"]["provisiond.io/tenant"] == tenant);
  CHECK(ns_object["metadata"]["annotations"]["provisiond.io/idempotency-key"] ==
        call_for(step_kind::allocate).idempotency_key);
  auto quota = *api.object("resourcequotas", ns, "provisiond-quota");
  CHECK(quota["spec"]["hard"] == json{{"requests.cpu", "2"},
                                      {"limits.cpu", "2"},
                                      {"requests.memory", "4Gi"},
                                      {"limits.memory", "4Gi"},
                                      {"requests.storage", "10Gi"}});
  auto limits = *api.object("limitranges", ns, "provisiond-limits");
  CHECK(limits["spec"]["limits"][0]["default"] == json{{"cpu", "1"}, {"memory", "2Gi"}});
  CHECK(limits["spec"]["limits"][0]["defaultRequest"] == json{{"cpu", "250m"}, {"memory", "512Mi"}});
  auto binding = *api.object("rolebindings", ns, "provisiond-tenant-admin");
  CHECK(binding["roleRef"]["name"] == "admin");
  CHECK(binding["subjects"][0] ==
        json{{"kind", "Group"}, {"apiGroup", "rbac.authorization.k8s.io"}, {"name", "tenants:acme"}});
  auto policy = *api.object("networkpolicies", ns, "provisiond-isolation");
  CHECK(policy["spec"]["policyTypes"] == json{"Ingress", "Egress"});
  CHECK(policy["spec"]["ingress"] == json::parse(R"([{"from": [{"podSelector": {}}]}])"));
  CHECK(policy["spec"]["egress"][1]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] ==
        "kube-system");
  CHECK(policy["spec"]["egress"][1]["ports"] ==
        json::parse(R"([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])"));

  roll_back(*p, held);
  CHECK(api.keys().empty());
  CHECK(api.violations().empty());
  CHECK(api.count("DELETE", "/api/v1/namespaces/" + ns + " ->") == 1);
}

TEST_CASE("crash and resume: re-run steps adopt what the first try made", "[kubernetes][flow][idempotency]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);

  auto first = p->run_step(call_for(step_kind::allocate, {}, 1));
  REQUIRE(first.ok);
  // The engine crashed before recording the outcome: the step runs again with a new key.
  auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
  INFO(again.error.message);
  REQUIRE(again.ok);
  CHECK(again.resources[0].id == first.resources[0].id);
  CHECK(api.count("POST", "/api/v1/namespaces") == 2);
  CHECK(api.log()[1].find("-> 409") != std::string::npos);

  // Configure fails half-way (503 on the LimitRange), then runs again.
  api.inject({"POST", "/limitranges", 503});
  auto partial = p->run_step(call_for(step_kind::configure, first.resources, 1));
  REQUIRE_FALSE(partial.ok);
  CHECK(partial.error.retryable);
  CHECK(partial.error.code == "server_error");
  REQUIRE(partial.resources.size() == 1);
  CHECK(partial.resources[0].kind == "resource_quota");
  auto resumed = p->run_step(call_for(step_kind::configure, first.resources, 2));
  INFO(resumed.error.message);
  REQUIRE(resumed.ok);
  CHECK(resumed.resources.size() == 4);
  auto third = p->run_step(call_for(step_kind::configure, first.resources, 3));
  REQUIRE(third.ok);

  CHECK(api.keys().size() == 5);
  CHECK(api.violations().empty());
  std::vector<resource> held = first.resources;
  held.insert(held.end(), third.resources.begin(), third.resources.end());
  REQUIRE(p->run_step(call_for(step_kind::verify, held)).ok);
  roll_back(*p, held);
  CHECK(api.keys().empty());
}

TEST_CASE("a namespace or object that is not ours is a non-retryable name_taken", "[kubernetes][flow][idempotency]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto ns = kubernetes_provider::namespace_name("prov-", tenant, request_id);

  SECTION("a foreign namespace without our labels") {
    api.put("namespaces", "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}});
  }
  SECTION("a namespace of another request") {
    api.put("namespaces", "",
            {{"apiVersion", "v1"},
             {"kind", "Namespace"},
             {"metadata",
              {{"name", ns},
               {"labels", {{"app.kubernetes.io/managed-by", "provisiond"}, {"provisiond.io/request-id", "other"}}}}}});
  }
  auto out = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "name_taken");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.resources.empty());
  // Rollback must not touch it.
  REQUIRE(p->release({request_id, resource{"namespace", ns, ns, step_kind::allocate, "k", false}, "r"}).ok);
  REQUIRE(p->sweep(request_id).ok);
  CHECK(api.object("namespaces", "", ns).has_value());
  CHECK(api.count("DELETE", "") == 0);
}

TEST_CASE("a foreign object inside our namespace is name_taken too", "[kubernetes][flow][idempotency]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  auto allocated = p->run_step(call_for(step_kind::allocate));
  REQUIRE(allocated.ok);
  const auto ns = allocated.resources[0].id;
  api.put("limitranges", ns,
          {{"apiVersion", "v1"},
           {"kind", "LimitRange"},
           {"metadata", {{"name", "provisiond-limits"}}},
           {"spec", {{"limits", json::array({{{"type", "Container"}}})}}}});
  auto out = p->run_step(call_for(step_kind::configure, allocated.resources));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "name_taken");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.resources.size() == 1);  // the quota made before is reported for rollback
}

TEST_CASE("suspend zeroes the pods quota, reactivate restores it exactly", "[kubernetes][suspend]") {
  for (const bool with_pods : {false, true}) {
    DYNAMIC_SECTION("maxPods " << (with_pods ? "set" : "unset")) {
      fake_kube_api api{{}};
      const std::string settings = with_pods ? R"({"pollIntervalMs": 1, "maxPods": 20})" : R"({"pollIntervalMs": 1})";
      auto p = provider_for(api, settings);
      const auto held = provision(*p);
      const auto ns = held[0].id;
      const auto before = (*api.object("resourcequotas", ns, "provisiond-quota"))["spec"]["hard"];
      CHECK(before.contains("pods") == with_pods);

      prov::providers::service_call call;
      call.request_id = request_id;
      call.tenant = tenant;
      call.type = prov::events::service_type::namespace_;
      call.resources = held;
      REQUIRE(p->suspend(call).ok);
      REQUIRE(p->suspend(call).ok);  // idempotent: the saved quota is not overwritten
      auto suspended = *api.object("resourcequotas", ns, "provisiond-quota");
      CHECK(suspended["spec"]["hard"]["pods"] == "0");
      CHECK(json::parse(suspended["metadata"]["annotations"]["provisiond.io/suspended-hard"].get<std::string>()) ==
            before);
      auto items = p->inventory();
      REQUIRE(items.ok());
      for (const auto& item : *items) {
        CHECK(item.suspended);
      }

      REQUIRE(p->reactivate(call).ok);
      REQUIRE(p->reactivate(call).ok);
      auto restored = *api.object("resourcequotas", ns, "provisiond-quota");
      CHECK(restored["spec"]["hard"] == before);
      CHECK_FALSE(restored["metadata"]["annotations"].contains("provisiond.io/suspended-hard"));
      CHECK(api.count("PATCH", "resourcequotas") == 2);
      CHECK(api.violations().empty());
      REQUIRE(p->run_step(call_for(step_kind::verify, held)).ok);
    }
  }
}

TEST_CASE("HTTP faults map to retryable and non-retryable errors", "[kubernetes][fault]") {
  struct expectation {
    prov::test::fake_kube_api::fault fault;
    std::string code;
    bool retryable;
  };
  const std::vector<expectation> table{
      {{"POST", "/namespaces", 500}, "server_error", true}, {{"POST", "/namespaces", 503}, "server_error", true},
      {{"POST", "/namespaces", 429}, "rate_limited", true}, {{"POST", "/namespaces", 0, true}, "timeout", true},
      {{"POST", "/namespaces", 403}, "forbidden", false},   {{"POST", "/namespaces", 422}, "bad_spec", false},
      {{"POST", "/namespaces", 400}, "bad_request", false}, {{"POST", "/namespaces", 401}, "unauthorized", false},
  };
  for (const auto& e : table) {
    DYNAMIC_SECTION("status " << e.fault.status << (e.fault.hang ? " (no answer)" : "")) {
      fake_kube_api api{{}};
      // A short deadline only where the server never answers: a loaded machine must not turn
      // a slow answer into a timeout.
      auto p = provider_for(api, e.fault.hang ? R"({"pollIntervalMs": 1, "requestTimeoutMs": 300})"
                                              : R"({"pollIntervalMs": 1, "requestTimeoutMs": 10000})");
      api.inject(e.fault);
      auto out = p->run_step(call_for(step_kind::allocate));
      REQUIRE_FALSE(out.ok);
      CHECK(out.error.code == e.code);
      CHECK(out.error.retryable == e.retryable);
      // The fault was once: the step succeeds when run again.
      auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
      INFO(again.error.message);
      CHECK(again.ok);
    }
  }
}

TEST_CASE("an expired token is unauthorized everywhere, not retryable", "[kubernetes][fault]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  api.set_token("rotated-token");
  auto step = p->run_step(call_for(step_kind::verify, held));
  REQUIRE_FALSE(step.ok);
  CHECK(step.error.code == "unauthorized");
  CHECK_FALSE(step.error.retryable);
  auto released = p->release({request_id, held.back(), "r"});
  REQUIRE_FALSE(released.ok);
  CHECK(released.error.code == "unauthorized");
  auto report = p->test_connectivity();
  CHECK_FALSE(report.ok);
  CHECK_THAT(report.message, Catch::Contains("401"));
  CHECK_FALSE(p->inventory().ok());
  // A provider with the new token carries on.
  auto renewed = provider_for(api, fast_settings, false, "rotated-token");
  roll_back(*renewed, held);
  CHECK(api.keys().empty());
}

TEST_CASE("an unreachable API server is a retryable unreachable error", "[kubernetes][fault]") {
  unsigned short port = 0;
  {
    fake_kube_api gone{{}};
    port = static_cast<unsigned short>(std::stoi(gone.endpoint().substr(gone.endpoint().rfind(':') + 1)));
  }
  auto s = kubernetes_settings::parse(fast_settings, false);
  kubernetes_provider p{"k8s-1", "http://127.0.0.1:" + std::to_string(port), *s, kubernetes_credentials{"t", ""}};
  auto out = p.run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "unreachable");
  CHECK(out.error.retryable);
  CHECK_FALSE(p.test_connectivity().ok);
}

TEST_CASE("release: deleting what is gone succeeds", "[kubernetes][rollback]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  const auto& quota = held[1];
  REQUIRE(p->release({request_id, quota, "r1"}).ok);
  REQUIRE(p->release({request_id, quota, "r2"}).ok);  // 404: already gone
  CHECK(api.log().back().find("-> 404") != std::string::npos);
  REQUIRE(p->release({request_id, held[0], "r3"}).ok);
  REQUIRE(p->release({request_id, held[0], "r4"}).ok);  // terminating: not deleted twice
  REQUIRE(p->sweep(request_id).ok);
  REQUIRE(p->release({request_id, held[0], "r5"}).ok);  // gone: 404
  REQUIRE(p->release({request_id,
                      resource{"network_policy", "nowhere/provisiond-isolation", "x", step_kind::configure, "k", false},
                      "r6"})
              .ok);
  CHECK(api.count("DELETE", "/api/v1/namespaces/" + held[0].id + " ->") == 1);
  CHECK(api.keys().empty());
  CHECK(api.violations().empty());
}

TEST_CASE("DELETE of a namespace answered 409 (already terminating) counts as accepted", "[kubernetes][rollback]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  api.inject({"DELETE", "/api/v1/namespaces/" + held[0].id, 409});
  REQUIRE(p->release({request_id, held[0], "r1"}).ok);
  CHECK(api.log().back().find("DELETE") == 0);
  CHECK(api.log().back().find("-> 409") != std::string::npos);
  REQUIRE(p->sweep(request_id).ok);  // finds it still there, deletes it, waits until gone
  CHECK(api.keys().empty());
}

TEST_CASE("sweep deletes namespaces the journal never recorded, and only the request's", "[kubernetes][rollback]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const std::string other = "0190a4b2-7c1e-7d3a-9f00-ffffffffffff";
  provision(*p, other);
  auto allocated = p->run_step(call_for(step_kind::allocate));
  REQUIRE(allocated.ok);
  auto configured = p->run_step(call_for(step_kind::configure, allocated.resources));
  REQUIRE(configured.ok);
  // The engine lost every outcome: sweep alone must remove the request's namespace.
  auto swept = p->sweep(request_id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
  REQUIRE(swept.released.size() == 1);
  CHECK(swept.released[0].kind == "namespace");
  CHECK(swept.released[0].id == allocated.resources[0].id);
  CHECK(swept.released[0].idempotency_key == call_for(step_kind::allocate).idempotency_key);
  CHECK(api.keys().size() == 5);  // the other request's namespace and objects
  auto nothing = p->sweep(request_id);
  REQUIRE(nothing.ok);
  CHECK(nothing.released.empty());
}

TEST_CASE("sweep reports a namespace stuck terminating as retryable", "[kubernetes][rollback]") {
  prov::test::fake_kube_api::options o;
  o.terminating_reads = 1'000'000;  // finalizers that never finish
  fake_kube_api api{o};
  auto p = provider_for(api, R"({"pollIntervalMs": 1, "deleteTimeoutMs": 50})");
  REQUIRE(p->run_step(call_for(step_kind::allocate)).ok);
  auto swept = p->sweep(request_id);
  REQUIRE_FALSE(swept.ok);
  CHECK(swept.error.code == "terminating");
  CHECK(swept.error.retryable);
}

TEST_CASE("activate polls until Active, Terminating and deadlines fail", "[kubernetes][activate]") {
  SECTION("becomes Active after a few reads") {
    prov::test::fake_kube_api::options o;
    o.activation_reads = 3;
    fake_kube_api api{o};
    auto p = provider_for(api);
    auto allocated = p->run_step(call_for(step_kind::allocate));
    REQUIRE(allocated.ok);
    auto active = p->run_step(call_for(step_kind::activate, allocated.resources));
    INFO(active.error.message);
    REQUIRE(active.ok);
    CHECK(api.count("GET", "/api/v1/namespaces/" + allocated.resources[0].id) >= 3);
  }
  SECTION("never Active: retryable timeout") {
    prov::test::fake_kube_api::options o;
    o.activation_reads = 1'000'000;
    fake_kube_api api{o};
    auto p = provider_for(api, R"({"pollIntervalMs": 1, "activateTimeoutMs": 30})");
    auto allocated = p->run_step(call_for(step_kind::allocate));
    REQUIRE(allocated.ok);
    auto out = p->run_step(call_for(step_kind::activate, allocated.resources));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "timeout");
    CHECK(out.error.retryable);
  }
  SECTION("Terminating: not retryable") {
    fake_kube_api api{{}};
    auto p = provider_for(api);
    auto allocated = p->run_step(call_for(step_kind::allocate));
    REQUIRE(allocated.ok);
    REQUIRE(p->release({request_id, allocated.resources[0], "r"}).ok);
    auto out = p->run_step(call_for(step_kind::activate, allocated.resources));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "terminating");
    CHECK_FALSE(out.error.retryable);
    // Re-allocating while it terminates is retryable: it will be gone soon.
    auto realloc = p->run_step(call_for(step_kind::allocate, {}, 2));
    REQUIRE_FALSE(realloc.ok);
    CHECK(realloc.error.retryable);
  }
  SECTION("a transient 503 while polling is waited out") {
    fake_kube_api api{{}};
    auto p = provider_for(api);
    auto allocated = p->run_step(call_for(step_kind::allocate));
    REQUIRE(allocated.ok);
    api.inject({"GET", "/api/v1/namespaces/", 503, false, 2});
    REQUIRE(p->run_step(call_for(step_kind::activate, allocated.resources)).ok);
  }
}

TEST_CASE("verify finds objects that differ from what was written", "[kubernetes][verify]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  const auto ns = held[0].id;
  SECTION("a changed quota") {
    auto quota = *api.object("resourcequotas", ns, "provisiond-quota");
    quota["spec"]["hard"]["limits.cpu"] = "3";
    api.put("resourcequotas", ns, quota);
    auto out = p->run_step(call_for(step_kind::verify, held, 2));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "drift");
    CHECK_FALSE(out.error.retryable);
    CHECK_THAT(out.error.message, Catch::Contains("spec.hard.limits.cpu"));
  }
  SECTION("a removed network policy") {
    REQUIRE(p->release({request_id, held[4], "r"}).ok);
    auto out = p->run_step(call_for(step_kind::verify, held, 2));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "missing");
  }
  SECTION("a relabelled role binding") {
    auto binding = *api.object("rolebindings", ns, "provisiond-tenant-admin");
    binding["metadata"]["labels"]["provisiond.io/request-id"] = "someone-else";
    api.put("rolebindings", ns, binding);
    auto out = p->run_step(call_for(step_kind::verify, held, 2));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "drift");
  }
}

TEST_CASE("inventory lists exactly what provisiond made, with the request of each", "[kubernetes][inventory]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  const std::string other = "0190a4b2-7c1e-7d3a-9f00-ffffffffffff";
  const auto mine = provision(*p);
  const auto theirs = provision(*p, other);
  api.put("namespaces", "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "default"}}}});
  auto items = p->inventory();
  REQUIRE(items.ok());
  REQUIRE(items->size() == 10);
  std::map<std::string, std::string> owner_of;
  for (const auto& item : *items) {
    owner_of[item.kind + " " + item.id] = item.request_id;
    CHECK(item.cluster == "k8s-1");
    CHECK_FALSE(item.idempotency_key.empty());
    CHECK_FALSE(item.suspended);
    CHECK(item.created_at.time_since_epoch().count() > 0);
  }
  for (const auto& r : mine) {
    CHECK(owner_of[r.kind + " " + r.id] == request_id);
  }
  for (const auto& r : theirs) {
    CHECK(owner_of[r.kind + " " + r.id] == other);
  }
  CHECK(owner_of.count("namespace default") == 0);
}

TEST_CASE("metrics: pod usage summed from metrics.k8s.io, unsupported without it", "[kubernetes][metrics]") {
  prov::test::fake_kube_api::options o;
  o.metrics = true;
  fake_kube_api api{o};
  auto p = provider_for(api);
  const auto held = provision(*p);
  api.set_pod_metrics(held[0].id,
                      json::array({metrics_item("a", "250m", "256Mi"), metrics_item("b", "250000000n", "262144Ki")}));
  prov::providers::service_call call;
  call.request_id = request_id;
  call.tenant = tenant;
  call.type = prov::events::service_type::namespace_;
  call.spec.cpu_millis = 2000;
  call.resources = held;
  auto m = p->metrics(call);
  INFO(m.error.message);
  REQUIRE(m.ok);
  CHECK(*m.cpu_percent == Approx(25.0));
  CHECK(*m.memory_used_mb == Approx(512.0));
  CHECK(m.extra.at("pods") == 2);

  fake_kube_api bare{{}};
  auto q = provider_for(bare);
  auto none = q->metrics(call);
  REQUIRE_FALSE(none.ok);
  CHECK(none.error.code == "unsupported");
  CHECK_FALSE(none.error.retryable);
}

TEST_CASE("test_connectivity reads /version and checks the token", "[kubernetes][connectivity]") {
  fake_kube_api api{{}};
  auto good = provider_for(api);
  auto report = good->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  CHECK_THAT(report.message, Catch::Contains("v1.29.2"));
  CHECK(report.latency.count() >= 0);
  auto bad = provider_for(api, fast_settings, false, "wrong-token");
  auto refused = bad->test_connectivity();
  CHECK_FALSE(refused.ok);
  CHECK_THAT(refused.message, Catch::Contains("unauthorized") || Catch::Contains("401"));
}

TEST_CASE("OpenShift: a ProjectRequest, then our labels, a crash in between is adopted", "[kubernetes][openshift]") {
  prov::test::fake_kube_api::options o;
  o.openshift = true;
  fake_kube_api api{o};
  auto p = provider_for(api, R"({"pollIntervalMs": 1, "deleteTimeoutMs": 3000})", true);
  const auto ns = kubernetes_provider::namespace_name("prov-", tenant, request_id);

  api.inject({"PATCH", "/api/v1/namespaces/" + ns, 503});  // the labelling fails once
  auto first = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(first.ok);
  CHECK(first.error.retryable);
  CHECK(api.object("namespaces", "", ns).has_value());
  REQUIRE(first.resources.size() == 1);  // reported, so a rollback would delete it
  CHECK(first.resources[0].id == ns);

  std::vector<resource> held;
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify}) {
    auto out = p->run_step(call_for(step, held, 2));
    INFO(out.error.message);
    REQUIRE(out.ok);
    held.insert(held.end(), out.resources.begin(), out.resources.end());
  }
  CHECK(api.count("POST", "/apis/project.openshift.io/v1/projectrequests") == 2);
  auto ns_object = *api.object("namespaces", "", ns);
  CHECK(ns_object["metadata"]["labels"]["provisiond.io/request-id"] == request_id);
  CHECK(ns_object["metadata"]["annotations"]["openshift.io/requester"].is_string());
  auto policy = *api.object("networkpolicies", ns, "provisiond-isolation");
  const auto& dns = policy["spec"]["egress"][1];
  CHECK(dns["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "openshift-dns");
  CHECK(dns["ports"].size() == 4);
  CHECK(api.violations().empty());

  roll_back(*p, held);
  CHECK(api.keys().empty());
}

TEST_CASE("OpenShift: a project whose labelling failed is deleted by rollback", "[kubernetes][openshift]") {
  prov::test::fake_kube_api::options o;
  o.openshift = true;
  fake_kube_api api{o};
  auto p = provider_for(api, R"({"pollIntervalMs": 1})", true);
  api.inject({"PATCH", "/api/v1/namespaces/", 403});
  auto first = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(first.ok);
  CHECK(first.error.code == "forbidden");
  REQUIRE(first.resources.size() == 1);
  REQUIRE(p->release({request_id, first.resources[0], "r"}).ok);
  auto left = api.object("namespaces", "", first.resources[0].id);
  REQUIRE(left.has_value());
  CHECK((*left)["status"]["phase"] == "Terminating");
  CHECK(api.violations().empty());
}

TEST_CASE("OpenShift: a project someone else requested is name_taken", "[kubernetes][openshift]") {
  prov::test::fake_kube_api::options o;
  o.openshift = true;
  fake_kube_api api{o};
  auto p = provider_for(api, R"({"pollIntervalMs": 1})", true);
  const auto ns = kubernetes_provider::namespace_name("prov-", tenant, request_id);
  api.put("namespaces", "",
          {{"apiVersion", "v1"},
           {"kind", "Namespace"},
           {"metadata", {{"name", ns}, {"annotations", {{"openshift.io/description", "a team's project"}}}}}});
  auto out = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "name_taken");
  CHECK_FALSE(out.error.retryable);
}

TEST_CASE("TLS: the cluster CA from the credentials is trusted, nothing else", "[kubernetes][tls]") {
  const auto ca = prov::test::make_test_ca("cluster CA");
  prov::test::fake_kube_api::options o;
  o.tls = prov::test::make_server_identity(ca);
  fake_kube_api api{o};
  REQUIRE(api.endpoint().rfind("https://", 0) == 0);

  auto trusted = provider_for(api, fast_settings, false, "test-token", ca.cert_pem);
  CHECK(trusted->test_connectivity().ok);
  const auto held = provision(*trusted);
  roll_back(*trusted, held);
  CHECK(api.keys().empty());

  auto untrusted = provider_for(api);  // system CAs only
  auto report = untrusted->test_connectivity();
  CHECK_FALSE(report.ok);
  CHECK_THAT(report.message, Catch::Contains("tls: certificate verification failed"));
  auto out = untrusted->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "tls");
  CHECK_FALSE(out.error.retryable);

  auto insecure = provider_for(api, R"({"pollIntervalMs": 1, "verifyTls": false})");
  CHECK(insecure->test_connectivity().ok);
}

TEST_CASE("factory: Kubernetes and OpenShift clusters get this driver", "[kubernetes][factory]") {
  CHECK(prov::providers::has_driver(prov::events::provider_type::kubernetes));
  CHECK(prov::providers::has_driver(prov::events::provider_type::openshift));
  fake_kube_api api{{}};
  auto box = prov::secret_box::from_key(std::string(32, 'k'));
  REQUIRE(box.ok());
  prov::events::cluster_state cluster;
  cluster.id = "k8s-prod";
  cluster.type = prov::events::provider_type::kubernetes;
  cluster.endpoint = api.endpoint() + "/";
  cluster.settings_json = R"({"pollIntervalMs": 1})";
  cluster.credentials_sealed = box->seal(R"({"token": "test-token"})");
  prov::system_clock_source clk;
  prov::providers::provider_context ctx;
  ctx.clk = &clk;
  ctx.secrets = &*box;

  auto p = prov::providers::make_provider(cluster, ctx);
  auto out = p->run_step(call_for(step_kind::allocate));
  INFO(out.error.message);
  CHECK(out.ok);
  CHECK(p->test_connectivity().ok);

  auto broken = cluster;
  SECTION("bad settings") {
    broken.settings_json = R"({"nope": 1})";
  }
  SECTION("no credentials") {
    broken.credentials_sealed.clear();
  }
  SECTION("credentials sealed with another key") {
    auto other = prov::secret_box::from_key(std::string(32, 'o'));
    broken.credentials_sealed = other->seal(R"({"token": "test-token"})");
  }
  SECTION("no endpoint") {
    broken.endpoint.clear();
  }
  auto misconfigured = prov::providers::make_provider(broken, ctx);
  auto failed = misconfigured->run_step(call_for(step_kind::allocate, {}, 2));
  REQUIRE_FALSE(failed.ok);
  CHECK(failed.error.code == "misconfigured");
  CHECK_FALSE(failed.error.retryable);
  CHECK(failed.error.message.find("test-token") == std::string::npos);
}

TEST_CASE("only namespaces are provisioned on Kubernetes", "[kubernetes][flow]") {
  fake_kube_api api{{}};
  auto p = provider_for(api);
  auto call = call_for(step_kind::allocate);
  call.type = prov::events::service_type::vps;
  auto out = p->run_step(call);
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "unsupported");
  CHECK_FALSE(out.error.retryable);
  CHECK(api.log().empty());
}

TEST_CASE("network policy variants are valid NetworkPolicies", "[kubernetes][objects]") {
  const kube::owner owner{"prov-acme-0123456789", tenant, request_id, "key", step_kind::configure};
  auto router = kubernetes_settings::parse(R"({"allowIngressFromRouter": true})", true);
  REQUIRE(router.ok());
  const auto with_router = kube::network_policy(owner, *router);
  CHECK(prov::test::kube_schema::check("networkpolicies", with_router).empty());
  CHECK(with_router["spec"]["ingress"][0]["from"].size() == 2);
  CHECK(with_router["spec"]["egress"][1]["to"][0]["podSelector"]["matchLabels"] ==
        json{{"dns.operator.openshift.io/daemonset-dns", "default"}});

  auto no_dns = kubernetes_settings::parse(R"({"networkPolicyDns": false})", false);
  REQUIRE(no_dns.ok());
  const auto closed = kube::network_policy(owner, *no_dns);
  CHECK(prov::test::kube_schema::check("networkpolicies", closed).empty());
  CHECK(closed["spec"]["egress"].size() == 1);

  auto any_dns_pod = kubernetes_settings::parse(R"({"dnsPodLabels": {}})", false);
  REQUIRE(any_dns_pod.ok());
  const auto open_dns = kube::network_policy(owner, *any_dns_pod);
  CHECK(prov::test::kube_schema::check("networkpolicies", open_dns).empty());
  CHECK_FALSE(open_dns["spec"]["egress"][1]["to"][0].contains("podSelector"));

  // A spec without cpu or memory still makes a valid quota and limit range.
  prov::events::resource_spec storage_only;
  storage_only.storage_gb = 5;
  CHECK(prov::test::kube_schema::check("resourcequotas", kube::resource_quota(owner, storage_only, *no_dns)).empty());
  CHECK(prov::test::kube_schema::check("limitranges", kube::limit_range(owner, storage_only, *no_dns)).empty());
  // The schema check itself refuses what the API would.
  auto broken = with_router;
  broken["spec"]["egress"][1]["ports"][0]["port"] = "53";
  broken["spec"]["egress"][1]["ports"][1]["protocol"] = "ICMP";
  broken["spec"]["policyTypes"] = json{"Ingress", "Sideways"};
  CHECK(prov::test::kube_schema::check("networkpolicies", broken).size() == 3);
}
