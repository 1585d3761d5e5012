// End to end, as a new user would: start provisiond, create a tenant, submit requests over
// HTTP, watch them finish, and check what the simulated cloud holds.

#include <algorithm>
#include <set>
#include <sys/stat.h>

#include "prov/providers/http/client.hpp"
#include "providers_http/test_pki.hpp"
#include "server_fixture.hpp"
#include "support/tls_probe.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

json vps(const std::string& region = "local") {
  return json{{"type", "vps"},
              {"provider", "simulation"},
              {"region", region},
              {"spec", {{"cpu", 2}, {"memoryGb", 4}, {"storageGb", 40}, {"image", "debian-12"}}}};
}

std::string state_of(http_client& c, const std::string& token, const std::string& id) {
  auto r = c.get("/v1/requests/" + id, token);
  return r.status == 200 ? r.json()["state"].get<std::string>() : "http " + std::to_string(r.status);
}

}  // namespace

TEST_CASE("a new user's requests complete through the four steps", "[e2e]") {
  server s{fresh_dir("happy")};
  s.start();
  auto c = s.client();
  CHECK(c.get("/healthz").status == 200);
  CHECK(c.get("/readyz").status == 200);
  const auto token = make_tenant(c, s.admin(), "acme");

  std::vector<std::string> ids;
  for (const auto* type : {"vps", "namespace", "managed"}) {
    for (int i = 0; i < 5; ++i) {
      auto body = vps();
      body["type"] = type;
      auto r = c.post("/v1/requests", body, token);
      REQUIRE(r.status == 202);
      CHECK(r.json()["state"] == "queued");
      CHECK(r.header("location") == "/v1/requests/" + r.json()["id"].get<std::string>());
      ids.push_back(r.json()["id"].get<std::string>());
      // Read your write: the request is visible at once.
      CHECK(c.get("/v1/requests/" + ids.back(), token).status == 200);
    }
  }
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      if (state_of(c, token, id) != "completed") {
        return false;
      }
    }
    return true;
  }));
  auto view = c.get("/v1/requests/" + ids.front(), token).json();
  CHECK(view["cluster"] == "simulation-local");
  CHECK(view["spec"]["image"] == "debian-12");
  CHECK(view["spec"]["cpu"] == 2);
  REQUIRE(view["steps"].size() == 4);
  for (const auto& step : view["steps"]) {
    CHECK(step["status"] == "succeeded");
    CHECK(step["attempts"] == 1);
    CHECK(step["startedAt"].is_string());
  }
  CHECK(view["endpoints"].contains("ssh"));

  // The event log: CloudEvents, dense sequences, and the state as it was at any point.
  auto events = c.get("/v1/requests/" + ids.front() + "/events", token).json()["events"];
  REQUIRE(events.size() == view["version"].get<std::size_t>());
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i]["specversion"] == "1.0");
    CHECK(events[i]["sequence"] == i + 1);
  }
  CHECK(events.front()["type"] == "request.submitted");
  CHECK(events.back()["type"] == "request.completed");
  auto then = c.get("/v1/requests/" + ids.front() + "/events?asOf=3", token).json();
  CHECK(then["state"]["state"] == "allocating");
  CHECK(then["events"].size() == 3);

  // The cloud holds exactly the resources of the completed requests.
  auto inventory = c.get("/v1/clusters/simulation-local/inventory", s.admin()).json()["items"];
  std::size_t held = 0;
  for (const auto& id : ids) {
    held += c.get("/v1/requests/" + id, token).json()["resources"].size();
  }
  CHECK(inventory.size() == held);

  // Logs: one structured line per state change.
  CHECK(s.log().find("\"msg\":\"state_changed\"") != std::string::npos);
  CHECK(s.stop() == 0);
}

TEST_CASE("the work-stealing scheduler runs requests to completion as well", "[e2e][cli]") {
  // Sharing is the default (the test above); stealing is the choice for many cores.
  server s{fresh_dir("stealing")};
  s.start({"--scheduler-policy", "stealing"});
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = c.post("/v1/requests", vps(), token);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  CHECK(eventually([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return state_of(c, token, id) == "completed"; });
  }));
  CHECK(s.stop() == 0);
}

TEST_CASE("a failing cluster: failed requests roll back and leave nothing at the provider", "[e2e][rollback]") {
  server s{fresh_dir("failing")};
  // Every failure is final: the test is about rollback. At a 20 % failure rate per call, half
  // of 20 calls in a row fail now and then (about one run in 40), and the breaker would open
  // and hold the releases back for longer than the test waits: only a whole window of
  // failures opens it here (the breaker has tests of its own).
  s.start({"--retry-max", "0", "--breaker-failures", "1000", "--breaker-failure-ratio", "1"});
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  auto reg = c.post("/v1/clusters",
                    json{{"id", "flaky"},
                         {"type", "simulation"},
                         {"region", "eu-west-1"},
                         {"simulation",
                          {{"failureRate", {{"allocate", 0.2}, {"configure", 0.2}, {"activate", 0.2}, {"verify", 0.2}}},
                           {"delayMs", {{"min", 0}, {"max", 20}}},
                           {"seed", 42}}}},
                    s.admin());
  REQUIRE(reg.status == 201);
  CHECK(reg.json()["simulation"]["failureRate"]["verify"] == 0.2);

  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    auto r = c.post("/v1/requests", vps("eu-west-1"), token);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      const auto st = state_of(c, token, id);
      if (st != "completed" && st != "rolled_back") {
        return false;
      }
    }
    return true;
  }));
  std::set<std::string> expected;  // resources of completed requests
  std::size_t rolled_back = 0;
  for (const auto& id : ids) {
    auto view = c.get("/v1/requests/" + id, token).json();
    CHECK(view["cluster"] == "flaky");
    if (view["state"] == "rolled_back") {
      ++rolled_back;
      CHECK(view["reason"] == "provider_error");
      for (const auto& r : view["resources"]) {
        CHECK(r["status"] == "released");
      }
      auto types = c.get("/v1/requests/" + id + "/events", token).json()["events"];
      std::vector<std::string> names;
      for (const auto& e : types) {
        names.push_back(e["type"].get<std::string>());
      }
      CHECK(std::find(names.begin(), names.end(), "request.failed") != names.end());
      CHECK(names.back() == "request.rolled_back");
    } else {
      for (const auto& r : view["resources"]) {
        expected.insert(r["id"].get<std::string>());
      }
    }
  }
  CHECK(rolled_back > 0);
  CHECK(rolled_back < ids.size());
  std::set<std::string> at_provider;
  const auto inventory = c.get("/v1/clusters/flaky/inventory", s.admin()).json();
  for (const auto& item : inventory["items"]) {
    at_provider.insert(item["id"].get<std::string>());
  }
  CHECK(at_provider == expected);
  auto failed_list = c.get("/v1/requests?state=rolled_back&limit=1000", token).json()["items"];
  CHECK(failed_list.size() == rolled_back);
}

TEST_CASE("bad input gets a 4xx JSON error and the server stays up", "[e2e][validation]") {
  server s{fresh_dir("bad-input")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");

  auto expect_error = [&](http_client::reply r, unsigned status, const std::string& code) {
    INFO(r.body);
    CHECK(r.status == status);
    auto body = json::parse(r.body, nullptr, false);
    REQUIRE(body.is_object());
    CHECK(body["error"]["code"] == code);
    CHECK(body["error"]["message"].is_string());
  };
  const std::vector<std::pair<std::string, std::string>> json_header{{"Content-Type", "application/json"},
                                                                     {"Authorization", "Bearer " + token}};
  expect_error(c.request("POST", "/v1/requests", "{not json", json_header), 400, "invalid_argument");
  expect_error(c.request("POST", "/v1/requests", "[1,2]", json_header), 400, "invalid_argument");
  expect_error(c.request("POST", "/v1/requests", "", json_header), 400, "invalid_argument");
  auto bad = vps();
  bad["provider"] = "aws";
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["spec"]["cpu"] = -2;
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["spec"]["memoryGb"] = "lots";
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["spec"]["storageGb"] = -1;
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["type"] = 7;
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["colour"] = "blue";
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  bad = vps();
  bad["type"] = "namespace";
  bad["provider"] = "openstack";
  expect_error(c.post("/v1/requests", bad, token), 400, "invalid_argument");
  std::string huge = R"({"type":"vps","provider":"simulation","spec":{"cpu":1,"memoryGb":1,"pad":")" +
                     std::string(1100 * 1024, 'x') + "\"}}";
  expect_error(c.request("POST", "/v1/requests", huge, json_header), 413, "payload_too_large");
  expect_error(c.get("/v1/nowhere", token), 404, "not_found");
  expect_error(c.get("/nowhere"), 404, "not_found");
  expect_error(c.get("/v1/requests/does-not-exist", token), 404, "not_found");
  expect_error(c.get("/v1/requests?state=sideways", token), 400, "invalid_argument");
  expect_error(c.get("/v1/requests?limit=0", token), 400, "invalid_argument");
  expect_error(c.get("/v1/requests?cursor=zz", token), 400, "invalid_argument");
  expect_error(c.request("DELETE", "/v1/requests", "", json_header), 405, "invalid_argument");
  // Authentication and authorization.
  expect_error(c.get("/v1/requests"), 401, "unauthorized");
  expect_error(c.get("/v1/requests", "not-a-token"), 401, "unauthorized");
  expect_error(c.get("/v1/clusters", token), 403, "forbidden");
  expect_error(c.post("/v1/tenants", json{{"id", "evil"}}, token), 403, "forbidden");
  expect_error(c.post("/v1/tenants", json{{"id", "acme"}}, s.admin()), 409, "conflict");
  expect_error(c.post("/v1/tenants", json{{"id", "has space"}}, s.admin()), 400, "invalid_argument");
  expect_error(c.post("/v1/clusters", json{{"id", "x"}, {"type", "simulation"}}, s.admin()), 400, "invalid_argument");
  expect_error(c.post("/v1/clusters",
                      json{{"id", "x"}, {"type", "simulation"}, {"region", "r"},
                           {"simulation", {{"failureRate", {{"allocate", 1.5}}}}}},
                      s.admin()),
               400, "invalid_argument");
  expect_error(c.patch("/v1/clusters/nope", json{{"enabled", false}}, s.admin()), 404, "not_found");
  // A malformed request line: 400 and the server carries on.
  const auto raw = c.send_raw("GARBAGE\r\n\r\n");
  CHECK(raw.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(c.get("/healthz").status == 200);
  auto ok = c.post("/v1/requests", vps(), token);
  CHECK(ok.status == 202);
}

TEST_CASE("tenants see only their own requests", "[e2e][security]") {
  server s{fresh_dir("isolation")};
  s.start();
  auto c = s.client();
  const auto a = make_tenant(c, s.admin(), "tenant-a");
  const auto b = make_tenant(c, s.admin(), "tenant-b");
  auto ra = c.post("/v1/requests", vps(), a).json()["id"].get<std::string>();
  auto rb = c.post("/v1/requests", vps(), b).json()["id"].get<std::string>();
  CHECK(c.get("/v1/requests/" + ra, a).status == 200);
  CHECK(c.get("/v1/requests/" + ra, b).status == 404);
  CHECK(c.get("/v1/requests/" + ra + "/events", b).status == 404);
  auto list_b = c.get("/v1/requests", b).json()["items"];
  REQUIRE(list_b.size() == 1);
  CHECK(list_b[0]["id"] == rb);
  CHECK(c.get("/v1/requests?tenant=tenant-a", b).status == 403);
  // A tenant cannot submit for another tenant.
  auto body = vps();
  body["tenant"] = "tenant-a";
  CHECK(c.post("/v1/requests", body, b).status == 403);
  // The admin sees everything and must name the tenant when submitting.
  CHECK(c.get("/v1/requests", s.admin()).json()["items"].size() == 2);
  CHECK(c.post("/v1/requests", vps(), s.admin()).status == 400);
  body["tenant"] = "nobody";
  CHECK(c.post("/v1/requests", body, s.admin()).status == 404);
  // The admin token file is private.
  struct stat st{};
  REQUIRE(::stat((s.dir() / "data" / "admin.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("every route refuses another tenant's resources, and every admin route a tenant's token",
          "[e2e][security]") {
  server s{fresh_dir("isolation-walk")};
  s.start({"--webhook-allow-loopback"});
  auto c = s.client();
  const auto a = make_tenant(c, s.admin(), "tenant-a");
  const auto b = make_tenant(c, s.admin(), "tenant-b");
  REQUIRE(c.post("/v1/approval-rules", json{{"name", "big"}, {"priority", 10}, {"conditions", {{"minCpu", 8}}}},
                 s.admin()).status == 201);
  auto big = vps();
  big["spec"]["cpu"] = 8;
  const auto pending = c.post("/v1/requests", big, a).json()["id"].get<std::string>();
  const auto done = c.post("/v1/requests", vps(), a).json()["id"].get<std::string>();
  REQUIRE(eventually([&] { return state_of(c, a, pending) == "pending_approval" && state_of(c, a, done) == "completed"; }));
  auto hook = c.post("/v1/webhooks", json{{"url", "http://127.0.0.1:9/hook"}, {"events", {"*"}}}, a);
  REQUIRE(hook.status == 201);
  const auto webhook = hook.json()["id"].get<std::string>();
  const auto events_of = [&](const std::string& id) { return c.get("/v1/requests/" + id + "/events", a).body; };
  const auto history = std::map<std::string, std::string>{{pending, events_of(pending)}, {done, events_of(done)}};

  // Tenant b, on a's request ids: not found, as if they did not exist (their existence is not
  // revealed), whatever their state.
  for (const auto& id : {pending, done}) {
    INFO(id);
    for (const auto* path : {"", "/events", "/credentials", "/metrics"}) {
      INFO(path);
      CHECK(c.get("/v1/requests/" + id + path, b).status == 404);
    }
    for (const auto* action : {"cancel", "suspend", "reactivate", "deprovision"}) {
      INFO(action);
      CHECK(c.post("/v1/requests/" + id + "/" + action, json{{"reason", "not mine"}}, b).status == 404);
    }
    for (const auto* action : {"approve", "reject"}) {  // an approver's (admin) action, any request
      INFO(action);
      CHECK(c.post("/v1/requests/" + id + "/" + action, json{{"reason", "not mine"}}, b).status == 403);
    }
    auto depending = vps();
    depending["dependsOn"] = {id};
    CHECK(c.post("/v1/requests", depending, b).status == 400);  // "does not exist", as for any unknown id
  }
  // ... on a's webhook and tenant record.
  CHECK(c.get("/v1/webhooks/" + webhook, b).status == 404);
  CHECK(c.get("/v1/webhooks/" + webhook + "/deliveries", b).status == 404);
  CHECK(c.post("/v1/webhooks/" + webhook + "/reactivate", json::object(), b).status == 404);
  CHECK(c.del("/v1/webhooks/" + webhook, b).status == 404);
  for (const auto* path : {"", "/quota", "/usage"}) {
    INFO(path);
    CHECK(c.get(std::string{"/v1/tenants/tenant-a"} + path, b).status == 403);
  }
  CHECK(c.post("/v1/tenants/tenant-a/token", json::object(), b).status == 403);
  CHECK(c.get("/v1/webhooks?tenant=tenant-a", b).status == 403);
  CHECK(c.get("/v1/requests?tenant=tenant-a", b).status == 403);
  auto batch = json{{"requests", json::array({vps()})}};
  batch["requests"][0]["tenant"] = "tenant-a";
  const auto batched = c.post("/v1/requests:batch", batch, b);
  REQUIRE(batched.status == 200);
  CHECK(batched.json()["results"][0]["status"] == 403);

  // Admin routes refuse a tenant's token, whatever the method.
  const auto forbidden = [&](const http_client::reply& r) { return r.status == 403; };
  CHECK(forbidden(c.get("/v1/tenants", b)));
  CHECK(forbidden(c.post("/v1/tenants", json{{"id", "tenant-c"}}, b)));
  CHECK(forbidden(c.put("/v1/tenants/tenant-b/quota", json{{"cpu", 1000}}, b)));
  CHECK(forbidden(c.get("/v1/approval-rules", b)));
  CHECK(forbidden(c.post("/v1/approval-rules", json{{"name", "x"}, {"priority", 1}, {"conditions", json::object()}}, b)));
  CHECK(forbidden(c.del("/v1/approval-rules/whatever", b)));
  CHECK(forbidden(c.get("/v1/clusters", b)));
  CHECK(forbidden(c.post("/v1/clusters", json{{"id", "x"}, {"type", "simulation"}, {"region", "local"}}, b)));
  CHECK(forbidden(c.get("/v1/clusters/simulation-local", b)));
  CHECK(forbidden(c.patch("/v1/clusters/simulation-local", json{{"state", "disabled"}}, b)));
  CHECK(forbidden(c.get("/v1/clusters/simulation-local/inventory", b)));
  CHECK(forbidden(c.post("/v1/clusters/simulation-local/reconcile", json::object(), b)));
  CHECK(forbidden(c.post("/v1/clusters/simulation-local/test", json::object(), b)));
  CHECK(forbidden(c.post("/v1/backups", json::object(), b)));
  CHECK(forbidden(c.post("/v1/requests/" + pending + "/manual-input", json{{"input", json::object()}}, a)));

  // Nothing b tried changed a's requests, and b's own view holds nothing of a's.
  for (const auto& [id, before] : history) {
    INFO(id);
    CHECK(events_of(id) == before);
  }
  CHECK(state_of(c, a, pending) == "pending_approval");
  CHECK(c.get("/v1/requests", b).json()["items"].empty());
  CHECK(c.get("/v1/webhooks", b).json()["items"].empty());
  CHECK(c.get("/v1/tenants/tenant-b/usage", b).status == 200);
  CHECK(c.get("/v1/tenants", s.admin()).json()["items"].size() == 2);  // no tenant-c
  CHECK(c.get("/v1/clusters/simulation-local", s.admin()).json()["state"] != "disabled");
}

TEST_CASE("HTTPS: with --tls-cert and --tls-key the API is served over TLS only, and a bad key stops the start",
          "[e2e][security][tls]") {
  const auto ca = prov::test::make_test_ca();
  const auto id = prov::test::make_server_identity(ca);
  const prov::test::temp_file cert{id.cert_pem};
  const prov::test::temp_file key{id.key_pem};
  server s{fresh_dir("tls")};
  s.start({"--tls-cert", cert.path(), "--tls-key", key.path()});
  REQUIRE(s.tls());
  prov::providers::http::client_options options;
  options.ca_pem = ca.cert_pem;
  prov::providers::http::client https{options};
  const auto base = "https://127.0.0.1:" + std::to_string(s.port());
  const auto call = [&](const std::string& method, const std::string& path, const json* body, const std::string& token) {
    auto r = https.send_json(method, base + path, body, {{"Authorization", "Bearer " + token}});
    REQUIRE(r.ok());
    return std::move(*r);
  };
  const json tenant{{"id", "acme"}};
  const auto token = call("POST", "/v1/tenants", &tenant, s.admin()).json()->at("token").get<std::string>();
  const auto body = vps();
  auto submitted = call("POST", "/v1/requests", &body, token);
  REQUIRE(submitted.status == 202);
  const auto request = submitted.json()->at("id").get<std::string>();
  CHECK(eventually([&] { return call("GET", "/v1/requests/" + request, nullptr, token).json()->at("state") == "completed"; }));
  CHECK(call("GET", "/v1/requests/" + request, nullptr, "wrong").status == 401);
  CHECK(call("GET", "/healthz", nullptr, "").status == 200);
  CHECK(s.client().get("/healthz").status == 0);  // no plain HTTP on the port
  CHECK(prov::test::tls_handshake(s.port(), ca.cert_pem, TLS1_2_VERSION) == "TLSv1.2");

  // A renewed certificate (here from another CA) in the same files, then SIGHUP: new
  // connections get it, and the process goes on.
  const auto renewed_ca = prov::test::make_test_ca("renewed CA");
  const auto renewed = prov::test::make_server_identity(renewed_ca);
  std::ofstream{cert.path(), std::ios::trunc} << renewed.cert_pem;
  std::ofstream{key.path(), std::ios::trunc} << renewed.key_pem;
  s.signal(SIGHUP);
  prov::providers::http::client_options renewed_options;
  renewed_options.ca_pem = renewed_ca.cert_pem;
  CHECK(eventually([&] {
    prov::providers::http::client fresh{renewed_options};
    auto r = fresh.send({"GET", base + "/healthz", {}, "", std::nullopt});
    return r.ok() && r->status == 200;
  }));
  CHECK(s.log().find("tls_reloaded") != std::string::npos);
  CHECK(s.stop() == 0);

  // --tls-min-version 1.3: a client that offers TLS 1.2 at most is refused.
  server strict{fresh_dir("tls-1.3")};
  strict.start({"--tls-cert", cert.path(), "--tls-key", key.path(), "--tls-min-version", "1.3"});
  REQUIRE(strict.tls());
  CHECK(prov::test::tls_handshake(strict.port(), renewed_ca.cert_pem) == "TLSv1.3");
  CHECK_FALSE(prov::test::tls_handshake(strict.port(), renewed_ca.cert_pem, TLS1_2_VERSION).has_value());
  CHECK(strict.stop() == 0);

  // One of the two flags alone, or a TLS version we do not offer, is a usage error; a key of
  // another certificate stops the start before the data directory is made.
  const auto other = prov::test::make_server_identity(ca);
  const prov::test::temp_file other_key{other.key_pem};
  const auto dir = fresh_dir("tls-refused");
  const std::vector<std::pair<std::vector<std::string>, int>> refusals{
      {{"--tls-cert", cert.path()}, 2},
      {{"--tls-key", key.path()}, 2},
      {{"--tls-cert", cert.path(), "--tls-key", key.path(), "--tls-min-version", "1.1"}, 2},
      {{"--tls-cert", cert.path(), "--tls-key", other_key.path()}, 1}};
  for (const auto& [flags, expected] : refusals) {
    std::vector<std::string> argv{PROVISIOND_BINARY, "--data-dir", (dir / "data").string(), "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    child_process refused{argv, (dir / "provisiond.log").string()};
    const auto code = refused.wait(std::chrono::seconds{60});
    REQUIRE(code.has_value());
    CHECK(*code == expected);
    CHECK_FALSE(std::filesystem::exists(dir / "data"));
  }
  std::ifstream in{dir / "provisiond.log"};
  const std::string log{std::istreambuf_iterator<char>{in}, {}};
  CHECK(log.find("tls_failed") != std::string::npos);
  CHECK(log.find("does not belong") != std::string::npos);
}

TEST_CASE("a rotated tenant token stops working at once, also after a restart", "[e2e][security]") {
  server s{fresh_dir("rotation")};
  s.start();
  auto c = s.client();
  const auto first = make_tenant(c, s.admin(), "acme");
  const auto other = make_tenant(c, s.admin(), "globex");
  const auto id = c.post("/v1/requests", vps(), first).json()["id"].get<std::string>();
  CHECK(c.get("/v1/requests/" + id, first).status == 200);  // the gateway knows this token now
  CHECK(c.post("/v1/tenants/acme/token", json::object(), other).status == 403);
  CHECK(c.get("/v1/tenants/acme/token", s.admin()).status == 405);
  CHECK(c.post("/v1/tenants/nobody/token", json::object(), s.admin()).status == 404);

  // The tenant rotates its own token: the old one is refused from the answer on.
  auto rotated = c.post("/v1/tenants/acme/token", json::object(), first);
  REQUIRE(rotated.status == 200);
  CHECK(rotated.json()["id"] == "acme");
  CHECK(rotated.header("cache-control") == "no-store");
  const auto second = rotated.json()["token"].get<std::string>();
  CHECK(second != first);
  CHECK(c.get("/v1/requests/" + id, first).status == 401);
  CHECK(c.get("/v1/requests/" + id, second).status == 200);
  CHECK(c.get("/v1/requests/" + id, other).status == 404);
  CHECK(c.get("/v1/requests", other).status == 200);  // other tenants' tokens are untouched

  // The admin rotates it again (a leaked token): the tenant's current one goes too.
  const auto third = c.post("/v1/tenants/acme/token", json::object(), s.admin()).json()["token"].get<std::string>();
  CHECK(c.get("/v1/requests/" + id, second).status == 401);
  CHECK(c.get("/v1/requests", third).json()["items"].size() == 1);

  // The rotations are events: a restart keeps them.
  REQUIRE(s.stop() == 0);
  s.start();
  auto after = s.client();
  CHECK(after.get("/v1/requests/" + id, first).status == 401);
  CHECK(after.get("/v1/requests/" + id, second).status == 401);
  CHECK(after.get("/v1/requests/" + id, third).status == 200);
}

TEST_CASE("the same idempotency key returns the same request", "[e2e][idempotency]") {
  server s{fresh_dir("idempotency")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  auto body = vps();
  body["idempotencyKey"] = "order-1001";
  auto first = c.post("/v1/requests", body, token);
  auto second = c.post("/v1/requests", body, token);
  REQUIRE(first.status == 202);
  REQUIRE(second.status == 202);
  CHECK(first.json()["id"] == second.json()["id"]);
  CHECK(second.header("idempotent-replayed") == "true");
  // Another tenant may use the same key for its own request.
  const auto other = make_tenant(c, s.admin(), "other");
  CHECK(c.post("/v1/requests", body, other).json()["id"] != first.json()["id"]);
  // The same key with a different body is a conflict, not a silent replay.
  body["spec"]["cpu"] = 8;
  auto clash = c.post("/v1/requests", body, token);
  CHECK(clash.status == 409);
  CHECK(c.get("/v1/requests", token).json()["items"].size() == 1);
}

TEST_CASE("a batch submits each request as POST /v1/requests would, each answered in its slot", "[e2e][batch]") {
  server s{fresh_dir("batch")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  make_tenant(c, s.admin(), "other");

  auto keyed = vps();
  keyed["idempotencyKey"] = "order-7";
  auto needs_keyed = vps();
  needs_keyed["dependsOn"] = json::array({"key:order-7"});
  auto no_spec = vps();
  no_spec.erase("spec");
  auto foreign = vps();
  foreign["tenant"] = "other";
  const json items = json::array({vps(), no_spec, keyed, foreign, keyed, needs_keyed, "not an object"});
  auto r = c.post("/v1/requests:batch", json{{"requests", items}}, token);
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto body = r.json();
  CHECK(body["accepted"] == 4);
  CHECK(body["rejected"] == 3);
  const auto& results = body["results"];
  REQUIRE(results.size() == items.size());
  CHECK(results[0]["status"] == 202);
  CHECK(results[0]["state"] == "queued");
  CHECK(results[0]["replayed"] == false);
  CHECK(results[1]["status"] == 400);
  CHECK(results[1]["error"]["code"] == "invalid_argument");
  CHECK(results[1]["error"]["message"] == "requests[1].spec is required");
  CHECK(results[2]["status"] == 202);
  CHECK(results[3]["status"] == 403);
  CHECK(results[3]["error"]["code"] == "forbidden");
  // The same key later in the batch is the same request, as a second POST would be.
  CHECK(results[4]["status"] == 202);
  CHECK(results[4]["id"] == results[2]["id"]);
  CHECK(results[4]["replayed"] == true);
  // An item may depend on an earlier one of the same batch.
  CHECK(results[5]["status"] == 202);
  CHECK(results[6]["status"] == 400);
  CHECK(results[6]["error"]["message"] == "requests[6] must be a JSON object");

  // Accepted items are visible at once (read your writes) and run to completion.
  const std::vector<std::string> ids{results[0]["id"], results[2]["id"], results[5]["id"]};
  for (const auto& id : ids) {
    CHECK(c.get("/v1/requests/" + id, token).status == 200);
  }
  CHECK(eventually([&] {
    return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) { return state_of(c, token, id) == "completed"; });
  }));
  for (const auto& id : ids) {
    CAPTURE(c.get("/v1/requests/" + id, token).body);
    CHECK(state_of(c, token, id) == "completed");
  }
  CHECK(c.get("/v1/requests", token).json()["items"].size() == ids.size());
  CHECK(c.get("/v1/requests", s.admin()).json()["items"].size() == ids.size());  // nothing for "other"

  // Quota is taken item by item: what fits is accepted, the rest is refused with 422.
  REQUIRE(c.post("/v1/tenants", json{{"id", "small"}, {"quota", {{"instances", 2}}}}, s.admin()).status == 201);
  auto admin_items = json::array();
  for (int i = 0; i < 3; ++i) {
    auto item = vps();
    item["tenant"] = "small";
    admin_items.push_back(item);
  }
  admin_items[0]["idempotencyKey"] = "small-1";
  admin_items[2]["dependsOn"] = json::array({"key:small-1"});  // refused: it must leave no trace
  auto unknown = vps();
  unknown["tenant"] = "nobody";
  admin_items.push_back(unknown);
  auto untenanted = vps();
  admin_items.push_back(untenanted);
  auto quota = c.post("/v1/requests:batch", json{{"requests", admin_items}}, s.admin());
  INFO(quota.body);
  REQUIRE(quota.status == 200);
  const auto q = quota.json();
  CHECK(q["accepted"] == 2);
  CHECK(q["results"][0]["status"] == 202);
  CHECK(q["results"][1]["status"] == 202);
  CHECK(q["results"][2]["status"] == 422);
  CHECK(q["results"][2]["error"]["code"] == "quota_exceeded");
  CHECK(q["results"][3]["status"] == 404);
  CHECK(q["results"][4]["status"] == 400);  // the admin must name the tenant
  const std::vector<std::string> small{q["results"][0]["id"], q["results"][1]["id"]};
  CHECK(eventually([&] {
    return std::all_of(small.begin(), small.end(),
                       [&](const std::string& id) { return state_of(c, s.admin(), id) == "completed"; });
  }));

  // The envelope itself: 400 for what is not a batch, 405 for other methods.
  CHECK(c.post("/v1/requests:batch", json{{"requests", json::array()}}, token).status == 400);
  CHECK(c.post("/v1/requests:batch", json{{"requests", vps()}}, token).status == 400);
  CHECK(c.post("/v1/requests:batch", json{{"requests", json::array({vps()})}, {"extra", 1}}, token).status == 400);
  CHECK(c.post("/v1/requests:batch", json::array({vps()}), token).status == 400);
  auto too_many = json::array();
  for (int i = 0; i < 1001; ++i) {
    too_many.push_back(json::object());
  }
  auto over = c.post("/v1/requests:batch", json{{"requests", too_many}}, token);
  CHECK(over.status == 400);
  CHECK(over.json()["error"]["message"] == "requests must hold 1 to 1000 requests, not 1001");
  CHECK(c.get("/v1/requests:batch", token).status == 405);
  CHECK(c.post("/v1/requests:batch", json{{"requests", json::array({vps()})}}).status == 401);
  CHECK(c.get("/v1/requests", token).json()["items"].size() == ids.size());
  CHECK(c.get("/openapi.json").json()["paths"].contains("/v1/requests:batch"));
  CHECK(c.get("/openapi.json").json()["info"]["version"] == PROVISIOND_VERSION);
  // Operators see the items' outcomes, not only the batches' 200s.
  const auto metrics = c.get("/metrics").body;
  CHECK(metrics.find("provisiond_batch_items_total{class=\"2xx\"} 6\n") != std::string::npos);
  CHECK(metrics.find("provisiond_batch_items_total{class=\"4xx\"} 6\n") != std::string::npos);
  CHECK(metrics.find("provisiond_batch_items_total{class=\"5xx\"} 0\n") != std::string::npos);
  CHECK(s.stop() == 0);
  // The refused dependent was never in the dependency graph: its prerequisite's completion
  // did not try to resume a request that does not exist.
  CHECK(s.log().find("unknown_request") == std::string::npos);
}

TEST_CASE("SIGTERM exits 0 and a restart resumes the work", "[e2e][shutdown]") {
  server s{fresh_dir("sigterm")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  auto reg = c.post("/v1/clusters",
                    json{{"id", "slow"},
                         {"type", "simulation"},
                         {"region", "local"},
                         {"isDefault", true},
                         {"simulation", {{"delayMs", {{"min", 100}, {"max", 300}}}}}},
                    s.admin());
  REQUIRE(reg.status == 201);
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    auto body = vps();
    body["cluster"] = "slow";
    ids.push_back(c.post("/v1/requests", body, token).json()["id"].get<std::string>());
  }
  CHECK(s.stop() == 0);
  CHECK(s.log().find("\"msg\":\"engine_stopped\"") != std::string::npos);

  s.start();
  auto c2 = s.client();
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      if (state_of(c2, token, id) != "completed") {
        return false;
      }
    }
    return true;
  }));
}

TEST_CASE("cmake --install puts provisiond and a systemd unit that runs it in place", "[e2e][cli]") {
  const auto dir = fresh_dir("install");
  const auto root = dir / "root";  // DESTDIR: the install prefix below it
  {
    child_process install{{PROV_CMAKE_COMMAND, "--install", PROV_BUILD_DIR}, (dir / "install.log").string(),
                          {"DESTDIR=" + root.string()}};
    REQUIRE(install.wait(std::chrono::seconds{120}) == 0);
  }
  const std::string bindir = PROV_INSTALL_BINDIR;
  const auto binary = root / bindir.substr(1) / "provisiond";
  REQUIRE(std::filesystem::exists(binary));
  {
    child_process version{{binary.string(), "--version"}, (dir / "version.log").string()};
    CHECK(version.read_line(std::chrono::seconds{30}) == std::string{"provisiond "} + PROVISIOND_VERSION);
    CHECK(version.wait(std::chrono::seconds{30}) == 0);
  }
  const std::string unit_dir = PROV_SYSTEMD_UNIT_DIR;
  std::ifstream in{root / unit_dir.substr(1) / "provisiond.service"};
  REQUIRE(in.good());
  std::string exec_start;
  std::string unit;
  for (std::string line; std::getline(in, line);) {
    unit += line + "\n";
    if (line.rfind("ExecStart=", 0) == 0) {
      exec_start = line.substr(10);
    }
  }
  CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
  CHECK(unit.find("Restart=on-failure") != std::string::npos);
  {
    // systemd's own check of the unit: unknown keys, values it cannot parse and commands that
    // are not executable are each a line of output. The copy names the installed binary.
    const std::string analyze = PROV_SYSTEMD_ANALYZE;
    if (analyze.empty()) {
      FAIL("no systemd-analyze: it comes with Debian's systemd package (scripts/install-deps.sh)");
    }
    const auto copy = dir / "verify" / "provisiond.service";
    std::filesystem::create_directories(copy.parent_path());
    std::string copied = unit;
    const std::string installed = PROV_INSTALL_BINDIR + std::string{"/provisiond"};
    copied.replace(copied.find(installed), installed.size(), binary.string());
    std::ofstream{copy} << copied;
    child_process verify{{analyze, "verify", "--man=no", copy.string()}, (dir / "verify.log").string()};
    std::string said;
    while (auto line = verify.read_line(std::chrono::seconds{60})) {
      said += *line + "\n";
    }
    CHECK(verify.wait(std::chrono::seconds{60}) == 0);
    std::ifstream log{dir / "verify.log"};
    said.append(std::istreambuf_iterator<char>{log}, std::istreambuf_iterator<char>{});
    INFO("systemd-analyze verify said: " << said);
    CHECK(said.empty());
  }
  // The unit's command line, with the installed binary, an empty config and this test's
  // directories in place of /etc and /var/lib, starts and stops cleanly.
  std::vector<std::string> argv;
  for (std::size_t at = 0; at < exec_start.size();) {
    const auto space = exec_start.find(' ', at);
    argv.push_back(exec_start.substr(at, space == std::string::npos ? std::string::npos : space - at));
    at = space == std::string::npos ? exec_start.size() : space + 1;
  }
  REQUIRE(argv.size() == 5);
  CHECK(argv[0] == bindir + "/provisiond");
  CHECK(argv[1] == "--config");
  CHECK(argv[3] == "--data-dir");
  argv[0] = binary.string();
  argv[2] = (dir / "provisiond.conf").string();
  std::ofstream{argv[2]} << "# empty, as the unit's comment creates it\n";
  argv[4] = (dir / "state" / "data").string();
  argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  child_process service{argv, (dir / "service.log").string()};
  const auto line = service.read_line(std::chrono::seconds{60});
  REQUIRE(line.has_value());
  CHECK(line->rfind("provisiond listening on http://127.0.0.1:", 0) == 0);
  service.signal(SIGTERM);
  CHECK(service.wait(std::chrono::seconds{60}) == 0);
  CHECK(std::filesystem::exists(dir / "state" / "data" / "admin.token"));
}

TEST_CASE("provisiond --help lists the flags, bad flags are refused", "[e2e][cli]") {
  const auto dir = fresh_dir("cli");
  {
    child_process help{{PROVISIOND_BINARY, "--help"}, (dir / "err.log").string()};
    std::string text;
    while (auto line = help.read_line(std::chrono::seconds{30})) {
      text += *line + "\n";
    }
    CHECK(help.wait(std::chrono::seconds{30}) == 0);
    for (const auto* flag : {"--data-dir", "--listen", "--admin-token", "--kafka-brokers", "--config", "--version"}) {
      CHECK(text.find(flag) != std::string::npos);
    }
  }
  {
    // The project's version, also the OpenAPI document's; nothing is opened.
    child_process version{{PROVISIOND_BINARY, "--version", "--data-dir", (dir / "untouched").string()},
                          (dir / "err.log").string()};
    CHECK(version.read_line(std::chrono::seconds{30}) == std::string{"provisiond "} + PROVISIOND_VERSION);
    CHECK(version.wait(std::chrono::seconds{30}) == 0);
    CHECK_FALSE(std::filesystem::exists(dir / "untouched"));
  }
  for (const auto& bad : std::vector<std::vector<std::string>>{{"--listen", "nonsense"},
                                                               {"--listen", "127.0.0.1:99999"},
                                                               {"--http-threads", "0"},
                                                               {"--scheduler-policy", "fifo"},
                                                               {"--retry-base", "0"},
                                                               {"--tenant-max-active", "-3"},
                                                               {"--call-timeout", "soon"},
                                                               {"--kafka-max-buffered", "0"},
                                                               {"--kafka-creates-in-flight", "0"},
                                                               {"--no-such-flag"}}) {
    std::vector<std::string> argv{PROVISIOND_BINARY, "--data-dir", (dir / "d").string()};
    argv.insert(argv.end(), bad.begin(), bad.end());
    child_process p{argv, (dir / "err.log").string()};
    CHECK(p.wait(std::chrono::seconds{30}) == 2);
  }
}
