// Policy and lifecycle through the real binary: quotas,
// approval gates, capacity, the manual provider, credentials at rest, post-provisioning.

#include <filesystem>
#include <fstream>

#include "server_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

json vps(double cpu, double memory = 2, int storage = 10) {
  return json{{"type", "vps"},
              {"provider", "simulation"},
              {"spec", {{"cpu", cpu}, {"memoryGb", memory}, {"storageGb", storage}}}};
}

std::string state_of(http_client& c, const std::string& token, const std::string& id) {
  auto r = c.get("/v1/requests/" + id, token);
  return r.status == 200 ? r.json()["state"].get<std::string>() : "http " + std::to_string(r.status);
}

bool reaches(http_client& c, const std::string& token, const std::string& id, const std::string& state) {
  return eventually([&] { return state_of(c, token, id) == state; });
}

}  // namespace

TEST_CASE("quotas: refused at submit naming the dimension, freed by rollback and deprovision, usage = replay",
          "[e2e][policy][quota]") {
  server s{fresh_dir("quota")};
  s.start();
  auto c = s.client();
  auto t = c.post("/v1/tenants", json{{"id", "acme"}, {"quota", {{"cpu", 4}, {"instances", 3}, {"instancesByType", {{"vps", 2}}}}}},
                  s.admin());
  REQUIRE(t.status == 201);
  const auto token = t.json()["token"].get<std::string>();

  auto first = c.post("/v1/requests", vps(2), token);
  REQUIRE(first.status == 202);
  auto second = c.post("/v1/requests", vps(2), token);
  REQUIRE(second.status == 202);
  auto over = c.post("/v1/requests", vps(1), token);
  CHECK(over.status == 422);
  CHECK(over.json()["error"]["code"] == "quota_exceeded");
  CHECK(over.json()["error"]["message"] == "cpu (cores) quota of tenant acme exceeded: 4 of 4 in use or reserved, 1 requested");
  const auto id1 = first.json()["id"].get<std::string>();
  const auto id2 = second.json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, id1, "completed"));
  REQUIRE(reaches(c, token, id2, "completed"));
  auto usage = c.get("/v1/tenants/acme/usage", token).json();
  CHECK(usage["used"]["cpu"] == 4);
  CHECK(usage["used"]["instances"] == 2);
  CHECK(usage["reserved"]["instances"] == 0);
  CHECK(usage["quota"]["cpu"] == 4);

  // A raised cpu quota meets the per-type instance limit next.
  REQUIRE(c.put("/v1/tenants/acme/quota", json{{"cpu", 16}, {"instances", 3}, {"instancesByType", {{"vps", 2}}}}, s.admin())
              .status == 200);
  auto third = c.post("/v1/requests", vps(1), token);
  CHECK(third.status == 422);
  CHECK(third.json()["error"]["message"].get<std::string>().rfind("vps instances quota", 0) == 0);

  // Deprovisioning gives the quota back.
  REQUIRE(c.post("/v1/requests/" + id1 + "/deprovision", json::object(), token).status == 202);
  REQUIRE(reaches(c, token, id1, "rolled_back"));
  usage = c.get("/v1/tenants/acme/usage", token).json();
  CHECK(usage["total"]["cpu"] == 2);
  CHECK(usage["total"]["instances"] == 1);
  auto again = c.post("/v1/requests", vps(1), token);
  CHECK(again.status == 202);
  REQUIRE(reaches(c, token, again.json()["id"].get<std::string>(), "completed"));

  // Usage equals a fresh replay, across a restart that rebuilds every projection.
  const auto before = c.get("/v1/tenants/acme/usage", token).json();
  CHECK(s.stop() == 0);
  s.start({"--rebuild-projections"});
  auto c2 = s.client();
  CHECK(c2.get("/v1/tenants/acme/usage", token).json() == before);
  // And the quota ledger restarted from it: still full for vps instances.
  CHECK(c2.post("/v1/requests", vps(1), token).status == 422);
}

TEST_CASE("approval gates: pending until approved or rejected, priority and scope, rules via the API",
          "[e2e][policy][approval]") {
  server s{fresh_dir("approval")};
  s.start();
  auto c = s.client();
  const auto acme = make_tenant(c, s.admin(), "acme");
  const auto other = make_tenant(c, s.admin(), "other");
  REQUIRE(c.post("/v1/clusters", json{{"id", "dub"}, {"type", "simulation"}, {"region", "eu-west-1"}}, s.admin()).status ==
          201);
  // The seed's example rule, global.
  auto big = c.post("/v1/approval-rules",
                    json{{"name", "High-Resource VPS Approval"},
                         {"priority", 10},
                         {"conditions",
                          {{"minCpu", 16}, {"minMemoryGb", 32}, {"minStorageGb", 500}, {"types", {"VPS"}}, {"regions", {"eu-west-1"}}}}},
                    s.admin());
  REQUIRE(big.status == 201);
  // A tenant rule with the same priority beats it for acme.
  auto acme_rule = c.post("/v1/approval-rules",
                          json{{"name", "acme big"}, {"scope", "tenant"}, {"tenant", "acme"}, {"priority", 10},
                               {"conditions", {{"minCpu", 16}}}},
                          s.admin());
  REQUIRE(acme_rule.status == 201);
  // A rule that matches on region only.
  auto region_rule = c.post("/v1/approval-rules",
                            json{{"id", "us-only"}, {"name", "US needs approval"}, {"priority", 50},
                                 {"conditions", {{"regions", {"us-east-1"}}}}},
                            s.admin());
  REQUIRE(region_rule.status == 201);
  CHECK(c.get("/v1/approval-rules", s.admin()).json()["items"].size() == 3);
  CHECK(c.get("/v1/approval-rules", acme).status == 403);

  auto huge = vps(16, 32, 500);
  huge["region"] = "eu-west-1";
  auto a = c.post("/v1/requests", huge, acme);
  REQUIRE(a.status == 202);
  CHECK(a.json()["state"] == "pending_approval");
  const auto ida = a.json()["id"].get<std::string>();
  auto view = c.get("/v1/requests/" + ida, acme).json();
  CHECK(view["approvalRule"]["name"] == "acme big");
  auto b = c.post("/v1/requests", huge, other);
  CHECK(c.get("/v1/requests/" + b.json()["id"].get<std::string>(), other).json()["approvalRule"]["name"] ==
        "High-Resource VPS Approval");
  auto small = vps(1);
  small["region"] = "eu-west-1";
  CHECK(c.post("/v1/requests", small, acme).json()["state"] == "queued");
  auto us = vps(1);
  us["region"] = "us-east-1";
  auto in_us = c.post("/v1/requests", us, other);
  CHECK(in_us.json()["state"] == "pending_approval");

  // Tenants cannot approve; admins can, once.
  CHECK(c.post("/v1/requests/" + ida + "/approve", json::object(), acme).status == 403);
  auto approved = c.post("/v1/requests/" + ida + "/approve", json::object(), s.admin());
  CHECK(approved.status == 202);
  CHECK(approved.json()["state"] == "queued");
  REQUIRE(reaches(c, acme, ida, "completed"));
  auto twice = c.post("/v1/requests/" + ida + "/approve", json::object(), s.admin());
  CHECK(twice.status == 409);
  CHECK(twice.json()["error"]["code"] == "conflict");

  // Reject needs a reason, then fails and rolls back the request.
  const auto idb = b.json()["id"].get<std::string>();
  CHECK(c.post("/v1/requests/" + idb + "/reject", json::object(), s.admin()).status == 400);
  CHECK(c.post("/v1/requests/" + idb + "/reject", json{{"reason", "too big for this month"}}, s.admin()).status == 202);
  REQUIRE(reaches(c, other, idb, "rolled_back"));
  auto rejected = c.get("/v1/requests/" + idb, other).json();
  CHECK(rejected["reason"] == "rejected");
  CHECK(rejected["reasonMessage"] == "too big for this month");

  // A deleted rule no longer applies.
  CHECK(c.request("DELETE", "/v1/approval-rules/us-only", "", {{"Authorization", "Bearer " + s.admin()}}).status == 204);
  CHECK(c.request("DELETE", "/v1/approval-rules/us-only", "", {{"Authorization", "Bearer " + s.admin()}}).status == 404);
  us["region"] = "us-east-1";
  CHECK(c.post("/v1/requests", us, other).json()["state"] == "queued");
  // Bad rules are 400.
  CHECK(c.post("/v1/approval-rules", json{{"name", "x"}, {"conditions", {{"types", {"boat"}}}}}, s.admin()).status == 400);
  CHECK(c.post("/v1/approval-rules", json{{"name", "x"}, {"scope", "tenant"}, {"conditions", json::object()}}, s.admin())
            .status == 400);
}

TEST_CASE("manual provider end to end: Awaiting Manual Input, validated input, then delivery",
          "[e2e][policy][manual]") {
  server s{fresh_dir("manual")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  const auto other = make_tenant(c, s.admin(), "other");
  REQUIRE(c.post("/v1/clusters", json{{"id", "vendor"}, {"type", "manual"}, {"region", "local"}}, s.admin()).status == 201);
  auto r = c.post("/v1/requests",
                  json{{"type", "managed"}, {"provider", "manual"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}}, token);
  REQUIRE(r.status == 202);
  const auto id = r.json()["id"].get<std::string>();
  REQUIRE(eventually([&] { return c.get("/v1/requests/" + id, token).json().value("statusText", "") == "Awaiting Manual Input"; }));
  auto view = c.get("/v1/requests/" + id, token).json();
  CHECK(view["state"] == "allocating");
  CHECK(view["steps"][0]["status"] == "awaiting_input");

  const std::string input = "/v1/requests/" + id + "/manual-input";
  CHECK(c.post(input, json{{"endpoints", {{"url", "https://db.vendor.example"}}}}, token).status == 403);
  CHECK(c.post(input, json{{"endpoints", json::object()}}, s.admin()).status == 400);
  CHECK(c.post(input, json{{"endpoints", {{"url", 42}}}}, s.admin()).status == 400);
  CHECK(c.post(input, json{{"credentials", {{"password", "x"}}}}, s.admin()).status == 400);
  auto ok = c.post(input,
                   json{{"endpoints", {{"url", "https://db.vendor.example"}}},
                        {"credentials", {{"username", "app"}, {"password", "vendor-pass-123"}}}},
                   s.admin());
  REQUIRE(ok.status == 202);
  REQUIRE(reaches(c, token, id, "completed"));
  CHECK(c.post(input, json{{"endpoints", {{"url", "x"}}}}, s.admin()).status == 409);
  view = c.get("/v1/requests/" + id, token).json();
  CHECK(view["endpoints"]["url"] == "https://db.vendor.example");
  CHECK(view["credentials"]["available"] == true);
  CHECK(view.dump().find("vendor-pass-123") == std::string::npos);
  auto creds = c.get("/v1/requests/" + id + "/credentials", token);
  REQUIRE(creds.status == 200);
  CHECK(creds.json()["credentials"]["password"] == "vendor-pass-123");
  CHECK(creds.header("cache-control") == "no-store");
  CHECK(c.get("/v1/requests/" + id + "/credentials", other).status == 404);
  CHECK(c.get("/v1/requests/" + id + "/credentials", s.admin()).status == 200);
}

TEST_CASE("credentials are absent from every byte of the data dir in clear", "[e2e][policy][credentials][security]") {
  server s{fresh_dir("secrets")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  auto r = c.post("/v1/requests", vps(1), token);
  const auto id = r.json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, id, "completed"));
  const auto password = c.get("/v1/requests/" + id + "/credentials", token).json()["credentials"]["password"].get<std::string>();
  REQUIRE(password.size() >= 16);
  auto events = c.get("/v1/requests/" + id + "/events", token).body;
  CHECK(events.find(password) == std::string::npos);
  CHECK(s.stop() == 0);
  CHECK(s.log().find(password) == std::string::npos);
  std::size_t scanned = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(s.dir() / "data")) {
    if (!entry.is_regular_file()) {
      continue;
    }
    std::ifstream in{entry.path(), std::ios::binary};
    const std::string bytes{std::istreambuf_iterator<char>{in}, {}};
    INFO(entry.path());
    CHECK(bytes.find(password) == std::string::npos);
    ++scanned;
  }
  CHECK(scanned > 5);
}

TEST_CASE("post-provisioning: suspend, reactivate, metrics, deprovision with capacity before and after",
          "[e2e][policy][lifecycle]") {
  server s{fresh_dir("lifecycle")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "two-slots"}, {"type", "simulation"}, {"region", "local"}, {"isDefault", true},
                      {"capacity", {{"cpu", 8}, {"vmSlots", 2}}}},
                 s.admin())
              .status == 201);
  auto pinned = vps(4);
  pinned["cluster"] = "two-slots";
  const auto a = c.post("/v1/requests", pinned, token).json()["id"].get<std::string>();
  const auto b = c.post("/v1/requests", pinned, token).json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, a, "completed"));
  REQUIRE(reaches(c, token, b, "completed"));
  auto cluster = c.get("/v1/clusters/two-slots", s.admin()).json();
  CHECK(cluster["usage"]["total"]["cpu"] == 8);
  // Capacity exactly used up: the next one finds no cluster, and says why.
  const auto full = c.post("/v1/requests", pinned, token).json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, full, "rolled_back"));
  auto refused = c.get("/v1/requests/" + full, token).json();
  CHECK(refused["reason"] == "no_cluster_available");
  CHECK(refused["reasonMessage"].get<std::string>().find("two-slots: not enough cpu") != std::string::npos);

  auto metrics = c.get("/v1/requests/" + a + "/metrics", token);
  REQUIRE(metrics.status == 200);
  CHECK(metrics.json()["cpuPercent"].is_number());
  CHECK(c.get("/v1/requests/" + full + "/metrics", token).status == 409);

  CHECK(c.post("/v1/requests/" + a + "/suspend", json{{"reason", "non-payment"}}, s.admin()).status == 202);
  REQUIRE(reaches(c, token, a, "suspended"));
  CHECK(c.get("/v1/requests/" + a, token).json()["reasonMessage"] == "non-payment");
  CHECK(c.post("/v1/requests/" + a + "/suspend", json::object(), token).status == 409);
  CHECK(c.post("/v1/requests/" + a + "/reactivate", json::object(), token).status == 202);
  REQUIRE(reaches(c, token, a, "completed"));
  CHECK(c.post("/v1/requests/" + a + "/cancel", json::object(), token).status == 409);

  CHECK(c.post("/v1/requests/" + a + "/deprovision", json::object(), token).status == 202);
  REQUIRE(reaches(c, token, a, "rolled_back"));
  cluster = c.get("/v1/clusters/two-slots", s.admin()).json();
  CHECK(cluster["usage"]["total"]["cpu"] == 4);
  // The freed capacity is usable again.
  const auto d = c.post("/v1/requests", pinned, token).json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, d, "completed"));

  auto tested = c.post("/v1/clusters/two-slots/test", json::object(), s.admin());
  REQUIRE(tested.status == 200);
  CHECK(tested.json()["ok"] == true);
  CHECK(tested.json()["latencyMs"].is_number());
  CHECK(c.get("/v1/clusters/two-slots", s.admin()).json()["lastTest"]["ok"] == true);
}

TEST_CASE("cancel: a queued request is cancelled and rolled back", "[e2e][policy][lifecycle]") {
  server s{fresh_dir("cancel")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  REQUIRE(c.post("/v1/approval-rules", json{{"name", "hold"}, {"conditions", json::object()}}, s.admin()).status == 201);
  const auto id = c.post("/v1/requests", vps(1), token).json()["id"].get<std::string>();
  CHECK(state_of(c, token, id) == "pending_approval");
  CHECK(c.post("/v1/requests/" + id + "/cancel", json{{"reason", "changed my mind"}}, token).status == 202);
  REQUIRE(reaches(c, token, id, "rolled_back"));
  CHECK(c.get("/v1/requests/" + id, token).json()["reason"] == "cancelled");
  CHECK(c.get("/v1/tenants/acme/usage", token).json()["total"]["instances"] == 0);
}

TEST_CASE("dependsOn over HTTP: order, waiting reason, failures, unknown ids and cycles refused at submit",
          "[e2e][policy][dependencies]") {
  server s{fresh_dir("deps")};
  s.start({"--retry-max", "0"});
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  const auto other = make_tenant(c, s.admin(), "other");
  REQUIRE(c.post("/v1/clusters",
                 json{{"id", "slow"}, {"type", "simulation"}, {"region", "local"}, {"isDefault", true},
                      {"simulation", {{"delayMs", {{"min", 100}, {"max", 200}}}}}},
                 s.admin())
              .status == 201);
  auto submit = [&](json deps, const std::string& key = {}, const std::string& who = {}) {
    auto body = vps(1);
    body["cluster"] = "slow";
    body["dependsOn"] = std::move(deps);
    if (!key.empty()) {
      body["idempotencyKey"] = key;
    }
    return c.post("/v1/requests", body, who.empty() ? token : who);
  };
  const auto a = submit(json::array()).json()["id"].get<std::string>();
  const auto b = submit(json{a}).json()["id"].get<std::string>();
  const auto cc = submit(json{a}).json()["id"].get<std::string>();
  const auto d = submit(json{b, cc}).json()["id"].get<std::string>();
  REQUIRE(eventually([&] { return c.get("/v1/requests/" + d, token).json()["reason"] == "waiting_for_dependencies"; }));
  for (const auto& id : {a, b, cc, d}) {
    REQUIRE(reaches(c, token, id, "completed"));
  }
  CHECK(c.get("/v1/requests/" + d, token).json()["dependsOn"] == json{b, cc});

  // Unknown ids, another tenant's request, and malformed references are refused.
  CHECK(submit(json{"0193a6f0-0000-7000-8000-00000000dead"}).status == 400);
  CHECK(submit(json{a}, {}, other).status == 400);
  CHECK(submit(json{42}).status == 400);
  CHECK(submit(json{a, a}).status == 400);

  // A 3-cycle through requests not submitted yet, by idempotency key.
  REQUIRE(submit(json{"key:k3"}, "k1").status == 202);  // waits for k3, not submitted yet
  REQUIRE(submit(json{"key:k1"}, "k2").status == 202);
  auto cycle = submit(json{"key:k2"}, "k3");
  CHECK(cycle.status == 400);
  CHECK(cycle.json()["error"]["message"].get<std::string>().find("cycle") != std::string::npos);
  CHECK(submit(json{"key:self"}, "self").status == 400);

  // A prerequisite that fails takes its dependents with it.
  auto doomed = vps(1);
  doomed["region"] = "nowhere";
  const auto p = c.post("/v1/requests", doomed, token).json()["id"].get<std::string>();
  const auto q = submit(json{p}).json()["id"].get<std::string>();
  REQUIRE(reaches(c, token, q, "rolled_back"));
  auto failed = c.get("/v1/requests/" + q, token).json();
  CHECK(failed["reason"] == "dependency_failed");
  CHECK(failed["reasonMessage"].get<std::string>().find(p) != std::string::npos);
}

TEST_CASE("a batch of dependents chained by their keys runs in order, and a cycle closed inside it is refused",
          "[e2e][policy][dependencies][batch]") {
  server s{fresh_dir("deps-batch")};
  s.start();
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  // Each item waits for the one before it, by a key submitted earlier in the same batch: the
  // graph must see each item's node before the next item is checked.
  constexpr int chain = 12;
  auto items = json::array();
  for (int i = 0; i < chain; ++i) {
    auto item = vps(1);
    item["idempotencyKey"] = "step-" + std::to_string(i);
    if (i > 0) {
      item["dependsOn"] = json::array({"key:step-" + std::to_string(i - 1)});
    }
    items.push_back(item);
  }
  auto loop_a = vps(1);
  loop_a["idempotencyKey"] = "loop-a";
  loop_a["dependsOn"] = json::array({"key:loop-b"});  // not submitted yet: it waits
  auto loop_b = vps(1);
  loop_b["idempotencyKey"] = "loop-b";
  loop_b["dependsOn"] = json::array({"key:loop-a"});  // closes loop-a -> loop-b -> loop-a
  items.push_back(loop_a);
  items.push_back(loop_b);
  auto r = c.post("/v1/requests:batch", json{{"requests", items}}, token);
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto results = r.json()["results"];
  REQUIRE(results.size() == chain + 2);
  std::vector<std::string> ids;
  for (int i = 0; i < chain; ++i) {
    REQUIRE(results[i]["status"] == 202);
    ids.push_back(results[i]["id"].get<std::string>());
  }
  CHECK(results[chain]["status"] == 202);
  CHECK(results[chain + 1]["status"] == 400);
  CHECK(results[chain + 1]["error"]["message"].get<std::string>().find("cycle") != std::string::npos);

  for (const auto& id : ids) {
    REQUIRE(reaches(c, token, id, "completed"));
  }
  // In order: each began its first step after the one before it finished its last.
  for (int i = 1; i < chain; ++i) {
    const auto before = c.get("/v1/requests/" + ids[i - 1], token).json();
    const auto after = c.get("/v1/requests/" + ids[i], token).json();
    INFO(before.dump() << "\n" << after.dump());
    CHECK(after["steps"][0]["startedAt"].get<std::string>() >= before["steps"][3]["finishedAt"].get<std::string>());
  }
  const auto waiting = c.get("/v1/requests/" + results[chain]["id"].get<std::string>(), token).json();
  CHECK(waiting["state"] == "queued");
  CHECK(waiting["reason"] == "waiting_for_dependencies");
}
