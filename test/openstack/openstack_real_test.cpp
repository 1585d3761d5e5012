// The OpenStack provider against a real OpenStack control plane (label `openstack`, opt-in).
//
// Needs PROV_OPENSTACK_RC naming an openrc file (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD,
// OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME, OS_REGION_NAME), as
// scripts/openstack-dev/up.sh writes it. Without it, or when Keystone does not answer, every
// test here returns at once with a warning: the default ctest run never depends on a cloud.
//
// The cloud is expected to offer what up.sh seeds: image tiny-raw, flavors m1.tiny and
// x1.unplaceable (more RAM than any host has), networks private and public (external). Every
// test checks through the OpenStack API, not through the provider, that nothing of its request
// is left at the end. Request ids are unique per run, so tests may run in parallel.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "detail/openstack_objects.hpp"
#include "detail/openstack_session.hpp"
#include "prov/core/ids.hpp"
#include "prov/providers/http/client.hpp"
#include "prov/providers/openstack_provider.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using prov::events::resource;
using prov::events::step_kind;
using prov::providers::openstack_credentials;
using prov::providers::openstack_provider;
using prov::providers::openstack_settings;
using prov::providers::release_call;
using prov::providers::service_call;
using prov::providers::step_call;
namespace os = prov::providers::openstack;

namespace {

using steady = std::chrono::steady_clock;

struct cloud_env {
  std::string auth_url;
  openstack_credentials credentials;
  std::string region;
};

/// The cloud named by PROV_OPENSTACK_RC, or why there is none.
std::optional<cloud_env> cloud_from_env(std::string& why) {
  const char* rc = std::getenv("PROV_OPENSTACK_RC");
  if (rc == nullptr || *rc == '\0') {
    why = "PROV_OPENSTACK_RC is not set (see README: OpenStack provider)";
    return std::nullopt;
  }
  std::ifstream in{rc};
  if (!in) {
    why = std::string{"cannot read "} + rc;
    return std::nullopt;
  }
  std::map<std::string, std::string> vars;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("export ", 0) == 0) {
      line = line.substr(7);
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      continue;
    }
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    vars[line.substr(0, eq)] = value;
  }
  cloud_env env;
  env.auth_url = vars["OS_AUTH_URL"];
  env.credentials.username = vars["OS_USERNAME"];
  env.credentials.password = vars["OS_PASSWORD"];
  env.credentials.project = vars["OS_PROJECT_NAME"];
  env.credentials.user_domain = vars.count("OS_USER_DOMAIN_NAME") ? vars["OS_USER_DOMAIN_NAME"] : "Default";
  env.credentials.project_domain = vars.count("OS_PROJECT_DOMAIN_NAME") ? vars["OS_PROJECT_DOMAIN_NAME"] : "Default";
  env.region = vars["OS_REGION_NAME"];
  if (env.auth_url.empty() || env.credentials.username.empty() || env.credentials.password.empty()) {
    why = std::string{rc} + " lacks OS_AUTH_URL, OS_USERNAME or OS_PASSWORD";
    return std::nullopt;
  }
  return env;
}

std::string settings_json(const cloud_env& env, const json& overrides = json::object()) {
  json s{{"region", env.region},         {"image", "tiny-raw"},     {"flavor", "m1.tiny"},
         {"network", "private"},         {"externalNetwork", "public"}, {"verifyReachable", false},
         {"pollIntervalMs", 500},        {"activateTimeoutMs", 180000}};
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    s[it.key()] = it.value();
  }
  return s.dump();
}

std::unique_ptr<openstack_provider> provider_for(const cloud_env& env, const json& overrides = json::object()) {
  auto s = openstack_settings::parse(settings_json(env, overrides));
  REQUIRE(s.ok());
  return std::make_unique<openstack_provider>("os-real", env.auth_url, *s, env.credentials);
}

/// Skips the test (returns nullopt) when no cloud is configured or Keystone does not answer.
std::optional<cloud_env> reachable_cloud() {
  std::string why;
  auto env = cloud_from_env(why);
  if (!env) {
    WARN("skipped: " << why);
    return std::nullopt;
  }
  auto p = provider_for(*env);
  const auto report = p->test_connectivity();
  if (!report.ok) {
    WARN("skipped: the cloud at " << env->auth_url << " is not reachable: " << report.message);
    return std::nullopt;
  }
  return env;
}

std::string new_request_id() { return "ostest-" + prov::random_hex(12); }

step_call call_for(const std::string& id, step_kind step, const std::vector<resource>& held, std::uint32_t attempt = 1) {
  step_call c;
  c.request_id = id;
  c.tenant = "acme";
  c.type = prov::events::service_type::vps;
  c.step = step;
  c.attempt = attempt;
  c.idempotency_key =
      id + "/" + std::string{prov::events::step_kind_names[static_cast<std::size_t>(step)]} + "/" + std::to_string(attempt);
  c.spec.cpu_millis = 1000;
  c.spec.memory_mb = 128;
  c.spec.storage_gb = 1;
  c.resources = held;
  return c;
}

void add(std::vector<resource>& held, const std::vector<resource>& more) {
  for (const auto& r : more) {
    const bool known = std::any_of(held.begin(), held.end(), [&](const resource& x) { return x.kind == r.kind && x.id == r.id; });
    if (!known) {
      held.push_back(r);
    }
  }
}

double seconds_since(steady::time_point t) { return std::chrono::duration<double>(steady::now() - t).count(); }

void report_timing(const std::string& what, double seconds) {
  std::printf("[openstack timing] %s: %.1f s\n", what.c_str(), seconds);
  std::fflush(stdout);
}

/// Runs one step and requires success.
void run(openstack_provider& p, const std::string& id, step_kind step, std::vector<resource>& held) {
  auto out = p.run_step(call_for(id, step, held));
  INFO(prov::events::step_kind_names[static_cast<std::size_t>(step)] << ": " << out.error.code << " "
                                                                     << out.error.message);
  REQUIRE(out.ok);
  add(held, out.resources);
}

/// Releases in reverse order, then sweeps: what the engine's rollback does.
void roll_back(openstack_provider& p, const std::string& id, std::vector<resource>& held) {
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    if (it->released) {
      continue;
    }
    auto out = p.release(release_call{id, *it, id + "/release/" + it->kind + "/" + it->id + "/1"});
    INFO("release " << it->kind << " " << it->id << ": " << out.error.message);
    REQUIRE(out.ok);
    it->released = true;
  }
  auto swept = p.sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
}

/// A raw view of the cloud (same credentials), to check what exists without the provider.
class cloud_view {
 public:
  explicit cloud_view(const cloud_env& env)
      : _settings(*openstack_settings::parse(settings_json(env))), _session(env.auth_url, env.credentials, _settings, _clock) {}

  json get(os::service s, const std::string& path) {
    auto r = _session.call(s, "GET", path);
    INFO("GET " << path << ": " << r.status << " " << r.text);
    REQUIRE(r.ok());
    return r.body;
  }

  /// Everything of request `id` that still exists, one line each (empty = nothing left).
  std::vector<std::string> leftovers(const std::string& id, const std::vector<std::string>& server_ids = {}) {
    std::vector<std::string> left;
    const auto servers = get(os::service::compute, "/servers/detail?tags=" + os::request_tag(id));
    for (const auto& s : servers["servers"]) {
      left.push_back("server " + s["id"].get<std::string>() + " " + s["status"].get<std::string>());
    }
    const auto volumes = get(os::service::volume, "/volumes/detail");
    for (const auto& v : volumes["volumes"]) {
      const bool ours = os::owned_by(v, id) || v.value("name", "") == os::volume_name("prov-", id);
      if (ours) {
        left.push_back("volume " + v["id"].get<std::string>() + " " + v["status"].get<std::string>());
      }
    }
    const auto groups = get(os::service::network, "/security-groups?name=" + os::security_group_name("prov-", id));
    for (const auto& g : groups["security_groups"]) {
      left.push_back("security group " + g["id"].get<std::string>());
    }
    const auto fips = get(os::service::network, "/floatingips");
    for (const auto& f : fips["floatingips"]) {
      if (f.value("description", "").find(id) != std::string::npos) {
        left.push_back("floating IP " + f["floating_ip_address"].get<std::string>());
      }
    }
    for (const auto& sid : server_ids) {
      const auto ports = get(os::service::network, "/ports?device_id=" + sid);
      for (const auto& p : ports["ports"]) {
        left.push_back("port " + p["id"].get<std::string>() + " of server " + sid);
      }
    }
    return left;
  }

  std::string server_status(const std::string& id) {
    return get(os::service::compute, "/servers/" + id)["server"]["status"].get<std::string>();
  }

  os::session& session() { return _session; }

 private:
  prov::system_clock_source _clock;
  openstack_settings _settings;
  os::session _session;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

std::vector<std::string> ids_of(const std::vector<resource>& held, const std::string& kind) {
  std::vector<std::string> out;
  for (const auto& r : held) {
    if (r.kind == kind) {
      out.push_back(r.id);
    }
  }
  return out;
}

std::map<std::string, int> inventory_of(openstack_provider& p, const std::string& id) {
  auto inv = p.inventory();
  REQUIRE(inv.ok());
  std::map<std::string, int> counts;
  for (const auto& item : *inv) {
    if (item.request_id == id) {
      ++counts[item.kind];
    }
  }
  return counts;
}

}  // namespace

TEST_CASE("real cloud: connectivity is a token and the catalog", "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  auto p = provider_for(*env);
  const auto report = p->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  CHECK(report.message.find("compute, network, volumev3, image") != std::string::npos);
  std::printf("[openstack] connectivity: %s, latency %lld ms\n", report.message.c_str(),
              static_cast<long long>(report.latency.count()));

  auto bad = *env;
  bad.credentials.password = "wrong";
  auto refused = provider_for(bad)->test_connectivity();
  CHECK_FALSE(refused.ok);
  CHECK(refused.message.find("401") != std::string::npos);
}

TEST_CASE("real cloud: create, suspend, reactivate, metrics, inventory, deprovision leave nothing",
          "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  auto p = provider_for(*env);
  const auto id = new_request_id();
  std::vector<resource> held;

  const auto started = steady::now();
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify}) {
    const auto t = steady::now();
    run(*p, id, step, held);
    report_timing(std::string{"create: "} + std::string{prov::events::step_kind_names[static_cast<std::size_t>(step)]},
                  seconds_since(t));
  }
  report_timing("create: all four steps", seconds_since(started));

  const auto servers = ids_of(held, "server");
  REQUIRE(servers.size() == 1);
  REQUIRE(ids_of(held, "volume").size() == 1);
  REQUIRE(ids_of(held, "security_group").size() == 1);
  REQUIRE(ids_of(held, "floating_ip").size() == 1);
  CHECK(cloud.server_status(servers[0]) == "ACTIVE");

  // What the cloud says about what we made.
  const auto server = cloud.get(os::service::compute, "/servers/" + servers[0])["server"];
  CHECK(server["metadata"]["provisiond-request"] == id);
  CHECK(server["metadata"]["provisiond-key"] == id + "/allocate/1");
  const auto tags = server["tags"];
  CHECK(std::find(tags.begin(), tags.end(), json(os::request_tag(id))) != tags.end());
  const auto group = cloud.get(os::service::network, "/security-groups/" + ids_of(held, "security_group")[0]);
  int web_rules = 0;
  for (const auto& rule : group["security_group"]["security_group_rules"]) {
    if (rule.value("direction", "") == "ingress" && rule.value("protocol", "") == "tcp") {
      ++web_rules;
    }
  }
  CHECK(web_rules == 3);
  const auto group_tags = group["security_group"]["tags"];
  CHECK(std::find(group_tags.begin(), group_tags.end(), json(os::request_tag(id))) != group_tags.end());
  const auto fip = cloud.get(os::service::network, "/floatingips/" + ids_of(held, "floating_ip")[0])["floatingip"];
  CHECK(os::owned_by(fip, id));
  std::printf("[openstack] floating IP %s (status %s), port status stays as the cloud has it\n",
              fip["floating_ip_address"].get<std::string>().c_str(), fip["status"].get<std::string>().c_str());

  auto counts = inventory_of(*p, id);
  CHECK(counts == std::map<std::string, int>{{"floating_ip", 1}, {"security_group", 1}, {"server", 1}, {"volume", 1}});

  service_call svc;
  svc.request_id = id;
  svc.tenant = "acme";
  svc.resources = held;
  auto t = steady::now();
  auto suspended = p->suspend(svc);
  INFO(suspended.error.message);
  REQUIRE(suspended.ok);
  report_timing("suspend (os-stop until SHUTOFF)", seconds_since(t));
  CHECK(cloud.server_status(servers[0]) == "SHUTOFF");
  CHECK(p->suspend(svc).ok);  // idempotent
  auto inv = p->inventory();
  REQUIRE(inv.ok());
  for (const auto& item : *inv) {
    if (item.request_id == id) {
      CHECK(item.suspended);
    }
  }
  t = steady::now();
  auto reactivated = p->reactivate(svc);
  INFO(reactivated.error.message);
  REQUIRE(reactivated.ok);
  report_timing("reactivate (os-start until ACTIVE)", seconds_since(t));
  CHECK(cloud.server_status(servers[0]) == "ACTIVE");

  auto m = p->metrics(svc);
  INFO(m.error.message);
  REQUIRE(m.ok);
  std::printf("[openstack] metrics: diagnostics=%g cpu%%=%s memory_used_mb=%s rx=%s tx=%s volume_gb=%g\n",
              m.extra["diagnostics"], m.cpu_percent ? std::to_string(*m.cpu_percent).c_str() : "-",
              m.memory_used_mb ? std::to_string(*m.memory_used_mb).c_str() : "-",
              m.network_rx_bytes ? std::to_string(*m.network_rx_bytes).c_str() : "-",
              m.network_tx_bytes ? std::to_string(*m.network_tx_bytes).c_str() : "-", m.extra["volume_gb"]);
  CHECK(m.extra.count("vcpus") == 1);

  t = steady::now();
  roll_back(*p, id, held);
  report_timing("deprovision (release x4 + sweep)", seconds_since(t));
  const auto left = cloud.leftovers(id, servers);
  INFO(joined(left));
  CHECK(left.empty());
  CHECK(inventory_of(*p, id).empty());
}

TEST_CASE("real cloud: a server going to ERROR fails the step and the rollback leaves nothing", "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  // More RAM than any host has: the scheduler finds no valid host and Nova sets ERROR.
  auto p = provider_for(*env, {{"flavor", "x1.unplaceable"}});
  const auto id = new_request_id();
  std::vector<resource> held;
  const auto started = steady::now();
  auto allocated = p->run_step(call_for(id, step_kind::allocate, held));
  add(held, allocated.resources);
  if (!allocated.ok && allocated.error.code == "bad_spec") {
    WARN("skipped: the cloud has no flavor x1.unplaceable (" << allocated.error.message << ")");
    roll_back(*p, id, held);
    return;
  }
  INFO(allocated.error.message);
  REQUIRE(allocated.ok);
  auto configured = p->run_step(call_for(id, step_kind::configure, held));
  add(held, configured.resources);
  if (configured.ok) {  // the port appeared before the scheduler gave up: activate sees ERROR
    auto activated = p->run_step(call_for(id, step_kind::activate, held));
    CHECK_FALSE(activated.ok);
    configured = activated;
  }
  INFO(configured.error.message);
  CHECK_FALSE(configured.ok);
  CHECK(configured.error.code == "server_error");
  CHECK_FALSE(configured.error.retryable);
  CHECK(configured.error.message.find("No valid host") != std::string::npos);
  report_timing("failing create until ERROR reported", seconds_since(started));
  std::printf("[openstack] step failed as expected: %s\n", configured.error.message.c_str());

  const auto t = steady::now();
  roll_back(*p, id, held);
  report_timing("rollback after ERROR", seconds_since(t));
  const auto left = cloud.leftovers(id, ids_of(held, "server"));
  INFO(joined(left));
  CHECK(left.empty());
}

TEST_CASE("real cloud: a server over the project's quota fails allocate for good, the rollback leaves nothing",
          "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  auto p = provider_for(*env, {{"flavor", "x1.overquota"}});
  const auto id = new_request_id();
  std::vector<resource> held;
  auto allocated = p->run_step(call_for(id, step_kind::allocate, held));
  add(held, allocated.resources);
  if (!allocated.ok && allocated.error.code == "bad_spec") {
    WARN("skipped: the cloud has no flavor x1.overquota (" << allocated.error.message << ")");
    roll_back(*p, id, held);
    return;
  }
  INFO(allocated.error.message);
  CHECK_FALSE(allocated.ok);
  CHECK(allocated.error.code == "quota_exceeded");
  CHECK_FALSE(allocated.error.retryable);
  std::printf("[openstack] quota refusal: %s\n", allocated.error.message.c_str());
  // A partial allocation: the group and the volume exist and are reported for the rollback.
  CHECK(ids_of(held, "security_group").size() == 1);
  CHECK(ids_of(held, "volume").size() == 1);
  CHECK(ids_of(held, "server").empty());
  roll_back(*p, id, held);
  const auto left = cloud.leftovers(id);
  INFO(joined(left));
  CHECK(left.empty());
}

TEST_CASE("real cloud: crash and resume adopts what the first tries made, a sweep alone cleans up",
          "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  const auto id = new_request_id();
  std::vector<resource> held;
  const auto started = steady::now();

  // First try of allocate; its outcome is "lost" (the engine crashed before recording it).
  auto first = provider_for(*env)->run_step(call_for(id, step_kind::allocate, {}));
  INFO(first.error.message);
  REQUIRE(first.ok);
  // A new process runs the same call again with the same key and no recorded resources.
  auto again = provider_for(*env)->run_step(call_for(id, step_kind::allocate, {}));
  INFO(again.error.message);
  REQUIRE(again.ok);
  REQUIRE(again.resources.size() == first.resources.size());
  for (std::size_t i = 0; i < first.resources.size(); ++i) {
    CHECK(again.resources[i].kind == first.resources[i].kind);
    CHECK(again.resources[i].id == first.resources[i].id);  // adopted, not made twice
  }
  CHECK(again.credentials == first.credentials);  // the same password, derived again
  add(held, again.resources);
  CHECK(cloud.get(os::service::compute, "/servers/detail?tags=" + os::request_tag(id))["servers"].size() == 1);

  // Configure: first try lost too; the retry (attempt 2, new key) adopts the floating IP.
  auto p = provider_for(*env);
  auto c1 = p->run_step(call_for(id, step_kind::configure, held, 1));
  INFO(c1.error.message);
  REQUIRE(c1.ok);
  auto c2 = provider_for(*env)->run_step(call_for(id, step_kind::configure, held, 2));
  INFO(c2.error.message);
  REQUIRE(c2.ok);
  REQUIRE(c1.resources.size() == 1);
  REQUIRE(c2.resources.size() == 1);
  CHECK(c2.resources[0].id == c1.resources[0].id);
  CHECK(c2.resources[0].idempotency_key == id + "/configure/1");  // the key of the call that made it
  add(held, c2.resources);
  run(*p, id, step_kind::activate, held);
  run(*p, id, step_kind::verify, held);
  CHECK(inventory_of(*p, id) ==
        std::map<std::string, int>{{"floating_ip", 1}, {"security_group", 1}, {"server", 1}, {"volume", 1}});
  report_timing("create with two crashes", seconds_since(started));

  // Rollback interrupted after the first release: the new process only knows the request id.
  auto fip = std::find_if(held.begin(), held.end(), [](const resource& r) { return r.kind == "floating_ip"; });
  REQUIRE(p->release(release_call{id, *fip, id + "/release/fip/1"}).ok);
  const auto t = steady::now();
  auto swept = provider_for(*env)->sweep(id);
  INFO(swept.error.message);
  REQUIRE(swept.ok);
  report_timing("sweep from nothing but the request id", seconds_since(t));
  std::map<std::string, int> released;
  for (const auto& r : swept.released) {
    ++released[r.kind];
  }
  CHECK(released == std::map<std::string, int>{{"security_group", 1}, {"server", 1}, {"volume", 1}});
  const auto left = cloud.leftovers(id, ids_of(held, "server"));
  INFO(joined(left));
  CHECK(left.empty());
  // A second sweep finds nothing and succeeds.
  auto again_swept = p->sweep(id);
  CHECK(again_swept.ok);
  CHECK(again_swept.released.empty());
}

TEST_CASE("real cloud: boot volume made by Nova (block_device_mapping_v2 image -> volume)", "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  auto p = provider_for(*env, {{"bootFromVolume", "nova-bdm"}});
  const auto id = new_request_id();
  std::vector<resource> held;
  const auto started = steady::now();
  for (auto step : {step_kind::allocate, step_kind::configure, step_kind::activate, step_kind::verify}) {
    run(*p, id, step, held);
  }
  report_timing("create (nova-bdm)", seconds_since(started));
  CHECK(ids_of(held, "volume").empty());
  const auto server = cloud.get(os::service::compute, "/servers/" + ids_of(held, "server")[0])["server"];
  REQUIRE(server["os-extended-volumes:volumes_attached"].size() == 1);
  const auto volume_id = server["os-extended-volumes:volumes_attached"][0]["id"].get<std::string>();
  const auto t = steady::now();
  roll_back(*p, id, held);
  report_timing("deprovision (nova-bdm)", seconds_since(t));
  CHECK(cloud.leftovers(id, ids_of(held, "server")).empty());
  // The volume Nova made goes with the server (delete_on_termination).
  auto r = cloud.session().call(os::service::volume, "GET", "/volumes/" + volume_id);
  CHECK((r.status == 404 || (r.ok() && r.body["volume"]["status"] == "deleting")));
}

TEST_CASE("real cloud: application credential authentication", "[openstack][real]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  // Make an application credential of the test user (Keystone: POST /v3/users/{id}/application_credentials).
  prov::providers::http::client raw;
  const std::string keystone = cloud.session().keystone_url();
  json auth{{"auth",
             {{"identity",
               {{"methods", {"password"}},
                {"password",
                 {{"user",
                   {{"name", env->credentials.username},
                    {"domain", {{"name", env->credentials.user_domain}}},
                    {"password", env->credentials.password}}}}}}},
              {"scope",
               {{"project", {{"name", env->credentials.project}, {"domain", {{"name", env->credentials.project_domain}}}}}}}}}};
  auto issued = raw.send_json("POST", keystone + "/auth/tokens", &auth);
  REQUIRE(issued.ok());
  REQUIRE(issued->status == 201);
  const auto subject = issued->header("x-subject-token");
  const auto user_id = json::parse(issued->body)["token"]["user"]["id"].get<std::string>();
  const json create{{"application_credential", {{"name", "prov-test-" + prov::random_hex(6)}}}};
  auto made = raw.send_json("POST", keystone + "/users/" + user_id + "/application_credentials", &create,
                            {{"X-Auth-Token", subject}});
  REQUIRE(made.ok());
  INFO(made->body);
  REQUIRE(made->status == 201);
  const auto cred = json::parse(made->body)["application_credential"];
  auto app_env = *env;
  app_env.credentials = openstack_credentials{};
  app_env.credentials.application_credential_id = cred["id"].get<std::string>();
  app_env.credentials.application_credential_secret = cred["secret"].get<std::string>();
  const auto report = provider_for(app_env)->test_connectivity();
  INFO(report.message);
  CHECK(report.ok);
  auto removed = raw.send_json("DELETE", keystone + "/users/" + user_id + "/application_credentials/" +
                                             cred["id"].get<std::string>(),
                               nullptr, {{"X-Auth-Token", subject}});
  REQUIRE(removed.ok());
  CHECK(removed->status == 204);
}
