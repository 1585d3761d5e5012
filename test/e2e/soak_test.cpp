// Soak: a few thousand requests on a cluster with 20% random failures at every step and
// random delays, with repeated kill -9 and restarts. In the end every request is terminal,
// nothing is orphaned (the cloud holds exactly the resources of completed requests) and the
// projections equal a fresh replay. PROV_SOAK_REQUESTS and PROV_SOAK_KILLS make it longer.

#include <cstdlib>
#include <set>

#include "server_fixture.hpp"

using namespace prov::test;
using nlohmann::json;

namespace {

std::size_t env_or(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::stoull(v)) : fallback;
}

}  // namespace

TEST_CASE("soak: failures, delays and repeated kill -9 leave nothing behind", "[e2e][soak]") {
  const std::size_t total = env_or("PROV_SOAK_REQUESTS", 1500);
  const std::size_t kills = env_or("PROV_SOAK_KILLS", 3);
  const std::size_t tenants = 30;
  server s{fresh_dir("soak")};
  const std::vector<std::string> flags{"--retry-base", "100ms", "--retry-cap", "1s", "--breaker-cooldown", "1s",
                                       "--log-level", "warn"};
  s.start(flags);
  auto c = s.client();
  std::vector<std::string> tokens;
  for (std::size_t t = 0; t < tenants; ++t) {
    tokens.push_back(make_tenant(c, s.admin(), "soak-" + std::to_string(t)));
  }
  auto reg = c.post("/v1/clusters",
                    json{{"id", "soak"},
                         {"type", "simulation"},
                         {"region", "local"},
                         {"simulation",
                          {{"failureRate", {{"allocate", 0.2}, {"configure", 0.2}, {"activate", 0.2}, {"verify", 0.2},
                                            {"rollback", 0.1}}},
                           {"delayMs", {{"min", 0}, {"max", 40}}},
                           {"seed", 2026}}}},
                    s.admin());
  REQUIRE(reg.status == 201);

  std::size_t submitted = 0;
  const auto submit_some = [&](http_client& client, std::size_t n) {
    for (std::size_t i = 0; i < n && submitted < total; ++i, ++submitted) {
      json body{{"type", submitted % 4 == 0 ? "namespace" : "vps"},
                {"provider", "simulation"},
                {"cluster", "soak"},
                {"idempotencyKey", "soak-" + std::to_string(submitted)},
                {"spec", {{"cpu", 1}, {"memoryGb", 1}, {"storageGb", 10}}}};
      auto r = client.post("/v1/requests", body, tokens[submitted % tenants]);
      REQUIRE(r.status == 202);
    }
  };
  for (std::size_t k = 0; k < kills; ++k) {
    auto client = s.client();
    submit_some(client, total / (kills + 1));
    // Some of the work finishes, some is in flight: kill -9.
    const auto done_before = client.get("/v1/requests?state=completed&limit=1", s.admin());
    REQUIRE(done_before.status == 200);
    s.kill9();
    s.start(flags);
  }
  auto client = s.client();
  submit_some(client, total);
  REQUIRE(eventually(
      [&] {
        auto all = all_requests(client, s.admin());
        return all.size() == total &&
               std::all_of(all.begin(), all.end(), [](const json& v) { return terminal(v["state"].get<std::string>()); });
      },
      std::chrono::seconds{600}));

  const auto views = all_requests(client, s.admin());
  std::set<std::string> held;
  std::size_t completed = 0;
  std::size_t rolled_back = 0;
  for (const auto& v : views) {
    completed += v["state"] == "completed" ? 1 : 0;
    rolled_back += v["state"] == "rolled_back" ? 1 : 0;
    for (const auto& r : v["resources"]) {
      if (r["status"] == "active") {
        held.insert(r["id"].get<std::string>());
      }
    }
  }
  CHECK(completed + rolled_back == total);
  CHECK(completed > 0);
  const auto inventory = client.get("/v1/clusters/soak/inventory", s.admin()).json();
  std::set<std::string> at_provider;
  for (const auto& item : inventory["items"]) {
    at_provider.insert(item["id"].get<std::string>());
  }
  CHECK(at_provider == held);

  CHECK(s.stop() == 0);
  s.start({"--rebuild-projections"});
  auto fresh = s.client();
  const auto replayed = all_requests(fresh, s.admin());
  REQUIRE(replayed.size() == views.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < views.size(); ++i) {
    differ += replayed[i] == views[i] ? 0 : 1;
  }
  CHECK(differ == 0);
  CHECK(s.stop() == 0);
}
