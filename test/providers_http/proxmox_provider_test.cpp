// Contract tests of the Proxmox VE provider against a fake PVE API that answers as the
// documented API does (tasks with UPIDs, PVE's error answers, token and ticket auth) and checks
// every parameter against the API viewer's schema (see fake_proxmox_api.hpp). Every flow also
// asserts that no request violated the schema.

#include "prov/providers/proxmox_provider.hpp"

#include <catch2/catch.hpp>

#include "detail/proxmox_api.hpp"
#include "fake_proxmox_api.hpp"
#include "prov/core/secret_box.hpp"
#include "prov/providers/provider_factory.hpp"

using nlohmann::json;
using prov::events::resource;
using prov::events::step_kind;
using prov::providers::proxmox_credentials;
using prov::providers::proxmox_provider;
using prov::providers::proxmox_settings;
using prov::providers::step_call;
using prov::test::fake_proxmox_api;
namespace pve = prov::providers::pve;

namespace {

const std::string request_id = "0190a4b2-7c1e-7d3a-9f00-1234567890ab";
const std::string other_request = "0190a4b2-7c1e-7d3a-9f00-ffffffffffff";
const std::string tenant = "acme";

const std::string clone_settings =
    R"({"node": "pve", "template": 9000, "storage": "local-lvm", "bridge": "vmbr1", "pool": "tenants",
        "agentPing": true, "pollIntervalMs": 1, "taskTimeoutMs": 10000, "powerTimeoutMs": 10000,
        "verifyTimeoutMs": 10000, "requestTimeoutMs": 10000})";
const std::string create_settings =
    R"({"node": "pve", "storage": "local-lvm", "pollIntervalMs": 1, "requestTimeoutMs": 10000})";

proxmox_credentials token() {
  proxmox_credentials c;
  c.token_id = "provisiond@pve!engine";
  c.secret = "5b7e2a8c-3f1d-4c6a-9e0b-7d4f2a1c8e36";
  return c;
}

proxmox_credentials password() {
  proxmox_credentials c;
  c.username = "provisiond@pve";
  c.password = "test-password";
  return c;
}

std::unique_ptr<proxmox_provider> provider_for(const fake_proxmox_api& api, const std::string& settings = clone_settings,
                                               proxmox_credentials creds = token()) {
  auto s = proxmox_settings::parse(settings);
  INFO(settings);
  REQUIRE(s.ok());
  return std::make_unique<proxmox_provider>("pve-1", api.endpoint() + "/api2/json", *s, std::move(creds));
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

std::vector<resource> provision(proxmox_provider& p, const std::string& id = request_id) {
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

void roll_back(proxmox_provider& p, const std::vector<resource>& held, const std::string& id = request_id) {
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    auto out = p.release(prov::providers::release_call{id, *it, id + "/release/" + it->id});
    INFO(it->kind << " " << it->id << ": " << out.error.message);
    REQUIRE(out.ok);
  }
  auto swept = p.sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
}

std::int64_t vmid_of(const resource& r) {
  return std::stoll(r.id.substr(r.id.find('/') + 1));
}

}  // namespace

TEST_CASE("Proxmox VM names are deterministic DNS names", "[proxmox][names]") {
  for (const std::string& t : std::vector<std::string>{"acme", "Acme Corp!", "", "--", "ünïcode", std::string(80, 'x')}) {
    for (const std::string prefix : {"prov-", "", "p"}) {
      const auto name = proxmox_provider::vm_name(prefix, t, request_id);
      INFO("tenant '" << t << "' prefix '" << prefix << "' -> " << name);
      CHECK(prov::test::pve_schema::dns_name(name));
      CHECK(name.size() <= 20 + 24 + 1 + 12);
      CHECK(name == proxmox_provider::vm_name(prefix, t, request_id));
      CHECK(name != proxmox_provider::vm_name(prefix, t, other_request));
    }
  }
}

TEST_CASE("Proxmox settings and credentials parse strictly", "[proxmox][settings]") {
  auto s = proxmox_settings::parse(clone_settings);
  REQUIRE(s.ok());
  CHECK(s->template_id == 9000);
  CHECK(s->suspend_mode == "shutdown");
  auto as_string = proxmox_settings::parse(R"({"node": "pve", "template": "9000"})");
  REQUIRE(as_string.ok());
  CHECK(as_string->template_id == 9000);
  for (const std::string bad :
       {R"({})", R"({"node": "pve"})", R"({"node": "pve", "template": 5})", R"({"node": "p ve", "storage": "x"})",
        R"({"node": "pve", "storage": "x", "suspendMode": "hibernate"})", R"({"node": "pve", "storage": "x", "disk": "scsi9"})",
        R"({"node": "pve", "storage": "x", "nextidAttempts": 0})", R"({"node": "pve", "storage": "x", "nodes": 1})",
        R"({"node": "pve", "storage": "x", "namePrefix": "-x"})", "[]"}) {
    INFO(bad);
    auto parsed = proxmox_settings::parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().code == prov::errc::invalid_argument);
  }
  auto t = proxmox_credentials::parse(R"({"tokenId": "u@pve!t", "secret": "abc"})");
  REQUIRE(t.ok());
  CHECK(t->token_id == "u@pve!t");
  auto u = proxmox_credentials::parse(R"({"username": "root@pam", "password": "pw", "caPem": "pem"})");
  REQUIRE(u.ok());
  CHECK(u->ca_pem == "pem");
  for (const std::string bad :
       {R"({})", R"({"tokenId": "u@pve", "secret": "secret-value"})", R"({"tokenId": "u@pve!t"})",
        R"({"tokenId": "u@pve!t", "secret": "secret-value", "username": "a@b", "password": "secret-value"})",
        R"({"username": "root", "password": "secret-value"})", R"({"tokenId": "u@pve!t", "secret": "a b secret-value"})",
        R"({"apiKey": "secret-value"})", "secret-value"}) {
    INFO(bad);
    auto parsed = proxmox_credentials::parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.err().message.find("secret-value") == std::string::npos);
  }
}

TEST_CASE("Proxmox helpers: marker, tags, sizes, property strings, UPIDs", "[proxmox][api]") {
  const pve::marker m{request_id, tenant, "key/1", "2030-01-01T00:00:00.000Z"};
  const auto text = pve::render_marker(m);
  CHECK(pve::parse_marker(text) == m);
  CHECK(pve::parse_marker("some notes\n" + text + "more notes") == m);
  CHECK_FALSE(pve::parse_marker("an admin's notes"));
  CHECK(pve::split_tags("a;b,c d") == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(pve::join_tags({"a", "b"}) == "a;b");
  CHECK(prov::test::pve_schema::tag_list(pve::join_tags({std::string{pve::managed_tag}, std::string{pve::suspended_tag}})));
  CHECK(*pve::drive_size_gib("local-lvm:vm-100-disk-0,size=32G") == Approx(32));
  CHECK(*pve::drive_size_gib("local-lvm:vm-100-disk-0,cache=none,size=512M") == Approx(0.5));
  CHECK(*pve::drive_size_gib("ceph:vm-1-disk-0,size=2T") == Approx(2048));
  CHECK_FALSE(pve::drive_size_gib("local-lvm:vm-100-disk-0"));
  const auto net = pve::parse_property_string("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1");
  REQUIRE(net.size() == 3);
  CHECK(net[0] == std::pair<std::string, std::string>{"virtio", "BC:24:11:00:00:01"});
  CHECK(pve::render_property_string(net) == "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1");
  CHECK(pve::upid_node("UPID:pve2:0000ABCD:00C0FFEE:65A1B2C3:qmclone:9000:root@pam:") == "pve2");
  CHECK(pve::vmid_of(json("105")) == 105);
  CHECK(pve::vmid_of(json(105)) == 105);
  CHECK(pve::vmid_of(json("x")) == 0);
  CHECK(pve::form_encode({{"description", "a b\nc"}, {"net0", "virtio,bridge=vmbr0"}}) ==
        "description=a%20b%0Ac&net0=virtio%2Cbridge%3Dvmbr0");
  pve::reply gone;
  gone.status = 500;
  gone.message = "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist";
  CHECK(pve::vm_gone(gone));
  CHECK(pve::error_of(gone, "x").code == "not_found");
}

TEST_CASE("Proxmox: the four steps make a tagged, running VM, rollback leaves the cluster empty", "[proxmox][flow]") {
  for (const bool clone : {true, false}) {
    DYNAMIC_SECTION((clone ? "full clone of a template, API token" : "a new VM, user ticket")) {
      fake_proxmox_api api{{}};
      auto p = provider_for(api, clone ? clone_settings : create_settings, clone ? token() : password());
      const auto name = proxmox_provider::vm_name("prov-", tenant, request_id);

      auto allocated = p->run_step(call_for(step_kind::allocate));
      INFO(allocated.error.message << "\n" << joined(api.log()));
      REQUIRE(allocated.ok);
      REQUIRE(allocated.resources.size() == 1);
      const auto& vm = allocated.resources[0];
      CHECK(vm.kind == "vm");
      CHECK(vm.id == "pve/100");
      CHECK(vm.name == name);
      auto cfg = *api.vm(100);
      CHECK(cfg["name"] == name);
      CHECK_FALSE(cfg.contains("lock"));
      auto mark = pve::parse_marker(cfg["description"].get<std::string>());
      REQUIRE(mark);
      CHECK(mark->request_id == request_id);
      CHECK(mark->tenant == tenant);
      CHECK(mark->idempotency_key == call_for(step_kind::allocate).idempotency_key);
      if (clone) {
        CHECK(cfg["pool"] == "tenants");
        CHECK(cfg["scsi0"] == "local-lvm:vm-100-disk-0,size=8G");
        CHECK(api.count("POST", "/nodes/pve/qemu/9000/clone") == 1);
      } else {
        CHECK(cfg["scsi0"] == "local-lvm:vm-100-disk-0,size=10G");
        CHECK(cfg["cores"] == 2);
        CHECK(cfg["tags"] == "provisiond");
      }

      std::vector<resource> held = allocated.resources;
      auto configured = p->run_step(call_for(step_kind::configure, held));
      INFO(configured.error.message);
      REQUIRE(configured.ok);
      CHECK(configured.endpoints.at("vm") == "pve/100");
      CHECK(configured.endpoints.at("vmid") == "100");
      cfg = *api.vm(100);
      CHECK(cfg["cores"] == 2);
      CHECK(cfg["memory"] == "4096");
      CHECK(cfg["scsi0"] == "local-lvm:vm-100-disk-0,size=10G");
      CHECK(pve::split_tags(cfg["tags"].get<std::string>()) == std::vector<std::string>{"provisiond"});
      if (clone) {
        // The template's NIC keeps its model and MAC address, on our bridge.
        CHECK(cfg["net0"].get<std::string>().rfind("virtio=BC:24:11:", 0) == 0);
        CHECK(cfg["net0"].get<std::string>().find("bridge=vmbr1") != std::string::npos);
        CHECK(api.count("PUT", "/resize") == 1);
      }
      REQUIRE(p->run_step(call_for(step_kind::configure, held, 2)).ok);  // idempotent
      CHECK(api.count("PUT", "/resize") == (clone ? 1 : 0));

      REQUIRE(p->run_step(call_for(step_kind::activate, held)).ok);
      CHECK(api.vm(100)->at("status") == "running");
      auto verified = p->run_step(call_for(step_kind::verify, held));
      INFO(verified.error.message);
      REQUIRE(verified.ok);
      if (clone) {
        CHECK(verified.endpoints.at("ip") == "10.0.0.100");
      }

      roll_back(*p, held);
      CHECK(api.vmids().empty());
      INFO(joined(api.violations()));
      CHECK(api.violations().empty());
      CHECK(api.count("DELETE", "/nodes/pve/qemu/100") == 1);
    }
  }
}

TEST_CASE("Proxmox: a VMID taken between nextid and the clone is replaced by a new one", "[proxmox][idempotency]") {
  fake_proxmox_api api{{}};
  SECTION("taken twice, the third works") {
    auto p = provider_for(api);
    api.steal_next_ids(2);
    auto out = p->run_step(call_for(step_kind::allocate));
    INFO(out.error.message << "\n" << joined(api.log()));
    REQUIRE(out.ok);
    CHECK(out.resources[0].id == "pve/102");
    CHECK(api.count("POST", "/clone") == 3);
    CHECK(api.count("GET", "/cluster/nextid") == 3);
    CHECK(api.vmids().size() == 3);  // ours and the two that someone else took
  }
  SECTION("taken every time: a retryable conflict") {
    auto p = provider_for(api, R"({"node": "pve", "template": 9000, "nextidAttempts": 2, "pollIntervalMs": 1})");
    api.steal_next_ids(5);
    auto out = p->run_step(call_for(step_kind::allocate));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "conflict");
    CHECK(out.error.retryable);
    CHECK(api.count("POST", "/clone") == 2);
  }
  CHECK(api.violations().empty());
}

TEST_CASE("Proxmox crash and resume: a re-run adopts the VM, never makes a second", "[proxmox][idempotency]") {
  SECTION("the first try finished") {
    fake_proxmox_api api{{}};
    auto p = provider_for(api);
    auto first = p->run_step(call_for(step_kind::allocate, {}, 1));
    REQUIRE(first.ok);
    auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
    INFO(again.error.message);
    REQUIRE(again.ok);
    CHECK(again.resources[0].id == first.resources[0].id);
    CHECK(api.count("POST", "/clone") == 1);
    CHECK(api.vmids().size() == 1);
  }
  SECTION("the first try stopped while the clone ran (the VM has no name yet)") {
    fake_proxmox_api::options o;
    o.task_reads = 6;
    fake_proxmox_api api{o};
    // The task's status never answers (the engine is going down): the step gives up.
    auto p = provider_for(api, R"({"node": "pve", "template": 9000, "pollIntervalMs": 1, "requestTimeoutMs": 300,
                                   "taskTimeoutMs": 500})");
    api.inject({"GET", "/tasks/", 0, true, 2});
    auto first = p->run_step(call_for(step_kind::allocate, {}, 1));
    REQUIRE_FALSE(first.ok);
    CHECK(first.error.code == "timeout");
    CHECK(first.error.retryable);
    auto pending = *api.vm(100);
    CHECK(pending["lock"] == "clone");
    CHECK_FALSE(pending.contains("name"));
    auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
    INFO(again.error.message << "\n" << joined(api.log()));
    REQUIRE(again.ok);
    CHECK(again.resources[0].id == "pve/100");
    CHECK(api.count("GET", "/nodes/pve/qemu -> 200") >= 2);  // waited for the nameless clone
    CHECK(api.count("POST", "/clone") == 1);
    CHECK(api.vmids() == std::vector<std::int64_t>{100});
  }
  SECTION("the engine lost the outcome: sweep finds the VM by name and marker") {
    fake_proxmox_api api{{}};
    auto p = provider_for(api);
    REQUIRE(p->run_step(call_for(step_kind::allocate)).ok);
    provision(*p, other_request);
    auto swept = p->sweep(request_id);
    INFO(swept.error.message);
    REQUIRE(swept.ok);
    REQUIRE(swept.released.size() == 1);
    CHECK(swept.released[0].id == "pve/100");
    CHECK(swept.released[0].idempotency_key == call_for(step_kind::allocate).idempotency_key);
    CHECK(api.vmids() == std::vector<std::int64_t>{101});
    auto again = p->sweep(request_id);
    REQUIRE(again.ok);
    CHECK(again.released.empty());
  }
}

TEST_CASE("Proxmox: a VM with our name that is not ours is a non-retryable name_taken", "[proxmox][idempotency]") {
  fake_proxmox_api api{{}};
  auto p = provider_for(api);
  const auto name = proxmox_provider::vm_name("prov-", tenant, request_id);
  std::int64_t foreign = 0;
  SECTION("no marker") {
    foreign = api.put_vm(name, "a team's VM");
  }
  SECTION("another request's marker") {
    foreign = api.put_vm(name, pve::render_marker({other_request, tenant, "k", "2030-01-01T00:00:00Z"}));
  }
  auto out = p->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "name_taken");
  CHECK_FALSE(out.error.retryable);
  CHECK(out.resources.empty());
  auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
  CHECK(again.error.code == "name_taken");
  // Rollback leaves it alone, also when asked to release its VMID.
  REQUIRE(p->release({request_id, resource{"vm", "pve/" + std::to_string(foreign), name, step_kind::allocate, "k", false},
                      "r"})
              .ok);
  REQUIRE(p->sweep(request_id).ok);
  CHECK(api.vm(foreign).has_value());
  CHECK(api.count("DELETE", "") == 0);
  CHECK(api.count("POST", "/clone") == 0);
}

TEST_CASE("Proxmox: suspend and reactivate", "[proxmox][suspend]") {
  for (const std::string mode : {"shutdown", "pause"}) {
    DYNAMIC_SECTION("suspendMode " << mode) {
      fake_proxmox_api api{{}};
      auto p = provider_for(api, R"({"node": "pve", "template": 9000, "pollIntervalMs": 1, "suspendMode": ")" + mode +
                                     "\"}");
      const auto held = provision(*p);
      const auto vmid = vmid_of(held[0]);
      const auto call = service_for(held);
      REQUIRE(p->suspend(call).ok);
      REQUIRE(p->suspend(call).ok);  // idempotent
      auto vm = *api.vm(vmid);
      CHECK(vm["qmpstatus"] == (mode == "pause" ? "paused" : "stopped"));
      CHECK(api.count("POST", mode == "pause" ? "/status/suspend" : "/status/shutdown") == 1);
      CHECK(pve::split_tags(vm["tags"].get<std::string>()) == std::vector<std::string>{"provisiond", "provisiond-suspended"});
      auto items = p->inventory();
      REQUIRE(items.ok());
      REQUIRE(items->size() == 1);
      CHECK((*items)[0].suspended);
      auto verify = p->run_step(call_for(step_kind::verify, held, 2));
      CHECK_FALSE(verify.ok);
      CHECK(verify.error.code == "not_running");

      REQUIRE(p->reactivate(call).ok);
      REQUIRE(p->reactivate(call).ok);
      vm = *api.vm(vmid);
      CHECK(vm["status"] == "running");
      CHECK(vm["qmpstatus"] == "running");
      CHECK(vm["tags"] == "provisiond");
      CHECK(api.count("POST", mode == "pause" ? "/status/resume" : "/status/start") == (mode == "pause" ? 1 : 2));
      REQUIRE(p->run_step(call_for(step_kind::verify, held, 3)).ok);
      roll_back(*p, held);
      CHECK(api.vmids().empty());
      CHECK(api.violations().empty());
    }
  }
}

TEST_CASE("Proxmox: HTTP faults map to retryable and non-retryable errors", "[proxmox][fault]") {
  struct expectation {
    fake_proxmox_api::fault fault;
    std::string code;
    bool retryable;
  };
  const std::vector<expectation> table{
      {{"POST", "/clone", 500}, "server_error", true},
      {{"POST", "/clone", 503}, "server_error", true},
      {{"POST", "/clone", 596, false, 1, "Connection timed out"}, "unreachable", true},
      {{"POST", "/clone", 429}, "rate_limited", true},
      {{"POST", "/clone", 0, true}, "timeout", true},
      {{"POST", "/clone", 400, false, 1, "Parameter verification failed."}, "bad_spec", false},
      {{"POST", "/clone", 403, false, 1, "Permission check failed (/vms/100, VM.Clone)"}, "forbidden", false},
      {{"POST", "/clone", 500, false, 1, "VM is locked (backup)"}, "busy", true},
      {{"POST", "/clone", 500, false, 1, "Configuration file 'nodes/pve/qemu-server/9000.conf' does not exist"},
       "not_found", false},
  };
  for (const auto& e : table) {
    DYNAMIC_SECTION("status " << e.fault.status << " " << e.fault.message << (e.fault.hang ? " (no answer)" : "")) {
      fake_proxmox_api api{{}};
      auto p = provider_for(api, e.fault.hang ? R"({"node": "pve", "template": 9000, "pollIntervalMs": 1,
                                                    "requestTimeoutMs": 300})"
                                              : clone_settings);
      api.inject(e.fault);
      auto out = p->run_step(call_for(step_kind::allocate));
      INFO(joined(api.log()));
      REQUIRE_FALSE(out.ok);
      CHECK(out.error.code == e.code);
      CHECK(out.error.retryable == e.retryable);
      auto again = p->run_step(call_for(step_kind::allocate, {}, 2));
      INFO(again.error.message);
      CHECK(again.ok);
      CHECK(api.vmids().size() == 1);
    }
  }
}

TEST_CASE("Proxmox: an expired ticket is renewed once, a refused token is not retried further", "[proxmox][auth]") {
  SECTION("ticket") {
    fake_proxmox_api api{{}};
    auto p = provider_for(api, create_settings, password());
    const auto held = provision(*p);
    CHECK(api.tickets_issued() == 1);
    api.expire_tickets();
    auto verified = p->run_step(call_for(step_kind::verify, held, 2));
    INFO(verified.error.message);
    REQUIRE(verified.ok);
    CHECK(api.tickets_issued() == 2);
    auto wrong = password();
    wrong.password = "wrong";
    auto bad = provider_for(api, create_settings, wrong);
    auto out = bad->run_step(call_for(step_kind::verify, held, 3));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unauthorized");
    CHECK_FALSE(out.error.retryable);
    CHECK(out.error.message.find("wrong") == std::string::npos);
  }
  SECTION("token") {
    fake_proxmox_api api{{}};
    auto p = provider_for(api);
    const auto held = provision(*p);
    api.inject({"GET", "/status/current", 401, false, 1, "invalid token value!"});
    REQUIRE(p->run_step(call_for(step_kind::verify, held, 2)).ok);  // repeated once
    api.inject({"GET", "/status/current", 401, false, 2, "invalid token value!"});
    auto out = p->run_step(call_for(step_kind::verify, held, 3));
    REQUIRE_FALSE(out.ok);
    CHECK(out.error.code == "unauthorized");
    CHECK_FALSE(out.error.retryable);
    auto revoked = token();
    revoked.secret = "00000000-0000-0000-0000-000000000000";
    auto report = provider_for(api, clone_settings, revoked)->test_connectivity();
    CHECK_FALSE(report.ok);
    CHECK_THAT(report.message, Catch::Contains("401"));
  }
}

TEST_CASE("Proxmox: TLS with the cluster's CA, nothing else trusted", "[proxmox][tls]") {
  const auto ca = prov::test::make_test_ca("Proxmox Virtual Environment");
  fake_proxmox_api::options o;
  o.tls = prov::test::make_server_identity(ca);
  fake_proxmox_api api{o};
  auto creds = token();
  creds.ca_pem = ca.cert_pem;
  auto trusted = provider_for(api, clone_settings, creds);
  auto report = trusted->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  const auto held = provision(*trusted);
  roll_back(*trusted, held);
  CHECK(api.vmids().empty());

  auto untrusted = provider_for(api);
  auto out = untrusted->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "tls");
  CHECK_FALSE(out.error.retryable);
  CHECK_THAT(untrusted->test_connectivity().message, Catch::Contains("certificate"));
  auto insecure = provider_for(api, R"({"node": "pve", "template": 9000, "insecureSkipVerify": true})");
  CHECK(insecure->test_connectivity().ok);
}

TEST_CASE("Proxmox: release stops and destroys, gone or reused VMIDs are success", "[proxmox][rollback]") {
  fake_proxmox_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  REQUIRE(p->release({request_id, held[0], "r1"}).ok);
  CHECK(api.count("POST", "/status/stop") == 1);
  CHECK(api.vmids().empty());
  REQUIRE(p->release({request_id, held[0], "r2"}).ok);  // 500 "does not exist"
  CHECK(api.log().back().find("-> 500") != std::string::npos);
  // The VMID is handed out again, to someone else: not ours any more.
  const auto reused = api.put_vm("someone-else");
  CHECK(reused == vmid_of(held[0]));
  REQUIRE(p->release({request_id, held[0], "r3"}).ok);
  CHECK(api.vm(reused).has_value());
  auto bad = p->release({request_id, resource{"vm", "100", "x", step_kind::allocate, "k", false}, "r4"});
  REQUIRE_FALSE(bad.ok);
  CHECK(bad.error.code == "bad_resource");
  CHECK(api.violations().empty());
}

TEST_CASE("Proxmox verify: the guest agent must answer when agentPing is on", "[proxmox][verify]") {
  fake_proxmox_api::options o;
  o.agent = false;
  fake_proxmox_api api{o};
  auto p = provider_for(api, R"({"node": "pve", "template": 9000, "agentPing": true, "pollIntervalMs": 1,
                                 "verifyTimeoutMs": 30})");
  std::vector<resource> held;
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate}) {
    auto out = p->run_step(call_for(step, held));
    REQUIRE(out.ok);
    held.insert(held.end(), out.resources.begin(), out.resources.end());
  }
  auto out = p->run_step(call_for(step_kind::verify, held));
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "agent_not_running");
  CHECK(out.error.retryable);
  auto without = provider_for(api, R"({"node": "pve", "template": 9000, "pollIntervalMs": 1})");
  CHECK(without->run_step(call_for(step_kind::verify, held, 2)).ok);
}

TEST_CASE("Proxmox metrics: the VM's live counters", "[proxmox][metrics]") {
  fake_proxmox_api api{{}};
  auto p = provider_for(api);
  const auto held = provision(*p);
  api.set_counters(vmid_of(held[0]), {{"cpu", 0.25},
                                      {"mem", 1073741824},
                                      {"netin", 123456},
                                      {"netout", 654321},
                                      {"diskread", 1000},
                                      {"diskwrite", 2000},
                                      {"uptime", 3600}});
  auto m = p->metrics(service_for(held));
  INFO(m.error.message);
  REQUIRE(m.ok);
  CHECK(*m.cpu_percent == Approx(25.0));
  CHECK(*m.memory_used_mb == Approx(1024.0));
  CHECK(*m.network_rx_bytes == Approx(123456));
  CHECK(*m.network_tx_bytes == Approx(654321));
  CHECK_FALSE(m.disk_used_gb.has_value());  // QEMU reports 0 without the guest agent's help
  CHECK(m.extra.at("memory_total_mb") == Approx(4096));
  CHECK(m.extra.at("cpus") == 2);
  CHECK(m.extra.at("uptime_s") == 3600);
  CHECK(m.extra.at("disk_write_bytes") == 2000);
  CHECK(m.extra.at("running") == 1);
  api.set_counters(vmid_of(held[0]), {{"disk", 2147483648.0}});
  auto with_disk = p->metrics(service_for(held));
  REQUIRE(with_disk.disk_used_gb.has_value());
  CHECK(*with_disk.disk_used_gb == Approx(2.0));

  roll_back(*p, held);
  auto gone = p->metrics(service_for(held));
  REQUIRE_FALSE(gone.ok);
  CHECK(gone.error.code == "not_found");
}

TEST_CASE("Proxmox inventory lists exactly the VMs our markers name", "[proxmox][inventory]") {
  fake_proxmox_api api{{}};
  auto p = provider_for(api);
  const auto mine = provision(*p);
  const auto theirs = provision(*p, other_request);
  api.put_vm("an-admins-vm");
  api.put_vm("prov-lookalike-0123456789ab", "no marker");
  auto items = p->inventory();
  REQUIRE(items.ok());
  REQUIRE(items->size() == 2);
  std::map<std::string, std::string> owner;
  for (const auto& item : *items) {
    owner[item.id] = item.request_id;
    CHECK(item.cluster == "pve-1");
    CHECK(item.kind == "vm");
    CHECK(item.idempotency_key.find("/allocate/1") != std::string::npos);
    CHECK(item.created_at.time_since_epoch().count() > 0);
    CHECK_FALSE(item.suspended);
  }
  CHECK(owner[mine[0].id] == request_id);
  CHECK(owner[theirs[0].id] == other_request);
}

TEST_CASE("Proxmox test_connectivity reads /version and the node", "[proxmox][connectivity]") {
  fake_proxmox_api api{{}};
  auto report = provider_for(api)->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  CHECK_THAT(report.message, Catch::Contains("8.1.4"));
  CHECK_THAT(report.message, Catch::Contains("node pve"));
  auto wrong_node = provider_for(api, R"({"node": "pve9", "template": 9000})")->test_connectivity();
  CHECK_FALSE(wrong_node.ok);
  CHECK_THAT(wrong_node.message, Catch::Contains("pve9"));
}

TEST_CASE("Proxmox factory: proxmox clusters get this driver", "[proxmox][factory]") {
  CHECK(prov::providers::has_driver(prov::events::provider_type::proxmox));
  fake_proxmox_api api{{}};
  auto box = prov::secret_box::from_key(std::string(32, 'k'));
  REQUIRE(box.ok());
  prov::events::cluster_state cluster;
  cluster.id = "pve-prod";
  cluster.type = prov::events::provider_type::proxmox;
  cluster.endpoint = api.endpoint();
  cluster.settings_json = clone_settings;
  cluster.credentials_sealed =
      box->seal(R"({"tokenId": "provisiond@pve!engine", "secret": "5b7e2a8c-3f1d-4c6a-9e0b-7d4f2a1c8e36"})");
  prov::system_clock_source clk;
  prov::providers::provider_context ctx;
  ctx.clk = &clk;
  ctx.secrets = &*box;
  auto p = prov::providers::make_provider(cluster, ctx);
  CHECK(p->blocking());
  auto report = p->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  auto broken = cluster;
  SECTION("no node") {
    broken.settings_json = R"({"template": 9000})";
  }
  SECTION("no credentials") {
    broken.credentials_sealed.clear();
  }
  SECTION("a token without its secret") {
    broken.credentials_sealed = box->seal(R"({"tokenId": "provisiond@pve!engine"})");
  }
  auto misconfigured = prov::providers::make_provider(broken, ctx);
  auto failed = misconfigured->run_step(call_for(step_kind::allocate));
  REQUIRE_FALSE(failed.ok);
  CHECK(failed.error.code == "misconfigured");
  CHECK_FALSE(failed.error.retryable);
}

TEST_CASE("Proxmox provides VMs only", "[proxmox][flow]") {
  fake_proxmox_api api{{}};
  auto p = provider_for(api);
  auto call = call_for(step_kind::allocate);
  call.type = prov::events::service_type::managed;
  auto out = p->run_step(call);
  REQUIRE_FALSE(out.ok);
  CHECK(out.error.code == "unsupported");
  CHECK(api.log().empty());
}
