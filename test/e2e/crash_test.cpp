// kill -9 in the middle of a few hundred requests (with delays and some failures), restart,
// and prove: every request terminal, no duplicate events, the cloud holds resources exactly
// for the completed requests, and the projections equal a fresh replay of the journal.

#include <map>
#include <set>

#include "server_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

void check_history(http_client& c, const std::string& admin, const json& view) {
  const auto id = view["id"].get<std::string>();
  auto events = c.get("/v1/requests/" + id + "/events", admin).json()["events"];
  INFO("request " << id);
  REQUIRE(events.size() == view["version"].get<std::size_t>());
  std::set<std::string> allocated;
  std::set<std::pair<std::string, int>> outcomes;
  std::map<std::string, int> once;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    CHECK(e["sequence"] == i + 1);
    const auto type = e["type"].get<std::string>();
    if (type == "request.resource_allocated") {
      CHECK(allocated.insert(e["data"]["resourceId"].get<std::string>()).second);
    }
    if (type == "request.step_succeeded" || type == "request.step_failed") {
      CHECK(outcomes.insert({e["data"]["step"].get<std::string>(), e["data"]["attempt"].get<int>()}).second);
    }
    if (type == "request.submitted" || type == "request.completed" || type == "request.rolled_back" ||
        type == "request.failed" || type == "request.rollback_started" || type == "request.cluster_assigned") {
      CHECK(++once[type] == 1);
    }
  }
}

}  // namespace

TEST_CASE("kill -9 mid-run, restart: all terminal, no duplicates, no orphans, projections = replay",
          "[e2e][crash]") {
  server s{fresh_dir("kill9")};
  const std::vector<std::string> flags{"--retry-base", "200ms", "--retry-cap", "1s"};
  s.start(flags);
  auto c = s.client();
  std::vector<std::string> tokens;
  for (int t = 0; t < 10; ++t) {
    tokens.push_back(make_tenant(c, s.admin(), "tenant-" + std::to_string(t)));
  }
  auto reg = c.post("/v1/clusters",
                    json{{"id", "slow"},
                         {"type", "simulation"},
                         {"region", "local"},
                         {"simulation",
                          {{"failureRate", {{"allocate", 0.1}, {"configure", 0.1}, {"activate", 0.1}, {"verify", 0.1},
                                            {"rollback", 0.1}}},
                           {"delayMs", {{"min", 10}, {"max", 150}}},
                           {"seed", 7}}}},
                    s.admin());
  REQUIRE(reg.status == 201);

  const int total = 300;
  std::vector<std::string> ids;
  for (int i = 0; i < total; ++i) {
    json body{{"type", i % 3 == 0 ? "namespace" : "vps"},
              {"provider", "simulation"},
              {"cluster", "slow"},
              {"spec", {{"cpu", 1}, {"memoryGb", 2}, {"storageGb", 20}}}};
    auto r = c.post("/v1/requests", body, tokens[static_cast<std::size_t>(i) % tokens.size()]);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  // Let part of the work finish, then pull the plug.
  REQUIRE(eventually([&] {
    return c.get("/v1/requests?state=completed&limit=1000", s.admin()).json()["items"].size() >= total / 4;
  }));
  s.kill9();

  s.start(flags);
  auto c2 = s.client();
  REQUIRE(eventually(
      [&] {
        auto all = all_requests(c2, s.admin());
        return all.size() == static_cast<std::size_t>(total) &&
               std::all_of(all.begin(), all.end(), [](const json& v) { return terminal(v["state"].get<std::string>()); });
      },
      std::chrono::seconds{120}));

  const auto views = all_requests(c2, s.admin());
  std::set<std::string> held;
  std::size_t completed = 0;
  for (const auto& v : views) {
    check_history(c2, s.admin(), v);
    if (v["state"] == "completed") {
      ++completed;
    } else {
      CHECK(v["state"] == "rolled_back");
    }
    for (const auto& r : v["resources"]) {
      if (r["status"] == "active") {
        CHECK(v["state"] == "completed");
        held.insert(r["id"].get<std::string>());
      }
    }
  }
  CHECK(completed > 0);
  std::set<std::string> at_provider;
  const auto inventory = c2.get("/v1/clusters/slow/inventory", s.admin()).json();
  for (const auto& item : inventory["items"]) {
    at_provider.insert(item["id"].get<std::string>());
  }
  CHECK(at_provider == held);

  // The projections equal a fresh replay of the journal.
  CHECK(s.stop() == 0);
  s.start({"--rebuild-projections"});
  auto c3 = s.client();
  const auto replayed = all_requests(c3, s.admin());
  REQUIRE(replayed.size() == views.size());
  for (std::size_t i = 0; i < views.size(); ++i) {
    CHECK(replayed[i] == views[i]);
  }
  CHECK(s.stop() == 0);
}

TEST_CASE("an online backup is a data directory: provisiond started on it has every request and credential of that moment",
          "[e2e][backup]") {
  const auto dir = fresh_dir("backup");
  const auto backups = fresh_dir("backup-to");
  server s{dir};
  s.start({"--backup-dir", backups.string()});
  auto c = s.client();
  const auto token = make_tenant(c, s.admin(), "acme");
  const json vps{{"type", "vps"}, {"provider", "simulation"}, {"region", "local"}, {"spec", {{"cpu", 1}, {"memoryGb", 1}}}};
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = c.post("/v1/requests", vps, token);
    REQUIRE(r.status == 202);
    ids.push_back(r.json()["id"].get<std::string>());
  }
  auto completed = [&](http_client& client, const std::string& id, const std::string& as) {
    return client.get("/v1/requests/" + id, as).json()["state"] == "completed";
  };
  REQUIRE(eventually([&] { return std::all_of(ids.begin(), ids.end(), [&](const auto& id) { return completed(c, id, token); }); }));

  CHECK(c.post("/v1/backups", json{{"name", "../elsewhere"}}, s.admin()).status == 400);
  CHECK(c.post("/v1/backups", json{{"name", "mine"}}, token).status == 403);
  // Named "data": the fixture's next server runs on <backups>/data.
  const auto made = c.post("/v1/backups", json{{"name", "data"}}, s.admin());
  REQUIRE(made.status == 201);
  CHECK(made.json()["path"] == (backups / "data").string());
  CHECK(made.json()["journalHead"].get<std::uint64_t>() > 0);
  CHECK(c.post("/v1/backups", json{{"name", "data"}}, s.admin()).status == 409);
  const auto unnamed = c.request("POST", "/v1/backups", "", {{"Authorization", "Bearer " + s.admin()}});
  REQUIRE(unnamed.status == 201);
  CHECK(unnamed.json()["name"].get<std::string>().rfind("backup-", 0) == 0);
  // After the backup: not in it.
  const auto later = c.post("/v1/requests", vps, token);
  REQUIRE(later.status == 202);
  const auto credentials = c.get("/v1/requests/" + ids[0] + "/credentials", token);
  REQUIRE(credentials.status == 200);
  s.stop();

  server restored{backups};  // --data-dir <backups>/data: the backup
  restored.start();
  auto r = restored.client();
  const auto all = all_requests(r, restored.admin());
  CHECK(all.size() == ids.size());
  for (const auto& id : ids) {
    CHECK(completed(r, id, token));  // the tenant's token is in the journal: it works there too
  }
  CHECK(r.get("/v1/requests/" + later.json()["id"].get<std::string>(), token).status == 404);
  // The secret key came along: sealed credentials open.
  const auto reopened = r.get("/v1/requests/" + ids[0] + "/credentials", token);
  REQUIRE(reopened.status == 200);
  CHECK(reopened.json() == credentials.json());
  restored.stop();
}
