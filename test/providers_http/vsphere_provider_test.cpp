// Contract tests of the vSphere provider against a fake vCenter that answers as the documented
// Automation API does, in both dialects (/api and the /rest of 6.7), and checks every request
// body against the schema of the fields we use (see fake_vsphere_api.hpp). Every flow also
// asserts that no body violated the schema.

#include "prov/providers/vsphere_provider.hpp"

#include <catch2/catch.hpp>

#include "detail/vsphere_api.hpp"
#include "fake_vsphere_api.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/providers/provider_factory.hpp"

using nlohmann::json;
using prov::events::resource;
using prov::events::step_kind;
using prov::providers::step_call;
using prov::providers::vsphere_credentials;
using prov::providers::vsphere_provider;
using prov::providers::vsphere_settings;
using prov::test::fake_vsphere_api;
namespace vsphere = prov::providers::vsphere;

namespace {

const std::string request_id = "0190a4b2-7c1e-7d3a-9f00-1234567890ab";
const std::string other_request = "0190a4b2-7c1e-7d3a-9f00-ffffffffffff";
const std::string tenant = "acme";

/// Placement by name (looked up) and by id, fast polling: the fake answers at once.
const std::string fast_settings =
    R"({"datacenter": "dc1", "folder": "vm", "resourcePool": "Resources", "datastore": "datastore-12",
        "network": "VM Network", "pollIntervalMs": 1, "powerTimeoutMs": 10000, "verifyTimeoutMs": 10000,
        "requestTimeoutMs": 10000})";

std::unique_ptr<vsphere_provider> provider_for(const fake_vsphere_api& api, const std::string& settings = fast_settings,
                                               const std::string& password = "test-password",
                                               const std::string& ca_pem = "") {
  auto s = vsphere_settings::parse(settings);
  INFO(settings);
  REQUIRE(s.ok());
  return std::make_unique<vsphere_provider>("vc-1", api.endpoint(), *s,
                                            vsphere_credentials{"provisiond@vsphere.local", password, ca_pem});
}

step_call call_for(step_kind step, const std::vector<resource>& resources = {}, std::uint32_t attempt = 1,
                   const std::string& id = request_id) {
  step_call c;
  c.request_id = id;
  c.tenant = tenant;
  c.type = prov::events::service_type::vps;
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

prov::providers::service_call service_for(const std::vector<resource>& held, const std::string& id = request_id) {
  prov::providers::service_call c;
  c.request_id = id;
  c.tenant = tenant;
  c.type = prov::events::service_type::vps;
  c.resources = held;
  return c;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

std::vector<resource> provision(vsphere_provider& p, const std::string& id = request_id) {
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

void roll_back(vsphere_provider& p, const std::vector<resource>& held, const std::string& id = request_id) {
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    auto out = p.release(prov::providers::release_call{id, *it, id + "/release/" + it->id});
    INFO(it->kind << " " << it->id << ": " << out.error.message);
    REQUIRE(out.ok);
  }
  auto swept = p.sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
}

}  // namespace

TEST_CASE("vSphere VM names are deterministic and safe", "[vsphere][names]") {
  const auto name = vsphere_provider::vm_name("prov-", tenant, request_id);
  CHECK(name.rfind("prov-acme-", 0) == 0);
  CHECK(name.size() == std::string{"prov-acme-"}.size() + 12);
  CHECK(name == vsphere_provider::vm_name("prov-", tenant, request_id));
  CHECK(name != vsphere_provider::vm_name("prov-", tenant, other_request));
  const auto odd = vsphere_provider::vm_name("", "Ünïcode Tenant With A Very Long Name Indeed!!", request_id);
  INFO(odd);
  CHECK(odd.size() <= 24 + 1 + 12);
  for (char c : odd) {
    CHECK(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'));
  }
}

TEST_CASE("vSphere settings and credentials parse strictly and never echo secrets", "[vsphere][settings]") {
  auto defaults = vsphere_settings::parse("");
  REQUIRE(defaults.ok());
  CHECK(defaults->verify_mode == "api");
  CHECK(defaults->api == "auto");
  CHECK_FALSE(defaults->insecure_skip_verify);
  auto custom = vsphere_settings::parse(
      R"({"template": "vm-42", "verifyMode": "tcp", "verifyPort": 2222, "suspendAction": "stop", "api": "rest",
          "cluster": "cluster1", "insecureSkipVerify": true, "guestOs": "UBUNTU_64"})");
  REQUIRE(custom.ok());
  CHECK(custom->template_id == "vm-42");
  CHECK(custom->verify_port == 2222);
  CHECK(custom->insecure_skip_verify);
  for (const std::string bad :
       {R"({"verifyMode": "ping"})", R"({"suspendAction": "hibernate"})", R"({"api": "soap"})", R"({"nicType": "RTL"})",
        R"({"guestOs": "ubuntu"})", R"({"namePrefix": "Prov_"})", R"({"verifyPort": 0})", R"({"pollIntervalMs": 0})",
        R"({"cluster": "c", "resourcePool": "r"})", R"({"folders": "x"})", "[]", "nope"}) {
    INFO(bad);
    auto parsed = vsphere_settings::parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().code == prov::errc::invalid_argument);
  }
  auto creds = vsphere_credentials::parse(R"({"username": "u@vsphere.local", "password": "p", "caPem": "x"})");
  REQUIRE(creds.ok());
  CHECK(creds->password == "p");
  for (const std::string bad : {R"({"username": "u"})", R"({"username": "u:x", "password": "secret-value"})",
                                R"({"username": "u", "password": "secret-value", "token": "t"})", "secret-value",
                                R"({"username": "u", "password": 5})"}) {
    auto parsed = vsphere_credentials::parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().message.find("secret-value") == std::string::npos);
  }
}

TEST_CASE("/api calls render to /rest as vSphere 6.5-7.0 expects", "[vsphere][api]") {
  using vsphere::dialect;
  const auto rest = [](vsphere::operation op) {
    auto r = vsphere::render(op, dialect::rest);
    REQUIRE(r.ok());
    return r->method + " " + r->target + (r->body.empty() ? "" : " " + r->body);
  };
  CHECK(rest({"GET", "/api/vcenter/vm", {{"names", "a"}, {"names", "b"}}, std::nullopt, ""}) ==
        "GET /rest/vcenter/vm?filter.names.1=a&filter.names.2=b");
  CHECK(rest({"GET", "/api/vcenter/folder", {{"names", "vm"}, {"type", "VIRTUAL_MACHINE"}}, std::nullopt, ""}) ==
        "GET /rest/vcenter/folder?filter.names.1=vm&filter.type=VIRTUAL_MACHINE");
  CHECK(rest({"POST", "/api/vcenter/vm/vm-1/power", {{"action", "start"}}, std::nullopt, ""}) ==
        "POST /rest/vcenter/vm/vm-1/power/start");
  CHECK(rest({"POST", "/api/vcenter/vm", {}, json{{"name", "x"}}, "spec"}) ==
        R"(POST /rest/vcenter/vm {"spec":{"name":"x"}})");
  CHECK(rest({"POST", "/api/cis/tagging/tag", {{"action", "list-tags-for-category"}}, json{{"category_id", "c:1"}}, ""}) ==
        "POST /rest/com/vmware/cis/tagging/tag/id:c:1?~action=list-tags-for-category");
  CHECK(rest({"POST", "/api/cis/tagging/tag-association/t:1", {{"action", "attach"}}, json{{"object_id", 1}}, ""}) ==
        R"(POST /rest/com/vmware/cis/tagging/tag-association/id:t:1?~action=attach {"object_id":1})");
  CHECK(rest({"PATCH", "/api/cis/tagging/tag/t:1", {}, json{{"description", "d"}}, "update_spec"}) ==
        R"(PATCH /rest/com/vmware/cis/tagging/tag/id:t:1 {"update_spec":{"description":"d"}})");
  CHECK(rest({"GET", "/api/session", {}, std::nullopt, ""}) == "POST /rest/com/vmware/cis/session?~action=get");
  auto clone = vsphere::render({"POST", "/api/vcenter/vm", {{"action", "clone"}}, json::object(), "spec"}, dialect::rest);
  REQUIRE_FALSE(clone.ok());
  CHECK(clone.err().code == prov::errc::unsupported);

  vsphere::reply r;
  vsphere::parse_error(json::parse(R"({"type": "com.vmware.vapi.std.errors.already_exists", "value": {"messages":
                                       [{"default_message": "exists", "id": "x", "args": []}]}})"),
                       r);
  CHECK(r.error_type == "ALREADY_EXISTS");
  CHECK(r.message == "exists");
  CHECK(vsphere::as_map(json::parse(R"([{"key": "/", "value": 1}])")) == json{{"/", 1}});

  const vsphere::marker m{request_id, tenant, "prov-acme-x", "k", "2030-01-01T00:00:00.000Z", true, false};
  CHECK(vsphere::parse_marker(vsphere::render_marker(m)) == m);
  CHECK_FALSE(vsphere::parse_marker("a tag an admin wrote"));
}

TEST_CASE("vSphere: the four steps make a tagged, powered-on VM, rollback leaves vCenter empty", "[vsphere][flow]") {
  for (const bool legacy : {false, true}) {
    DYNAMIC_SECTION((legacy ? "vSphere 6.7 (/rest)" : "vSphere 8 (/api)")) {
      fake_vsphere_api::options o;
      o.legacy = legacy;
      fake_vsphere_api api{o};
      auto p = provider_for(api);
      const auto name = vsphere_provider::vm_name("prov-", tenant, request_id);

      auto allocated = p->run_step(call_for(step_kind::allocate));
      INFO(allocated.error.message << "\n" << joined(api.log()));
      REQUIRE(allocated.ok);
      REQUIRE(allocated.resources.size() == 1);
      const auto& vm = allocated.resources[0];
      CHECK(vm.kind == "vm");
      CHECK(vm.id.rfind("vm-", 0) == 0);
      CHECK(vm.name == name);
      CHECK(vm.idempotency_key == call_for(step_kind::allocate).idempotency_key);
      auto made = *api.vm(vm.id);
      CHECK(made["name"] == name);
      CHECK(made["cpu"] == 2);
      CHECK(made["memory_mib"] == 4096);
      CHECK(made["disks"] == json::array({10LL << 30}));
      CHECK(made["folder"] == "group-v3");
      CHECK(made["resource_pool"] == "resgroup-8");
      CHECK(made["power"] == "POWERED_OFF");
      CHECK(api.tags_of(vm.id) == std::vector<std::string>{request_id});
      CHECK(api.category_names() == std::vector<std::string>{"provisiond"});

      std::vector<resource> held = allocated.resources;
      auto configured = p->run_step(call_for(step_kind::configure, held));
      INFO(configured.error.message);
      REQUIRE(configured.ok);
      CHECK(configured.endpoints.at("vm") == vm.id);
      CHECK(configured.endpoints.at("vcenter") == api.endpoint());
      made = *api.vm(vm.id);
      REQUIRE(made["nics"].size() == 1);
      CHECK(made["nics"]["4000"]["backing"] == json{{"type", "STANDARD_PORTGROUP"}, {"network", "network-13"}});
      CHECK(made["nics"]["4000"]["type"] == "VMXNET3");
      REQUIRE(p->run_step(call_for(step_kind::configure, held, 2)).ok);  // idempotent: no second NIC
      CHECK(api.vm(vm.id)->at("nics").size() == 1);

      REQUIRE(p->run_step(call_for(step_kind::activate, held)).ok);
      CHECK(api.vm(vm.id)->at("power") == "POWERED_ON");
      auto verified = p->run_step(call_for(step_kind::verify, held));
      INFO(verified.error.message);
      REQUIRE(verified.ok);
      CHECK(verified.endpoints.at("ip") == "127.0.0.1");
      CHECK(verified.endpoints.at("hostname") == name);

      CHECK(api.count("POST", legacy ? "/rest/com/vmware/cis/session" : "/api/session") == 1);
      if (legacy) {
        CHECK(api.count("POST", "/api/session") == 1);  // tried first, 404
        CHECK(api.count("", "/rest/vcenter/vm") > 0);
      }

      roll_back(*p, held);
      CHECK(api.vm_ids().empty());
      CHECK(api.tag_names().empty());
      CHECK(api.violations().empty());
      INFO(joined(api.violations()));
    }
  }
}

TEST_CASE("vSphere: clones of a template VM or a library item get the spec's size", "[vsphere][flow]") {
  for (const std::string tmpl : {"vm-42", "7c0d8f3a-0b6f-4e3c-9a51-3c1b2e8f9d10"}) {
    DYNAMIC_SECTION("template " << tmpl) {
      fake_vsphere_api api{{}};
      auto p = provider_for(api, R"({"folder": "group-v77", "cluster": "cluster1", "network": "prod-net",
                                     "template": ")" + tmpl + R"(", "pollIntervalMs": 1})");
      const auto held = provision(*p);
      const auto made = *api.vm(held[0].id);
      CHECK(made["cpu"] == 2);
      CHECK(made["memory_mib"] == 4096);
      CHECK(made["folder"] == "group-v77");
      REQUIRE(made["nics"].size() == 2);  // the template's NIC, and ours on the distributed port group
      CHECK(made["nics"]["4001"]["backing"] == json{{"type", "DISTRIBUTED_PORTGROUP"}, {"network", "dvportgroup-20"}});
      CHECK(api.count("POST", tmpl == "vm-42" ? "action=clone" : "action=deploy") == 1);
      INFO(joined(api.violations()));
      CHECK(api.violations().empty());
      roll_back(*p, held);
      CHECK(api.vm_ids().empty());
    }
  }
  SECTION("clones need /api") {
    fake_vsphere_api::options o;
    o.legacy = true;
    fake_vsphere_api api{o};
    auto p = provider_for(api, R"({"folder": "vm", "resourcePool": "Resources", "template": "vm-42"})");
    auto out = p->run_step(call_for(step_kind::allocate));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unsupported");
    CHECK_FALSE(out.error.retryable);
  }
}

TEST_CASE("vSphere crash and resume: a re-run adopts the VM, never makes a second", "[vsphere][idempotency]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);

  SECTION("the first try finished") {
    auto first = p->run_step(call_for(step_kind::allocate, {}, 1));
    REQUIRE(first.ok);
    auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
    INFO(again.error.message);
    REQUIRE(again.ok);
    CHECK(again.resources[0].id == first.resources[0].id);
    CHECK(api.count("POST", "/api/vcenter/vm ->") == 1);
    CHECK(api.vm_ids().size() == 1);
  }
  SECTION("the first try stopped between creating and tagging the VM") {
    api.inject({"POST", "action=attach", 503});
    auto first = p->run_step(call_for(step_kind::allocate, {}, 1));
    REQUIRE_FALSE(first.ok);
    CHECK(first.error.retryable);
    REQUIRE(first.resources.size() == 1);  // reported, so a rollback would delete it
    CHECK(api.tags_of(first.resources[0].id).empty());
    auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
    INFO(again.error.message);
    REQUIRE(again.ok);
    CHECK(again.resources[0].id == first.resources[0].id);
    CHECK(api.tags_of(first.resources[0].id) == std::vector<std::string>{request_id});
    CHECK(api.vm_ids().size() == 1);
  }
  SECTION("the engine lost the outcome: sweep finds the untagged VM by the tag's record") {
    api.inject({"POST", "action=attach", 503});
    REQUIRE_FALSE(p->run_step(call_for(step_kind::allocate, {}, 1)).ok);
    auto swept = p->sweep(request_id);
    INFO(swept.error.message);
    REQUIRE(swept.ok);
    REQUIRE(swept.released.size() == 1);
    CHECK(swept.released[0].idempotency_key == call_for(step_kind::allocate).idempotency_key);
    CHECK(api.vm_ids().empty());
    CHECK(api.tag_names().empty());
  }
  CHECK(api.violations().empty());
}

TEST_CASE("vSphere: a VM with our name that is not ours is a non-retryable name_taken", "[vsphere][idempotency]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  const auto name = vsphere_provider::vm_name("prov-", tenant, request_id);
  std::string foreign;
  SECTION("an untagged VM someone made") {
    foreign = api.put_vm(name);
  }
  SECTION("a VM of another request with the same name") {
    // Another request's VM renamed to ours: tagged, but not with our tag.
    auto q = provider_for(api);
    auto theirs = q->run_step(call_for(step_kind::allocate, {}, 1, other_request));
    REQUIRE(theirs.ok);
    foreign = theirs.resources[0].id;
    auto renamed = api.put_vm(name);  // and one more, untagged, for good measure
    (void)renamed;
  }
  auto out = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "name_taken");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.resources.empty());
  // A retry after a crash must not adopt it either.
  auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
  REQUIRE_FALSE(again.ok);
  CHECK(again.error.code == "name_taken");
  // Rollback leaves it alone.
  REQUIRE(p->sweep(request_id).ok);
  CHECK(api.vm(foreign).has_value());
  CHECK(api.count("DELETE", "/api/vcenter/vm/") == 0);
}

TEST_CASE("vSphere: activate waits for the power state, suspend and reactivate", "[vsphere][suspend]") {
  fake_vsphere_api::options o;
  o.power_reads = 3;  // the new state shows on the third read
  fake_vsphere_api api{o};
  for (const std::string mode : {"suspend", "stop"}) {
    DYNAMIC_SECTION("suspendAction " << mode) {
      auto p = provider_for(api, R"({"folder": "vm", "resourcePool": "Resources", "datastore": "datastore1",
                                     "pollIntervalMs": 1, "suspendAction": ")" + mode + "\"}");
      const auto held = provision(*p);
      CHECK(api.count("GET", held[0].id + "/power") >= 3);
      const auto call = service_for(held);
      REQUIRE(p->suspend(call).ok);
      REQUIRE(p->suspend(call).ok);  // idempotent
      CHECK(api.vm(held[0].id)->at("power") == (mode == "suspend" ? "SUSPENDED" : "POWERED_OFF"));
      auto items = p->inventory();
      REQUIRE(items.ok());
      REQUIRE(items->size() == 1);
      CHECK((*items)[0].suspended);
      REQUIRE(p->reactivate(call).ok);
      REQUIRE(p->reactivate(call).ok);
      CHECK(api.vm(held[0].id)->at("power") == "POWERED_ON");
      items = p->inventory();
      REQUIRE(items.ok());
      CHECK_FALSE((*items)[0].suspended);
      REQUIRE(p->run_step(call_for(step_kind::verify, held, 2)).ok);
      roll_back(*p, held);  // powers off, then deletes
      CHECK(api.vm_ids().empty());
      CHECK(api.violations().empty());
    }
  }
}

TEST_CASE("vSphere: HTTP faults map to retryable and non-retryable errors", "[vsphere][fault]") {
  struct expectation {
    fake_vsphere_api::fault fault;
    std::string code;
    bool retryable;
  };
  const std::vector<expectation> table{
      {{"POST", "/api/vcenter/vm", 500}, "server_error", true},
      {{"POST", "/api/vcenter/vm", 503}, "server_error", true},
      {{"POST", "/api/vcenter/vm", 429}, "rate_limited", true},
      {{"POST", "/api/vcenter/vm", 0, true}, "timeout", true},
      {{"POST", "/api/vcenter/vm", 400}, "bad_spec", false},
      {{"POST", "/api/vcenter/vm", 403}, "forbidden", false},
      {{"POST", "/api/vcenter/vm", 404}, "not_found", false},
      {{"POST", "/api/vcenter/vm", 409}, "conflict", true},
  };
  for (const auto& e : table) {
    DYNAMIC_SECTION("status " << e.fault.status << (e.fault.hang ? " (no answer)" : "")) {
      fake_vsphere_api api{{}};
      auto p = provider_for(api, e.fault.hang ? R"({"folder": "vm", "resourcePool": "Resources",
                                                    "datastore": "datastore1", "requestTimeoutMs": 300})"
                                              : fast_settings);
      // The first POST to /api/vcenter/vm is the create (lookups are GETs, tagging is under /api/cis).
      api.inject(e.fault);
      auto out = p->run_step(call_for(step_kind::allocate));
      INFO(joined(api.log()));
      REQUIRE_FALSE(out.ok);
      CHECK(out.error.code == e.code);
      CHECK(out.error.retryable == e.retryable);
      auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
      INFO(again.error.message);
      CHECK(again.ok);
      CHECK(api.vm_ids().size() == 1);
    }
  }
}

TEST_CASE("vSphere: an expired session is renewed once, refused credentials are not retried", "[vsphere][auth]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  CHECK(api.sessions_created() == 1);
  api.expire_sessions();
  auto verified = p->run_step(call_for(step_kind::verify, held, 2));
  INFO(verified.error.message);
  REQUIRE(verified.ok);
  CHECK(api.sessions_created() == 2);
  CHECK(api.count("GET", "-> 401") == 1);

  SECTION("a session refused right after a new login: unauthorized, not retried further") {
    api.inject({"GET", "/power", 401, false, 2});
    auto out = p->run_step(call_for(step_kind::verify, held, 3));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unauthorized");
    CHECK_FALSE(out.error.retryable);
    CHECK(api.sessions_created() == 3);  // one new login, not a loop
  }
  SECTION("a wrong password") {
    auto bad = provider_for(api, fast_settings, "wrong");
    auto out = bad->run_step(call_for(step_kind::verify, held, 3));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unauthorized");
    CHECK_FALSE(out.error.retryable);
    CHECK(out.error.message.find("wrong") == std::string::npos);
    auto report = bad->test_connectivity();
    CHECK_FALSE(report.ok);
    CHECK_THAT(report.message, Catch::Contains("401"));
  }
}

TEST_CASE("vSphere: TLS with the vCenter CA from the credentials, nothing else trusted", "[vsphere][tls]") {
  const auto ca = prov::test::make_test_ca("vCenter CA");
  fake_vsphere_api::options o;
  o.tls = prov::test::make_server_identity(ca);
  fake_vsphere_api api{o};
  REQUIRE(api.endpoint().rfind("https://", 0) == 0);
  auto trusted = provider_for(api, fast_settings, "test-password", ca.cert_pem);
  auto report = trusted->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  const auto held = provision(*trusted);
  roll_back(*trusted, held);
  CHECK(api.vm_ids().empty());

  auto untrusted = provider_for(api);
  auto refused = untrusted->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(refused.ok);
  CHECK(refused.error.code == "tls");
  CHECK_FALSE(refused.error.retryable);
  CHECK_THAT(untrusted->test_connectivity().message, Catch::Contains("certificate"));

  auto insecure = provider_for(api, R"({"insecureSkipVerify": true})");
  CHECK(insecure->test_connectivity().ok);
}

TEST_CASE("vSphere: release deletes what is there, powered off first, gone is success", "[vsphere][rollback]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  REQUIRE(p->release({request_id, held[0], "r1"}).ok);
  CHECK(api.vm_ids().empty());
  REQUIRE(p->release({request_id, held[0], "r2"}).ok);  // 404: gone
  CHECK(api.log().back().find("-> 404") != std::string::npos);
  // A VM id whose VM now has another name is not ours any more.
  const auto other = api.put_vm("someone-else");
  REQUIRE(p->release({request_id, resource{"vm", other, held[0].name, step_kind::allocate, "k", false}, "r3"}).ok);
  CHECK(api.vm(other).has_value());
  REQUIRE(p->release({request_id, resource{"nic", "x", "x", step_kind::configure, "k", false}, "r4"}).ok);
  auto swept = p->sweep(request_id);
  REQUIRE(swept.ok);
  CHECK(swept.released.empty());
  CHECK(api.tag_names().empty());
}

TEST_CASE("vSphere: sweep removes only the request's VMs", "[vsphere][rollback]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  const auto theirs = provision(*p, other_request);
  auto mine = p->run_step(call_for(step_kind::allocate));
  REQUIRE(mine.ok);
  auto swept = p->sweep(request_id);
  REQUIRE(swept.ok);
  REQUIRE(swept.released.size() == 1);
  CHECK(swept.released[0].id == mine.resources[0].id);
  CHECK(api.vm_ids() == std::vector<std::string>{theirs[0].id});
  CHECK(api.tag_names() == std::vector<std::string>{other_request});
  REQUIRE(p->sweep(request_id).ok);
}

TEST_CASE("vSphere: verify with verifyMode tcp probes the guest's address", "[vsphere][verify]") {
  fake_vsphere_api api{{}};
  SECTION("the port answers") {
    // The guest's IP is 127.0.0.1: the fake vCenter's own port is an open one.
    auto p = provider_for(api, R"({"folder": "vm", "resourcePool": "Resources", "datastore": "datastore1",
                                   "pollIntervalMs": 1, "verifyMode": "tcp", "verifyPort": )" +
                                   std::to_string(api.port()) + "}");
    provision(*p);
  }
  SECTION("nothing listens: a retryable unreachable after the deadline") {
    unsigned short closed = 0;
    {
      fake_vsphere_api gone{{}};
      closed = gone.port();
    }
    auto p = provider_for(api, R"({"folder": "vm", "resourcePool": "Resources", "datastore": "datastore1",
                                   "pollIntervalMs": 1, "verifyTimeoutMs": 50, "connectTimeoutMs": 200,
                                   "verifyMode": "tcp", "verifyPort": )" +
                                   std::to_string(closed) + "}");
    std::vector<resource> held;
    for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate}) {
      auto out = p->run_step(call_for(step, held));
      REQUIRE(out.ok);
      held.insert(held.end(), out.resources.begin(), out.resources.end());
    }
    auto out = p->run_step(call_for(step_kind::verify, held));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unreachable");
    CHECK(out.error.retryable);
  }
  SECTION("a VM that is not on fails verify") {
    auto p = provider_for(api);
    auto held = provision(*p);
    api.set_power(held[0].id, "POWERED_OFF");
    auto out = p->run_step(call_for(step_kind::verify, held, 2));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "not_running");
  }
}

TEST_CASE("vSphere metrics: configured size, power and guest disk usage", "[vsphere][metrics]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  api.set_filesystem(held[0].id, 10LL << 30, 4LL << 30);
  auto m = p->metrics(service_for(held));
  INFO(m.error.message);
  REQUIRE(m.ok);
  REQUIRE(m.disk_used_gb.has_value());
  CHECK(*m.disk_used_gb == Approx(6.0));
  CHECK(m.extra.at("disk_capacity_gb") == Approx(10.0));
  CHECK(m.extra.at("cpu_count") == 2);
  CHECK(m.extra.at("memory_mb") == 4096);
  CHECK(m.extra.at("powered_on") == 1);
  CHECK_FALSE(m.cpu_percent.has_value());  // not offered by the Automation API
  CHECK_FALSE(m.network_rx_bytes.has_value());

  REQUIRE(p->suspend(service_for(held)).ok);
  auto off = p->metrics(service_for(held));
  REQUIRE(off.ok);
  CHECK(off.extra.at("powered_on") == 0);
  CHECK_FALSE(off.disk_used_gb.has_value());

  auto none = p->metrics(service_for({}));
  REQUIRE_FALSE(none.ok);
  CHECK(none.error.code == "not_found");
}

TEST_CASE("vSphere inventory lists exactly the VMs of our tags", "[vsphere][inventory]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  CHECK(p->inventory()->empty());  // no category yet
  const auto mine = provision(*p);
  const auto theirs = provision(*p, other_request);
  api.put_vm("an-admins-vm");
  auto items = p->inventory();
  REQUIRE(items.ok());
  REQUIRE(items->size() == 2);
  std::map<std::string, std::string> owner;
  for (const auto& item : *items) {
    owner[item.id] = item.request_id;
    CHECK(item.cluster == "vc-1");
    CHECK(item.kind == "vm");
    CHECK(item.idempotency_key.find("/allocate/1") != std::string::npos);
    CHECK(item.created_at.time_since_epoch().count() > 0);
  }
  CHECK(owner[mine[0].id] == request_id);
  CHECK(owner[theirs[0].id] == other_request);
}

TEST_CASE("vSphere test_connectivity reports the version and the dialect", "[vsphere][connectivity]") {
  for (const bool legacy : {false, true}) {
    fake_vsphere_api::options o;
    o.legacy = legacy;
    fake_vsphere_api api{o};
    auto report = provider_for(api)->test_connectivity();
    INFO(report.message);
    CHECK(report.ok);
    CHECK_THAT(report.message, Catch::Contains(legacy ? "6.7.0" : "8.0.2"));
    CHECK_THAT(report.message, Catch::Contains(legacy ? "/rest" : "/api"));
  }
  unsigned short closed = 0;
  {
    fake_vsphere_api gone{{}};
    closed = gone.port();
  }
  auto s = vsphere_settings::parse(fast_settings);
  vsphere_provider p{"vc", "http://127.0.0.1:" + std::to_string(closed), *s, vsphere_credentials{"u", "p", ""}};
  CHECK_FALSE(p.test_connectivity().ok);
  auto out = p.run_step(call_for(step_kind::allocate));
  CHECK(out.error.code == "unreachable");
  CHECK(out.error.retryable);
}

TEST_CASE("vSphere factory: vmware clusters get this driver", "[vsphere][factory]") {
  CHECK(prov::providers::has_driver(prov::events::provider_type::vmware));
  fake_vsphere_api api{{}};
  auto box = prov::secret_box::from_key(std::string(32, 'k'));
  REQUIRE(box.ok());
  prov::events::cluster_state cluster;
  cluster.id = "vc-prod";
  cluster.type = prov::events::provider_type::vmware;
  cluster.endpoint = api.endpoint() + "/";
  cluster.settings_json = fast_settings;
  cluster.credentials_sealed = box->seal(R"({"username": "provisiond@vsphere.local", "password": "test-password"})");
  prov::system_clock_source clk;
  prov::providers::provider_context ctx;
  ctx.clk = &clk;
  ctx.secrets = &*box;
  auto p = prov::providers::make_provider(cluster, ctx);
  CHECK(p->blocking());
  CHECK(p->test_connectivity().ok);
  auto broken = cluster;
  SECTION("bad settings") {
    broken.settings_json = R"({"verifyMode": "ping"})";
  }
  SECTION("no credentials") {
    broken.credentials_sealed.clear();
  }
  SECTION("credentials without a password") {
    broken.credentials_sealed = box->seal(R"({"username": "u"})");
  }
  auto misconfigured = prov::providers::make_provider(broken, ctx);
  auto failed = misconfigured->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(failed.ok);
  CHECK(failed.error.code == "misconfigured");
  CHECK_FALSE(failed.error.retryable);
}

TEST_CASE("vSphere provides VMs only, placement names must exist", "[vsphere][flow]") {
  fake_vsphere_api api{{}};
  auto p = provider_for(api);
  auto call = call_for(step_kind::allocate);
  call.type = prov::events::service_type::namespace_;
  auto out = p->run_step(call);
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "unsupported");
  CHECK(api.log().empty());

  auto q = provider_for(api, R"({"folder": "no-such-folder", "resourcePool": "Resources", "datastore": "datastore1"})");
  auto missing = q->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(missing.ok);
  CHECK(missing.error.code == "misconfigured");
  CHECK_FALSE(missing.error.retryable);
  CHECK_THAT(missing.error.message, Catch::Contains("no-such-folder"));
}
