// provisiond itself against a real OpenStack cloud (label `openstack`, opt-in): the binary on a
// loopback port, an `openstack` cluster registered through the API with sealed credentials,
// VPS requests driven through the API — create, suspend, reactivate, metrics, inventory,
// deprovision, a failing request rolled back, and a `kill -9` in the middle of provisioning
// followed by a restart that resumes and adopts. After each, the OpenStack API (not the
// engine) must show nothing of the request left.
//
// Needs PROV_OPENSTACK_RC as openstack_real_test does; without it, or without a reachable
// Keystone, each test returns at once with a warning.

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "detail/openstack_objects.hpp"
#include "detail/openstack_session.hpp"
#include "e2e/server_fixture.hpp"
#include "prov/providers/openstack_provider.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using prov::test::eventually;
using prov::test::fresh_dir;
using prov::test::http_client;
using prov::test::make_tenant;
using prov::test::server;
namespace os = prov::providers::openstack;

namespace {

struct cloud_env {
  std::string auth_url;
  std::map<std::string, std::string> vars;
};

std::optional<cloud_env> reachable_cloud() {
  const char* rc = std::getenv("PROV_OPENSTACK_RC");
  if (rc == nullptr || *rc == '\0') {
    WARN("skipped: PROV_OPENSTACK_RC is not set (see README: OpenStack provider)");
    return std::nullopt;
  }
  std::ifstream in{rc};
  if (!in) {
    WARN("skipped: cannot read " << rc);
    return std::nullopt;
  }
  cloud_env env;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("export ", 0) == 0) {
      line = line.substr(7);
    }
    if (const auto eq = line.find('='); eq != std::string::npos) {
      env.vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  env.auth_url = env.vars["OS_AUTH_URL"];
  prov::providers::openstack_credentials creds;
  creds.username = env.vars["OS_USERNAME"];
  creds.password = env.vars["OS_PASSWORD"];
  creds.project = env.vars["OS_PROJECT_NAME"];
  auto settings = prov::providers::openstack_settings::parse(R"({"image": "tiny-raw", "network": "private"})");
  REQUIRE(settings.ok());
  prov::providers::openstack_provider probe{"probe", env.auth_url, *settings, creds};
  const auto report = probe.test_connectivity();
  if (!report.ok) {
    WARN("skipped: the cloud at " << env.auth_url << " is not reachable: " << report.message);
    return std::nullopt;
  }
  return env;
}

json cluster_body(const cloud_env& env) {
  return {{"id", "os-real"},
          {"type", "openstack"},
          {"region", "local"},
          {"isDefault", true},
          {"endpoint", env.auth_url},
          {"settings",
           {{"region", env.vars.at("OS_REGION_NAME")},
            {"image", "tiny-raw"},
            {"flavor", "m1.tiny"},
            {"network", "private"},
            {"externalNetwork", "public"},
            {"verifyReachable", false},
            {"pollIntervalMs", 500}}},
          {"credentials",
           {{"username", env.vars.at("OS_USERNAME")},
            {"password", env.vars.at("OS_PASSWORD")},
            {"userDomain", env.vars.at("OS_USER_DOMAIN_NAME")},
            {"project", env.vars.at("OS_PROJECT_NAME")},
            {"projectDomain", env.vars.at("OS_PROJECT_DOMAIN_NAME")}}}};
}

json vps(const json& extra = json::object()) {
  json spec{{"cpu", 1}, {"memoryGb", 0.125}, {"storageGb", 1}};
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    spec[it.key()] = it.value();
  }
  return {{"type", "vps"}, {"provider", "openstack"}, {"region", "local"}, {"spec", spec}};
}

/// The cloud as its API shows it (same credentials as the cluster).
class cloud_view {
 public:
  explicit cloud_view(const cloud_env& env)
      : _settings(*prov::providers::openstack_settings::parse(
            json{{"image", "tiny-raw"}, {"network", "private"}, {"region", env.vars.at("OS_REGION_NAME")}}.dump())),
        _session(env.auth_url,
                 [&] {
                   prov::providers::openstack_credentials c;
                   c.username = env.vars.at("OS_USERNAME");
                   c.password = env.vars.at("OS_PASSWORD");
                   c.project = env.vars.at("OS_PROJECT_NAME");
                   return c;
                 }(),
                 _settings, _clock) {}

  json get(os::service s, const std::string& path) {
    auto r = _session.call(s, "GET", path);
    INFO("GET " << path << ": " << r.status << " " << r.text);
    REQUIRE(r.ok());
    return r.body;
  }

  std::vector<json> servers_of(const std::string& id) {
    const json listed = get(os::service::compute, "/servers/detail?tags=" + os::request_tag(id));
    return listed["servers"].get<std::vector<json>>();
  }

  /// What of request `id` still exists, one line each.
  std::vector<std::string> leftovers(const std::string& id) {
    std::vector<std::string> left;
    for (const auto& s : servers_of(id)) {
      left.push_back("server " + s["id"].get<std::string>());
    }
    const json volumes = get(os::service::volume, "/volumes/detail");
    for (const auto& v : volumes["volumes"]) {
      if (os::owned_by(v, id)) {
        left.push_back("volume " + v["id"].get<std::string>() + " " + v["status"].get<std::string>());
      }
    }
    const json groups = get(os::service::network, "/security-groups");
    for (const auto& g : groups["security_groups"]) {
      if (os::owned_by(g, id)) {
        left.push_back("security group " + g["id"].get<std::string>());
      }
    }
    const json fips = get(os::service::network, "/floatingips");
    for (const auto& f : fips["floatingips"]) {
      if (os::owned_by(f, id)) {
        left.push_back("floating IP " + f["floating_ip_address"].get<std::string>());
      }
    }
    return left;
  }

 private:
  prov::system_clock_source _clock;
  prov::providers::openstack_settings _settings;
  os::session _session;
};

std::string state_of(http_client& c, const std::string& token, const std::string& id) {
  auto r = c.get("/v1/requests/" + id, token);
  return r.status == 200 ? r.json()["state"].get<std::string>() : "http " + std::to_string(r.status);
}

bool reaches(http_client& c, const std::string& token, const std::string& id, const std::string& state,
             std::chrono::seconds limit = std::chrono::seconds{240}) {
  return eventually([&] { return state_of(c, token, id) == state; }, limit);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

TEST_CASE("provisiond on a real cloud: create, suspend, reactivate, metrics, inventory, deprovision",
          "[openstack][real][engine]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  server s{fresh_dir("openstack-engine")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  auto registered = c.post("/v1/clusters", cluster_body(*env), s.admin());
  INFO(registered.body);
  REQUIRE(registered.status == 201);
  const std::string password_json = "\"password\":\"" + env->vars.at("OS_PASSWORD") + "\"";
  CHECK(registered.body.find(password_json) == std::string::npos);  // sealed, never shown
  auto tested = c.post("/v1/clusters/os-real/test", json::object(), s.admin());
  REQUIRE(tested.status == 200);
  CHECK(tested.json()["ok"] == true);

  auto t = std::chrono::steady_clock::now();
  auto made = c.post("/v1/requests", vps(), token);
  REQUIRE(made.status == 202);
  const auto id = made.json()["id"].get<std::string>();
  const bool completed = reaches(c, token, id, "completed");
  INFO(c.get("/v1/requests/" + id, token).body);
  REQUIRE(completed);
  std::printf("[openstack timing] engine: request to completed: %.1f s\n", seconds_since(t));
  auto view = c.get("/v1/requests/" + id, token).json();
  CHECK(view["endpoints"]["ssh"].get<std::string>().rfind("ssh://cloud-user@203.0.113.", 0) == 0);
  CHECK(view["resources"].size() == 4);
  auto creds = c.get("/v1/requests/" + id + "/credentials", token);
  if (creds.status == 200) {
    CHECK(creds.json()["credentials"]["password"] == os::login_password(env->vars.at("OS_PASSWORD"), id));
  }
  REQUIRE(cloud.servers_of(id).size() == 1);
  CHECK(cloud.servers_of(id)[0]["status"] == "ACTIVE");

  auto inventory = c.get("/v1/clusters/os-real/inventory", s.admin());
  REQUIRE(inventory.status == 200);
  int ours = 0;
  const json listing = inventory.json();
  for (const auto& item : listing["items"]) {
    ours += item["requestId"] == id ? 1 : 0;
  }
  CHECK(ours == 4);
  auto metrics = c.get("/v1/requests/" + id + "/metrics", token);
  INFO(metrics.body);
  CHECK(metrics.status == 200);

  REQUIRE(c.post("/v1/requests/" + id + "/suspend", json{{"reason", "non-payment"}}, s.admin()).status == 202);
  REQUIRE(reaches(c, token, id, "suspended"));
  CHECK(cloud.servers_of(id)[0]["status"] == "SHUTOFF");
  REQUIRE(c.post("/v1/requests/" + id + "/reactivate", json::object(), token).status == 202);
  REQUIRE(reaches(c, token, id, "completed"));
  CHECK(cloud.servers_of(id)[0]["status"] == "ACTIVE");

  t = std::chrono::steady_clock::now();
  REQUIRE(c.post("/v1/requests/" + id + "/deprovision", json::object(), token).status == 202);
  REQUIRE(reaches(c, token, id, "rolled_back"));
  std::printf("[openstack timing] engine: deprovision to rolled_back: %.1f s\n", seconds_since(t));
  const auto left = cloud.leftovers(id);
  INFO(joined(left));
  CHECK(left.empty());
  CHECK(s.log().find(password_json) == std::string::npos);
}

TEST_CASE("provisiond on a real cloud: a server in ERROR fails the request and the rollback leaves nothing",
          "[openstack][real][engine]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  server s{fresh_dir("openstack-engine-error")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/clusters", cluster_body(*env), s.admin()).status == 201);
  const auto id = c.post("/v1/requests", vps({{"flavor", "x1.unplaceable"}}), token).json()["id"].get<std::string>();
  const bool rolled_back = reaches(c, token, id, "rolled_back");
  auto view = c.get("/v1/requests/" + id, token).json();
  INFO(view.dump());
  REQUIRE(rolled_back);
  CHECK(view["reasonMessage"].get<std::string>().find("No valid host") != std::string::npos);
  const auto left = cloud.leftovers(id);
  INFO(joined(left));
  CHECK(left.empty());
}

TEST_CASE("provisiond on a real cloud: kill -9 while provisioning, restart resumes and adopts",
          "[openstack][real][engine][crash]") {
  auto env = reachable_cloud();
  if (!env) {
    return;
  }
  cloud_view cloud{*env};
  server s{fresh_dir("openstack-engine-crash")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/clusters", cluster_body(*env), s.admin()).status == 201);
  const auto id = c.post("/v1/requests", vps(), token).json()["id"].get<std::string>();
  const auto count = [&](const std::string& prefix) {
    const auto left = cloud.leftovers(id);
    return std::count_if(left.begin(), left.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  };
  // Kill 1: inside allocate, once the boot volume exists (allocate waits for it to become
  // available, then makes the server).
  REQUIRE(eventually([&] { return count("volume ") > 0; }, std::chrono::seconds{120}));
  const auto at_first_kill = state_of(c, token, id);
  s.kill9();
  std::printf("[openstack] kill 1: provisiond killed with the request in state %s (volume made, server: %d)\n",
              at_first_kill.c_str(), static_cast<int>(cloud.servers_of(id).size()));
  s.start();
  c = s.client();
  // Kill 2: once the server exists (allocate done or re-run and adopted; configure waits for
  // its port and makes the floating IP).
  REQUIRE(eventually([&] { return !cloud.servers_of(id).empty(); }, std::chrono::seconds{120}));
  const auto at_second_kill = state_of(c, token, id);
  s.kill9();
  std::printf("[openstack] kill 2: provisiond killed with the request in state %s\n", at_second_kill.c_str());
  s.start();
  c = s.client();
  const bool completed = reaches(c, token, id, "completed");
  INFO(c.get("/v1/requests/" + id, token).body);
  REQUIRE(completed);
  CHECK(count("volume ") == 1);
  CHECK(count("security group ") == 1);
  CHECK(count("floating IP ") == 1);
  CHECK(cloud.servers_of(id).size() == 1);  // adopted, not made twice
  auto view = c.get("/v1/requests/" + id, token).json();
  std::map<std::string, int> kinds;
  for (const auto& r : view["resources"]) {
    ++kinds[r["kind"].get<std::string>()];
  }
  CHECK(kinds == std::map<std::string, int>{{"floating_ip", 1}, {"security_group", 1}, {"server", 1}, {"volume", 1}});

  // Kill 3: in the middle of the deprovision; the restart finishes the rollback.
  REQUIRE(c.post("/v1/requests/" + id + "/deprovision", json::object(), token).status == 202);
  std::string at_third_kill;
  REQUIRE(eventually(
      [&] {
        at_third_kill = state_of(c, token, id);
        return at_third_kill == "rolling_back" || at_third_kill == "rolled_back";
      },
      std::chrono::seconds{30}));
  s.kill9();
  std::printf("[openstack] kill 3: provisiond killed with the request in state %s\n", at_third_kill.c_str());
  s.start();
  c = s.client();
  REQUIRE(reaches(c, token, id, "rolled_back"));
  const auto left = cloud.leftovers(id);
  INFO(joined(left));
  CHECK(left.empty());
}
